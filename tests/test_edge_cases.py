"""Regression tests for inputs that once broke: markup, bad Unicode, crashes while finishing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attnviz.alignment import Alignment, word_groups
from attnviz.cli import app
from attnviz.render.terminal import _weight_text

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_rich_markup_in_sentences_and_paths_is_printed_literally(tmp_path, checkpoint_path):
    result = invoke(
        "translate",
        "--model",
        checkpoint_path,
        "--no-table",
        input="the boy [/] ate\nthe [red]cat\n",
    )
    assert result.exit_code == 0, result.output
    assert "[2] the [red]cat" in result.stdout
    out = tmp_path / "q[red]f[bold].png"
    result = invoke("heatmap", "the boy", "--out", out, "--model", checkpoint_path)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stderr.replace("\n", "")


def test_lone_surrogate_argument_is_one_line_error(checkpoint_path):
    result = invoke("translate", "the boy \udcff", "--model", checkpoint_path)
    assert result.exit_code == 1
    assert "not valid UTF-8" in result.stderr and "Traceback" not in result.output


def test_stdin_splits_on_newlines_only(checkpoint_path):
    result = invoke(
        "translate", "--json", "--model", checkpoint_path, input="the boy\x0cate\u2028an apple .\n"
    )
    assert result.exit_code == 0
    records = result.stdout.strip().split("\n")
    assert len(records) == 1
    assert json.loads(records[0])["source"] == "the boy\x0cate\u2028an apple ."


def test_weights_that_round_to_one_print_as_one():
    assert _weight_text(0.9989) == "1.0"
    assert _weight_text(1.0) == "1.0"
    assert _weight_text(0.994) == ".99"
    assert _weight_text(0.004) == ".00"


def test_unknown_pieces_stay_inside_their_word():
    assert word_groups(["▁caf", "<unk>", "▁", "<unk>", "apple", "</s>"]) == [[0, 1], [2, 3, 4], [5]]


def test_empty_alignment_merges_to_empty_words():
    empty = Alignment("", "", [], [], np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), 0.0)
    words = empty.to_words()
    assert words.level == "words" and words.shape == (0, 0)


def test_from_export_with_empty_lines_and_words(tmp_path, checkpoint_path):
    source = tmp_path / "in.txt"
    source.write_text("\nthe boy ate an apple .\n", encoding="utf-8")
    out = tmp_path / "exp"
    assert invoke("export", source, "--out", out, "--model", checkpoint_path).exit_code == 0
    result = invoke(
        "heatmap", "--from", out / "alignments.jsonl", "--words", "--out", tmp_path / "w.png"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w.png").exists()


def test_zero_width_only_sentence_is_empty_without_source_eos(spm_models):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    checkpoint = make_checkpoint(spm_models)
    checkpoint.config = type(checkpoint.config)(**{**checkpoint.config.to_dict(), "src_eos": False})
    translator = Translator(checkpoint, "cpu")
    empty, full = translator.translate(["\u200b", "the boy"])
    assert empty.shape == (0, 0) and full.shape[0] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dpi", "0", "--figures", "png"], "dpi"),
        (["--batch-size", "0"], "batch size"),
    ],
)
def test_export_option_errors(tmp_path, checkpoint_path, args, message):
    source = tmp_path / "in.txt"
    source.write_text("the boy\n", encoding="utf-8")
    out = tmp_path / "out"
    result = invoke("export", source, "--out", out, "--model", checkpoint_path, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_export_into_an_unwritable_place_is_one_line(tmp_path, checkpoint_path):
    source = tmp_path / "in.txt"
    source.write_text("the boy\n", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("export", source, "--out", blocker / "sub", "--model", checkpoint_path)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_refuses_a_folder_as_output_before_training(tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text("a\tb\n" * 10, encoding="utf-8")
    result = invoke("train", data, "--out", tmp_path)
    assert result.exit_code == 1 and "is a folder" in result.stderr
