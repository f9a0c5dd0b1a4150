"""The command line: in-process through CliRunner, plus a few real runs of the installed script."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from cli_support import installed_script, script_env
from typer.testing import CliRunner

from attnviz import __version__
from attnviz.cli import app

SENTENCE = "the boy ate an apple ."
RECORD_KEYS = {
    "source",
    "translation",
    "src_tokens",
    "tgt_tokens",
    "attention",
    "scores",
    "alignment",
    "score",
    "rank",
}


@pytest.fixture
def runner() -> CliRunner:
    # this typer's CliRunner keeps stdout and stderr apart (result.stdout / result.stderr)
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def json_lines(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def assert_one_line_error(result, *fragments: str) -> str:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("attnviz: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def check_record(record: dict) -> None:
    assert set(record) >= RECORD_KEYS, set(record)
    attention = np.asarray(record["attention"], np.float64)
    assert attention.shape == (len(record["tgt_tokens"]), len(record["src_tokens"]))
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
    assert np.asarray(record["scores"]).shape == attention.shape
    assert isinstance(record["score"], float)
    assert isinstance(record["rank"], int)
    assert isinstance(record["translation"], str)
    for pair in record["alignment"].split():
        i, j = (int(n) for n in pair.split("-"))
        assert 0 <= i < len(record["src_tokens"])
        assert 0 <= j < len(record["tgt_tokens"])


# -- translate: text output ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        ([], ["▁bo", "ate", "</s>"]),
        (["--values"], ["▁bo", "</s>", "."]),
        (["--scores", "--values"], ["▁bo", "</s>"]),
        (["--words"], ["boy", "apple", "</s>"]),
    ],
)
def test_translate_prints_translation_and_table(runner, checkpoint_path, extra, fragments):
    result = invoke(runner, ["translate", "--model", checkpoint_path, *extra, SENTENCE])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert "(score " in lines[0]  # the translation line comes first
    table = "\n".join(lines[1:])
    for fragment in fragments:
        assert fragment in table, fragment
    assert "●" in table


def test_translate_no_table(runner, checkpoint_path):
    result = invoke(runner, ["translate", "--model", checkpoint_path, "--no-table", SENTENCE])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "(score " in lines[0]
    assert "●" not in result.stdout


def test_translate_two_sentences_get_headers(runner, checkpoint_path):
    result = invoke(
        runner, ["translate", "-m", checkpoint_path, "--no-table", SENTENCE, "did the cat sleep ?"]
    )
    assert result.exit_code == 0, result.output
    assert f"[1] {SENTENCE}" in result.stdout
    assert "[2] did the cat sleep ?" in result.stdout


# -- translate: JSON -------------------------------------------------------------------------


def test_translate_json(runner, checkpoint_path):
    result = invoke(runner, ["translate", "--model", checkpoint_path, "--json", SENTENCE])
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert len(records) == 1
    record = records[0]
    check_record(record)
    assert record["source"] == SENTENCE
    assert record["rank"] == 0
    assert record["src_tokens"][-1] == "</s>"
    assert "".join(record["src_tokens"][:-1]).replace("▁", " ").strip() == SENTENCE


def test_translate_json_nbest(runner, checkpoint_path):
    args = ["translate", "-m", checkpoint_path, "--beam", "3", "--nbest", "2", "--json"]
    result = invoke(runner, [*args, SENTENCE, "did the cat sleep ?"])
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["rank"] for r in records] == [0, 1, 0, 1]
    cat = "did the cat sleep ?"
    assert [r["source"] for r in records] == [SENTENCE, SENTENCE, cat, cat]
    for record in records:
        check_record(record)
    assert records[0]["score"] >= records[1]["score"]
    assert records[2]["score"] >= records[3]["score"]


def test_translate_json_words(runner, checkpoint_path):
    result = invoke(runner, ["translate", "-m", checkpoint_path, "--words", "--json", SENTENCE])
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    check_record(record)
    assert record["level"] == "words"
    assert record["src_tokens"] == ["the", "boy", "ate", "an", "apple", ".", "</s>"]
    for token in record["src_tokens"] + record["tgt_tokens"]:
        assert "▁" not in token


def test_translate_json_forced_ref(runner, checkpoint_path):
    ref = "소년이 사과를 먹었다 ."
    result = invoke(runner, ["translate", "-m", checkpoint_path, "--ref", ref, "--json", SENTENCE])
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    check_record(record)
    assert record["translation"] == ref


# -- translate: input from stdin -------------------------------------------------------------


@pytest.mark.parametrize("dash", [[], ["-"]])
def test_translate_reads_stdin(runner, checkpoint_path, dash):
    args = ["translate", "-m", checkpoint_path, "--json", *dash]
    result = invoke(runner, args, input="the boy ate an apple .\ndid the cat sleep ?\n")
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["source"] for r in records] == [SENTENCE, "did the cat sleep ?"]
    for record in records:
        check_record(record)


def test_translate_stdin_short_lines(runner, checkpoint_path):
    result = invoke(runner, ["translate", "-m", checkpoint_path, "--json"], input="a\nb\n")
    assert result.exit_code == 0, result.output
    assert [r["source"] for r in json_lines(result.stdout)] == ["a", "b"]


def test_translate_empty_stdin(runner, checkpoint_path):
    result = invoke(runner, ["translate", "-m", checkpoint_path, "--json"], input="")
    assert result.exit_code == 1
    assert_one_line_error(result, "stdin is empty")


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["--ref", "only one", "a", "b"], 2, ["got 1 --ref for 2 sentences"]),
        (["--ref", "x", "--ref", "y", "a"], 2, ["got 2 --ref for 1 sentences"]),
        (["--nbest", "3", "--beam", "2", "a"], 2, ["nbest (3) cannot exceed the beam size (2)"]),
        (["--beam", "0", "a"], 2, ["beam size must be between 1 and 64, not 0"]),
        (["--batch-size", "0", "a"], 2, ["batch size must be between 1 and 4096, not 0"]),
        (["--device", "cuda:7", "a"], 1, ["cuda:7", "available", "cpu"]),
        (["--device", "tpu", "a"], 1, ["tpu", "available", "cpu"]),
    ],
)
def test_translate_usage_errors(runner, checkpoint_path, args, code, fragments):
    result = invoke(runner, ["translate", "-m", checkpoint_path, *args])
    assert result.exit_code == code, result.output
    assert_one_line_error(result, *fragments)


def test_missing_model_file(runner, tmp_path):
    missing = tmp_path / "no" / "such" / "model.pt"
    result = invoke(runner, ["translate", "--model", missing, SENTENCE])
    assert result.exit_code == 1
    assert_one_line_error(result, str(missing))


def test_damaged_model_file(runner, tmp_path):
    path = tmp_path / "broken.pt"
    path.write_text("not a model\n", encoding="utf-8")
    result = invoke(runner, ["translate", "--model", path, SENTENCE])
    assert result.exit_code == 1
    assert_one_line_error(result, str(path), "not a PyTorch checkpoint")


def test_info_of_damaged_file(runner, tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    result = invoke(runner, ["info", path])
    assert result.exit_code == 1
    assert_one_line_error(result, str(path), "empty")


# -- other commands --------------------------------------------------------------------------


def test_info(runner, checkpoint_path):
    from attnviz.checkpoint import build_model, load_checkpoint

    count = build_model(load_checkpoint(checkpoint_path)).parameter_count()
    result = invoke(runner, ["info", checkpoint_path], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "parameters" in out
    assert f"{count:,}" in out
    for fragment in [
        "config.attention",
        "additive",
        "config.rnn",
        "gru",
        "config.hidden_size",
        "source vocabulary",
        "40",
        "target vocabulary",
        "42",
        "training.note",
        "test fixture",
    ]:
        assert fragment in out, fragment


def test_models_lists_the_bundled_models(runner):
    result = invoke(runner, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 3
    assert all(": " in line for line in lines)
    assert sum("(default)" in line for line in lines) == 1


def test_models_without_bundled_models_explains(runner, monkeypatch):
    import attnviz.samples

    monkeypatch.setattr(attnviz.samples, "sample_dir", lambda: None)
    result = invoke(runner, ["models"])
    assert result.exit_code == 1
    assert_one_line_error(result, "no bundled sample models")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--version"], 0, f"attnviz {__version__}"),
        (["--help"], 0, "translate"),
        (["translate", "--help"], 0, "--nbest"),
        ([], 2, "Usage"),  # click's no_args_is_help: help text, usage exit code
    ],
)
def test_version_and_help(runner, args, code, fragment):
    result = invoke(runner, args)
    assert result.exit_code == code, result.output
    assert fragment in result.output


# -- start-up cost ---------------------------------------------------------------------------

HELP_PROBE = """
import sys
{setup}
print("torch" in sys.modules)
"""


@pytest.mark.parametrize(
    "setup",
    [
        "import attnviz",
        "import attnviz; attnviz.__version__",
        "from attnviz.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'translate' in result.output, result.output",
        "from attnviz.cli import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['translate', '--help'])\n"
        "assert result.exit_code == 0, result.output",
    ],
)
def test_help_does_not_import_torch(setup):
    completed = subprocess.run(
        [sys.executable, "-c", HELP_PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"


# -- the installed script --------------------------------------------------------------------


def test_installed_script_translate_json(checkpoint_path):
    completed = subprocess.run(
        [installed_script(), "translate", "--model", str(checkpoint_path), "--json", SENTENCE],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=script_env(),
    )
    assert completed.returncode == 0, completed.stderr
    (record,) = json_lines(completed.stdout)
    check_record(record)
    assert record["source"] == SENTENCE


def test_installed_script_error_is_one_line(tmp_path):
    missing = tmp_path / "gone.pt"
    completed = subprocess.run(
        [installed_script(), "translate", "--model", str(missing), SENTENCE],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=script_env(),
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(missing) in lines[0]


def test_python_m_version():
    completed = subprocess.run(
        [sys.executable, "-m", "attnviz", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=script_env(),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"attnviz {__version__}"


def test_reader_closing_the_pipe_ends_quietly(checkpoint_path):
    """`attnviz translate < many | head -1`: exit 0, nothing on stderr."""
    lines = "\n".join(["the boy ate an apple ."] * 300) + "\n"
    process = subprocess.Popen(
        [installed_script(), "translate", "--model", str(checkpoint_path), "--device", "cpu"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(lines.encode())
    process.stdin.close()
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert first and stderr == b""
