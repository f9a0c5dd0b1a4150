"""Misuse and hostile input: the Python API's typed errors, one-line CLI errors, streaming stdin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from cli_support import installed_script, one_error_line, script_env
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.cli.translate import _batches
from attnviz.errors import AttnvizError, InputError, UsageError
from attnviz.io import MAX_LINE_BYTES
from attnviz.options import MAX_BEAM

SENTENCE = "the boy ate an apple ."


# -- the Python API: misuse is a UsageError with a clear message -----------------------------


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda t: t.translate(None), UsageError, "sentences must be a string or a list"),
        (lambda t: t.translate([1, 2]), UsageError, "sentences[0] must be a string, not int"),
        (lambda t: t.translate(b"abc"), UsageError, "must be text (str), not bytes"),
        (lambda t: t.translate({"a": 1}), UsageError, "not dict"),
        (lambda t: t.translate(SENTENCE, beam_size="5"), UsageError, "beam size must be a whole"),
        (
            lambda t: t.translate(SENTENCE, beam_size=1_000_000),
            UsageError,
            f"beam size must be between 1 and {MAX_BEAM}, not 1000000",
        ),
        (lambda t: t.translate(SENTENCE, beam_size=0), UsageError, "between 1 and 64"),
        (lambda t: t.translate(SENTENCE, refs=[None]), UsageError, "refs[0] must be a string"),
        (
            lambda t: t.translate(SENTENCE, refs="a string"),
            UsageError,
            "refs must be a list of strings (one per sentence), not a string",
        ),
        (lambda t: t.translate(SENTENCE, refs=["a", "b"]), UsageError, "got 2 references for 1"),
        (lambda t: t.translate(SENTENCE, words="yes"), UsageError, "words must be True or False"),
        (lambda t: t.translate(SENTENCE, colour=1), UsageError, "unknown decoding option"),
        (lambda t: t.translate(SENTENCE, options=3), UsageError, "options must be a DecodeOptions"),
        (lambda t: t.translate("\udcff"), InputError, "sentence 1 is not valid UTF-8 text"),
        (lambda t: t.translate(SENTENCE, refs=["\udcff"]), InputError, "reference 1 is not valid"),
        (
            lambda t: t.translate("a" * (MAX_LINE_BYTES + 1)),
            InputError,
            f"sentence 1 is longer than {MAX_LINE_BYTES:,} bytes",
        ),
        (
            lambda t: t.translate("가" * (MAX_LINE_BYTES // 3 + 1)),
            InputError,
            "longer than",
        ),
    ],
)
def test_translate_misuse(translator, call, error, fragment):
    with pytest.raises(error) as caught:
        call(translator)
    assert isinstance(caught.value, AttnvizError)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_grouped_errors_number_sentences_from_the_given_line(translator):
    groups = translator.translate_grouped(["ok", "\udcff"], number_from=41)
    assert isinstance(groups[0], list)
    assert groups[1].index == 1
    assert groups[1].message.startswith("sentence 42 is not valid UTF-8")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name_or_path": 123}, "must be a checkpoint path or a bundled model name, not int"),
        ({"name_or_path": ["a.pt"]}, "not list"),
        ({"device": 5}, "device must be text such as 'cpu', not int"),
        ({"device": None}, "device must be text"),
        ({"precision": 64}, "precision must be text"),
    ],
)
def test_load_model_misuse(kwargs, fragment):
    from attnviz import load_model

    with pytest.raises(UsageError) as caught:
        load_model(**kwargs)
    assert fragment in str(caught.value)


def test_translator_needs_a_checkpoint():
    from attnviz import Translator

    with pytest.raises(UsageError, match="a Translator needs a Checkpoint"):
        Translator("model.pt")


# -- CLI: one line for bad values --------------------------------------------------------------


def test_undecodable_ref_argument_is_one_line(checkpoint_path):
    completed = subprocess.run(
        [
            installed_script(),
            "translate",
            "-m",
            str(checkpoint_path),
            "-d",
            "cpu",
            "a",
            "--ref",
            b"\xff",
        ],
        capture_output=True,
        timeout=120,
        env=script_env(),
    )
    assert completed.returncode == 1
    assert completed.stdout == b""
    one_error_line(completed.stderr, "reference 1 is not valid UTF-8 text")


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_deeply_nested_json_for_heatmap_is_one_line(tmp_path, depth):
    source = tmp_path / "deep.jsonl"
    source.write_text("[" * depth + "]" * depth + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["heatmap", "--from", str(source), "--out", str(tmp_path / "x.png")]
    )
    assert result.exit_code == 1
    one_error_line(result.stderr, f"{source}:1:")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("dpi", ["1", "3", "9"])
def test_tiny_dpi_is_refused(tmp_path, checkpoint_path, dpi):
    from attnviz import load_model

    translator = load_model(checkpoint_path, device="cpu")
    (alignment,) = translator.translate("the boy ate an apple . did the cat sleep ?")
    source = tmp_path / "one.jsonl"
    source.write_text(alignment.to_json() + "\n", encoding="utf-8")
    out = tmp_path / "fig.png"
    args = ["heatmap", "--from", str(source), "--out", str(out), "--dpi", dpi]
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 2
    one_error_line(result.stderr, "dpi must be a number between 10 and 9999")
    assert not out.exists()


def test_smallest_dpi_is_drawn(tmp_path, checkpoint_path):
    from attnviz import load_model

    translator = load_model(checkpoint_path, device="cpu")
    (alignment,) = translator.translate("the boy ate an apple .")
    source = tmp_path / "one.jsonl"
    source.write_text(alignment.to_json() + "\n", encoding="utf-8")
    out = tmp_path / "fig.png"
    result = CliRunner().invoke(
        app, ["heatmap", "--from", str(source), "--out", str(out), "--dpi", "10"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["translate", "--beam", "five"], "Invalid value for '--beam'"),
        (["translate", "--batch-size", "1e3"], "Invalid value for '--batch-size'"),
        (["translate", "--colour"], "No such option: --colour"),
        (["heatmap", "--dpi", "x"], "Invalid value for '--dpi'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_click_usage_errors_are_one_line(args, fragment):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    line = one_error_line(result.stderr, fragment)
    assert "--help" in line  # where to look next


def test_beam_limit_is_in_the_cli_message(checkpoint_path):
    result = CliRunner().invoke(
        app, ["translate", "-m", str(checkpoint_path), "-b", "1000000", "a"]
    )
    assert result.exit_code == 2
    one_error_line(result.stderr, f"between 1 and {MAX_BEAM}", "1000000")


@pytest.mark.parametrize("args", [["--help"], ["translate", "--help"], ["export", "--help"]])
def test_help_into_a_closed_pipe_exits_0(args):
    """`attnviz --help | head -1`: the reader is gone before the help is written."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        completed = subprocess.run(
            [installed_script(), *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            timeout=60,
            env=script_env(),
        )
    finally:
        os.close(writer)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""


