"""Regression tests from a hostile and careless run: each case once gave a traceback, raw
output, a wrong message or nothing at all."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings

import pytest
from cli_support import one_error_line
from typer.testing import CliRunner

from attnviz.alignment import Alignment
from attnviz.cli import app
from attnviz.errors import AttnvizError, UsageError
from attnviz.text import json_safe

SENTENCE = "the boy ate an apple ."


@pytest.fixture(scope="module")
def alignment(spm_models) -> Alignment:
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    return Translator(make_checkpoint(spm_models), "cpu").translate([SENTENCE])[0]


@pytest.fixture(scope="module")
def record(alignment) -> dict:
    return alignment.to_dict()


# -- JSON lines: hidden characters outside the BMP --------------------------------------------


@pytest.mark.parametrize("char", ["\U000e0041", "\U000e0001", "\U0001d173", "\U000110bd"])
def test_json_safe_escapes_astral_format_characters_losslessly(char):
    text = json.dumps({"a": f"x{char}y"}, ensure_ascii=False)
    safe = json_safe(text)
    assert char not in safe
    assert json.loads(safe) == {"a": f"x{char}y"}


def test_alignment_json_keeps_astral_format_characters(record):
    alignment = Alignment.from_dict({**record, "source": "tag\U000e0041"})
    assert Alignment.from_json(alignment.to_json()).source == "tag\U000e0041"


# -- heatmap --from: numbers JSON can hold but Python refuses -----------------------------------


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"id": ' + "1" * 5000 + "}", "not a JSON alignment record"),
        ("RECORD_WITH rank Infinity", "rank"),
        ("RECORD_WITH rank -3", "rank"),
        ("RECORD_WITH rank 1.5", "rank"),
    ],
)
def test_heatmap_from_refuses_impossible_numbers(tmp_path, record, line, fragment):
    if line.startswith("RECORD_WITH"):
        _, key, value = line.split()
        line = json.dumps(record)[:-1] + f', "{key}": {value}}}'
    source = tmp_path / "records.jsonl"
    source.write_text(line + "\n", encoding="utf-8")
    out = tmp_path / "x.png"
    result = CliRunner().invoke(app, ["heatmap", "--from", str(source), "--out", str(out)])
    assert result.exit_code == 1
    one_error_line(result.stderr, f"{source}:1:", fragment)
    assert not out.exists()


def test_heatmap_from_huge_values_draws_without_warnings(tmp_path, record):
    rows = [[1e300] * len(record["src_tokens"]) for _ in record["tgt_tokens"]]
    source = tmp_path / "records.jsonl"
    source.write_text(json.dumps({**record, "attention": rows}) + "\n", encoding="utf-8")
    out = tmp_path / "x.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be printed on stderr
        result = CliRunner().invoke(app, ["heatmap", "--from", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"wrote {out}"
    assert out.stat().st_size > 0


# -- the Python API: wrong types are UsageError, bad records an attnviz error --------------------


@pytest.mark.parametrize("value", [None, [1], "text", 3])
def test_from_dict_needs_a_dict(value):
    with pytest.raises(UsageError, match="must be a dict"):
        Alignment.from_dict(value)


@pytest.mark.parametrize("value", [None, 3, ["{}"]])
def test_from_json_needs_text(value):
    with pytest.raises(UsageError, match="must be text"):
        Alignment.from_json(value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not JSON"),
        ("[", "not JSON"),
        ("NaN", "must be a dict"),
        ("[" * 100_000, "nested too deeply"),
        ("1" * 5000, "not JSON"),
        ("{}", "lacks source"),
    ],
)
def test_from_json_bad_text_is_an_attnviz_value_error(text, fragment):
    with pytest.raises(AttnvizError, match=fragment) as caught:
        Alignment.from_json(text)
    assert isinstance(caught.value, ValueError)  # as documented before: still a ValueError


def test_from_dict_bad_rank_is_an_attnviz_value_error(record):
    with pytest.raises(AttnvizError, match="rank") as caught:
        Alignment.from_dict({**record, "rank": float("inf")})
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [None, [None], "text", 3])
def test_render_figure_needs_an_alignment(tmp_path, value):
    from attnviz.render.figure import render_figure

    with pytest.raises(UsageError, match="Alignment"):
        render_figure(value, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("path", [None, 3, ["x.png"]])
def test_render_figure_needs_a_path(alignment, path):
    from attnviz.render.figure import render_figure

    with pytest.raises(UsageError, match="path"):
        render_figure(alignment, path)


@pytest.mark.parametrize("value", [None, [None], 3, ["text"]])
def test_render_text_needs_alignments(value):
    from rich.console import Console

    from attnviz.render.terminal import render_text

    with pytest.raises(UsageError, match="Alignment"):
        render_text(value, Console(file=io.StringIO()))


def test_render_text_takes_a_single_alignment(alignment):
    from rich.console import Console

    from attnviz.render.terminal import render_text

    console = Console(file=io.StringIO(), width=100, color_system=None)
    render_text(alignment, console)
    assert alignment.translation in console.file.getvalue()


@pytest.mark.parametrize("console", [None, "stdout", sys.stdout])
def test_render_text_needs_a_rich_console(alignment, console):
    from attnviz.render.terminal import render_text

    with pytest.raises(UsageError, match="console"):
        render_text([alignment], console)


# -- checkpoints: floating dtypes the model cannot use ---------------------------------------


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2"])
def test_float8_weights_are_one_line(tmp_path, spm_models, dtype):
    import torch
    from conftest import make_checkpoint

    from attnviz.checkpoint import FORMAT_NAME, weights_digest

    checkpoint = make_checkpoint(spm_models)
    state = {k: v.to(getattr(torch, dtype)) for k, v in checkpoint.state_dict.items()}
    payload = checkpoint.to_payload()
    payload.update(format=FORMAT_NAME, state_dict=state, weights_sha256=weights_digest(state))
    path = tmp_path / "f8.pt"
    torch.save(payload, path)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 1
    one_error_line(result.stderr, str(path), dtype)


# -- export: the message for a file where the folder should be --------------------------------


def test_export_into_a_regular_file_says_so(tmp_path, checkpoint_path):
    source = tmp_path / "in.txt"
    source.write_text(SENTENCE + "\n", encoding="utf-8")
    target = tmp_path / "taken"
    target.write_text("keep\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["export", str(source), "--out", str(target), "-m", str(checkpoint_path)]
    )
    assert result.exit_code == 1
    one_error_line(result.stderr, f"{target}: exists and is a regular file, not a folder")
    assert target.read_text(encoding="utf-8") == "keep\n"


# -- COLUMNS=0: nothing at all was printed, errors included ------------------------------------


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attnviz", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1", **env},
    )


@pytest.mark.parametrize("columns", ["0", "00"])
def test_zero_columns_still_prints_errors(tmp_path, columns):
    missing = tmp_path / "missing.pt"
    completed = _run(["info", str(missing)], COLUMNS=columns, LINES="0")
    assert completed.returncode == 1
    one_error_line(completed.stderr, str(missing))


def test_zero_columns_still_prints_the_translation(checkpoint_path):
    completed = _run(["translate", "-m", str(checkpoint_path), "-d", "cpu", SENTENCE], COLUMNS="0")
    assert completed.returncode == 0, completed.stderr
    assert "</s>" in completed.stdout
    assert "(score" in completed.stdout


# -- ~user paths for a user who does not exist --------------------------------------------------


def test_model_path_of_an_unknown_user_is_one_line():
    result = CliRunner().invoke(app, ["info", "~nosuchuser-attnviz/x.pt"])
    assert result.exit_code == 1
    one_error_line(result.stderr, "~nosuchuser-attnviz/x.pt: no such file or bundled model")


def test_font_path_of_an_unknown_user_is_a_usage_error(alignment, tmp_path):
    from attnviz.render.figure import render_figure

    with pytest.raises(UsageError, match="does not exist"):
        render_figure(alignment, tmp_path / "x.png", font="~nosuchuser-attnviz/x.ttf")
    assert not (tmp_path / "x.png").exists()


# -- stdin without end: /dev/zero is one endless line ------------------------------------------


def test_endless_stdin_line_is_refused_at_the_limit(checkpoint_path):
    from attnviz.io import MAX_LINE_BYTES

    with open("/dev/zero", "rb") as zero:
        completed = subprocess.run(
            [sys.executable, "-m", "attnviz", "translate", "-m", str(checkpoint_path), "--json"],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    assert completed.returncode == 1
    assert completed.stdout == ""
    one_error_line(completed.stderr, f"stdin:1: line is {MAX_LINE_BYTES + 1:,} bytes")


def test_lines_after_an_over_long_line_are_still_read():
    from attnviz.io import iter_raw_lines

    stream = io.BytesIO(b"a" * 50 + b"\nb" + b"x" * 200_000 + b"\nc\r\nd")
    assert [len(line) for line in iter_raw_lines(stream, max_bytes=100)] == [50, 101, 1, 1]


# -- stdout on a full disk ----------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--version"], ["--help"], ["translate", "--help"]])
def test_help_and_version_on_a_full_disk_are_one_line(args):
    with open("/dev/full", "w") as full:
        completed = subprocess.run(
            [sys.executable, "-m", "attnviz", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert completed.returncode == 1
    one_error_line(completed.stderr, "cannot write to stdout: No space left on device")