def test_help_piped_to_head_exits_0():
    completed = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{installed_script()}' --help | head -1"],
        capture_output=True,
        timeout=60,
        env=script_env(),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""


# -- streaming translate -----------------------------------------------------------------------


def test_batches_keep_order_and_size():
    lines = [f"line {i}" for i in range(10)]
    batches = list(_batches(iter(lines), 4, lambda: True))
    assert batches == [lines[0:4], lines[4:8], lines[8:10]]


def test_batch_is_cut_short_when_no_more_input_is_waiting():
    ready = iter([True, False, True, True, True])
    batches = list(_batches(iter("abcdef"), 3, lambda: next(ready)))
    assert batches == [["a", "b"], ["c", "d", "e"], ["f"]]


def test_lines_before_a_bad_line_are_handed_on_first():
    def lines():
        yield "one"
        yield "two"
        raise InputError("stdin:3: not UTF-8 text")

    stream = _batches(lines(), 10, lambda: True)
    assert next(stream) == ["one", "two"]
    with pytest.raises(InputError, match="stdin:3"):
        next(stream)


def test_stdin_lines_come_out_in_order_across_batches(checkpoint_path):
    lines = [f"{SENTENCE}" if i % 3 else "did the cat sleep ?" for i in range(23)] + ["", "a"]
    result = CliRunner().invoke(
        app,
        ["translate", "-m", str(checkpoint_path), "--json", "--batch-size", "4"],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == lines


def test_stdin_tables_are_numbered_by_line(checkpoint_path):
    result = CliRunner().invoke(
        app,
        ["translate", "-m", str(checkpoint_path), "--no-table", "--batch-size", "1"],
        input=f"{SENTENCE}\ndid the cat sleep ?\n",
    )
    assert result.exit_code == 0, result.output
    assert f"[1] {SENTENCE}" in result.stdout
    assert "[2] did the cat sleep ?" in result.stdout
    assert result.stdout.index("[1]") < result.stdout.index("[2]")


def test_error_on_a_later_line_keeps_what_came_before(checkpoint_path):
    long_line = " ".join(["apple"] * 1200)
    lines = [SENTENCE, "did the cat sleep ?", SENTENCE, "a", long_line, SENTENCE]
    result = CliRunner().invoke(
        app,
        ["translate", "-m", str(checkpoint_path), "--json", "--batch-size", "2"],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == lines[:4]
    one_error_line(result.stderr, "sentence 5 has", "at most 1000")


def test_bad_utf8_on_a_later_line_keeps_what_came_before(checkpoint_path):
    data = f"{SENTENCE}\ndid the cat sleep ?\n".encode() + b"\xff\xfe\n" + b"a\n"
    result = CliRunner().invoke(
        app, ["translate", "-m", str(checkpoint_path), "--json", "--batch-size", "2"], input=data
    )
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    one_error_line(result.stderr, "stdin:3: not UTF-8 text")


@pytest.mark.parametrize(
    ("stdin", "refs", "code", "fragment"),
    [
        ("a\nb\n", ["x"], 2, "got 1 --ref for more than 1 sentences"),
        ("a\n", ["x", "y"], 2, "got 2 --ref for 1 sentences"),
    ],
)
def test_refs_with_stdin_must_match(checkpoint_path, stdin, refs, code, fragment):
    args = ["translate", "-m", str(checkpoint_path), "--json"]
    for ref in refs:
        args += ["--ref", ref]
    result = CliRunner().invoke(app, args, input=stdin)
    assert result.exit_code == code
    one_error_line(result.stderr, fragment)


def test_refs_with_stdin_force_each_line(checkpoint_path):
    result = CliRunner().invoke(
        app,
        ["translate", "-m", str(checkpoint_path), "--json", "--ref", "소년이", "--ref", "개가"],
        input="the boy\na dog\n",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["translation"] for r in records] == ["소년이", "개가"]
    assert [r["source"] for r in records] == ["the boy", "a dog"]


def _start(checkpoint_path, *args, stdout=subprocess.PIPE):
    return subprocess.Popen(
        [installed_script(), "translate", "-m", str(checkpoint_path), "-d", "cpu", *args],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=script_env(),
    )


def test_output_arrives_before_stdin_is_closed(checkpoint_path):
    process = _start(checkpoint_path, "--json")
    try:
        process.stdin.write(f"{SENTENCE}\n".encode())
        process.stdin.flush()
        line = process.stdout.readline()  # stdin still open
        if not line:  # the process ended: show why
            process.kill()
            raise AssertionError(f"no output; stderr: {process.stderr.read()!r}")
        first = json.loads(line)
        assert first["source"] == SENTENCE
        process.stdin.write(b"did the cat sleep ?\n")
        process.stdin.flush()
        second = json.loads(process.stdout.readline())
        assert second["source"] == "did the cat sleep ?"
        process.stdin.close()
        assert process.stdout.read() == b""
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == b""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tables_arrive_before_stdin_is_closed(checkpoint_path):
    process = _start(checkpoint_path, "--no-table")
    try:
        process.stdin.write(f"{SENTENCE}\n".encode())
        process.stdin.flush()
        rule = process.stdout.readline().decode()
        assert f"[1] {SENTENCE}" in rule
        translation = process.stdout.readline().decode()
        assert "score" in translation
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_keeps_what_was_printed(checkpoint_path, tmp_path):
    out = tmp_path / "out.jsonl"
    with out.open("wb") as sink:
        process = _start(checkpoint_path, "--json", stdout=sink)
        try:
            process.stdin.write(f"{SENTENCE}\n".encode())
            process.stdin.flush()
            deadline = time.monotonic() + 120
            while not out.read_bytes().endswith(b"\n") and time.monotonic() < deadline:
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=60) == 130
            stderr = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    (record,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert record["source"] == SENTENCE
    one_error_line(stderr, "interrupted")
