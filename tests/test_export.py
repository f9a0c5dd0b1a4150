"""Batch export: files, order, round trips, bad lines, folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from export_support import SENTENCES
from typer.testing import CliRunner

from attnviz.alignment import json_bytes
from attnviz.cli import app
from attnviz.export import read_jsonl
from attnviz.export.formats import record as jsonl_record

runner = CliRunner()


@pytest.fixture
def input_file(tmp_path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


def export(args):
    return runner.invoke(app, ["export", *map(str, args)])


def test_export_writes_every_file_in_input_order(input_file, checkpoint_path, tmp_path):
    out = tmp_path / "out"
    result = export(
        [input_file, "--out", out, "--model", checkpoint_path, "--npz", "--batch-size", 2]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(len(SENTENCES)))
    assert [r["source"] for r in records] == SENTENCES
    assert records[1]["translation"] == "" and records[1]["attention"] == []
    pharaoh = (out / "alignments.pharaoh").read_text().splitlines()
    assert len(pharaoh) == len(SENTENCES) and pharaoh[1] == ""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {
        "lines": 5,
        "records": 4,
        "empty": 1,
        "failed": 0,
        "figures": 0,
    }
    assert len(manifest["model_sha256"]) == 64
    with np.load(out / "attention.npz") as arrays:
        assert sorted(arrays.files, key=int) == ["0", "1", "2", "3", "4"]
        for record in records:
            assert np.array_equal(
                arrays[str(record["id"])],
                np.asarray(record["attention"], np.float32).reshape(
                    arrays[str(record["id"])].shape
                ),
            )
    # JSONL -> Alignment -> JSONL is lossless, to the byte
    groups = list(read_jsonl(out / "alignments.jsonl"))
    assert [g.index for g in groups] == [r["id"] for r in records]
    lines = (out / "alignments.jsonl").read_bytes().splitlines()
    for group, record, line in zip(groups, records, lines, strict=True):
        assert json_bytes(jsonl_record(group, arrays=True)) == line
        for key, values in (("attention", group.best.weights), ("scores", group.best.scores)):
            written = np.asarray(record[key], np.float32).reshape(values.shape)
            assert np.array_equal(written.view(np.uint32), values.view(np.uint32))
    assert sorted(p.name for p in out.iterdir()) == [
        "alignments.jsonl",
        "alignments.pharaoh",
        "attention.npz",
        "manifest.json",
    ]


def test_batch_results_match_single_sentence_translation(input_file, checkpoint_path, tmp_path):
    from attnviz.translator import load_model

    out = tmp_path / "out"
    assert export([input_file, "--out", out, "--model", checkpoint_path]).exit_code == 0
    translator = load_model(str(checkpoint_path))
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    for record in records:
        alone = translator.translate(record["source"])[0]
        assert record["translation"] == alone.translation
        if alone.shape[0]:
            got = np.asarray(record["attention"], np.float32)
            assert np.abs(got - alone.weights).max() <= 1e-5


def test_words_pharaoh_golden(tmp_path, checkpoint_path):
    """Golden Pharaoh output of a small fixed input, hand-checked against the JSONL."""
    path = tmp_path / "in.txt"
    path.write_text("the boy ate an apple .\ndid the cat sleep ?\n", encoding="utf-8")
    out = tmp_path / "out"
    assert export([path, "--out", out, "--model", checkpoint_path, "--words"]).exit_code == 0
    lines = (out / "alignments.pharaoh").read_text().splitlines()
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    for line, record in zip(lines, records, strict=True):
        weights = np.asarray(record["attention"])
        src = [i for i, t in enumerate(record["src_tokens"]) if t != "</s>"]
        tgt = [j for j, t in enumerate(record["tgt_tokens"]) if t != "</s>"]
        expected = sorted(
            (src.index(src[int(np.argmax(weights[j, src]))]), n) for n, j in enumerate(tgt)
        )
        assert line == " ".join(f"{i}-{j}" for i, j in expected)
        assert all("\u2581" not in t for t in record["src_tokens"])
    golden = Path(__file__).parent / "golden" / "export_words.pharaoh"
    if os.environ.get("ATTNVIZ_UPDATE_GOLDEN"):
        golden.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert lines == golden.read_text(encoding="utf-8").splitlines()


def test_non_empty_folder_needs_resume_or_overwrite(input_file, checkpoint_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = export([input_file, "--out", out, "--model", checkpoint_path])
    assert result.exit_code == 2
    assert "not empty" in result.stderr and "Traceback" not in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = export([input_file, "--out", out, "--model", checkpoint_path, "--overwrite"])
    assert result.exit_code == 0
    assert (out / "alignments.jsonl").exists() and (out / "keep.txt").exists()


def test_bad_line_is_reported_and_run_goes_on(tmp_path, checkpoint_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"the boy ate an apple .\n\xff\xfe bad bytes\ndid the cat sleep ?\n")
    out = tmp_path / "out"
    result = export([path, "--out", out, "--model", checkpoint_path])
    assert result.exit_code == 0, result.output
    assert "line 2" in result.stderr
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    assert len(records) == 3 and "error" in records[1] and records[2]["translation"]
    strict = export([path, "--out", tmp_path / "strict", "--model", checkpoint_path, "--strict"])
    assert strict.exit_code == 1 and "line 2" in strict.stderr
    assert not (tmp_path / "strict" / "alignments.jsonl").exists()


def test_refs_need_tabs(tmp_path, checkpoint_path):
    path = tmp_path / "in.txt"
    path.write_text("the boy ate an apple .\t소년이 사과를 먹었다 .\nno tab here\n")
    out = tmp_path / "out"
    result = export([path, "--out", out, "--model", checkpoint_path, "--refs"])
    assert result.exit_code == 0
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    assert records[0]["translation"] == "소년이 사과를 먹었다 ."
    assert "error" in records[1] and "line 2" in result.stderr


def test_missing_input_and_bad_figure_format(tmp_path, checkpoint_path, input_file):
    result = export([tmp_path / "nope.txt", "--out", tmp_path / "o", "--model", checkpoint_path])
    assert result.exit_code == 1 and "no such file" in result.stderr
    result = export(
        [input_file, "--out", tmp_path / "o", "--figures", "gif", "--model", checkpoint_path]
    )
    assert result.exit_code == 2 and "png, svg" in result.stderr


def test_figures_are_written(input_file, checkpoint_path, tmp_path):
    out = tmp_path / "out"
    options = ["--figures", "png", "--figure-workers", 1]
    result = export([input_file, "--out", out, "--model", checkpoint_path, *options])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == ["0.png", "2.png", "3.png", "4.png"]
    for name in names:
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_refuses_other_options(tmp_path, checkpoint_path, input_file):
    out = tmp_path / "out"
    out.mkdir()
    stats = {"records": 0, "empty": 0, "failed": 0}
    journal = {"version": 2, "identity": {}, "lines_done": 0, "sizes": {}, "stats": stats}
    (out / ".attnviz-export.json").write_text(json.dumps(journal))
    result = export([input_file, "--out", out, "--model", checkpoint_path, "--resume"])
    assert result.exit_code == 2 and "same" in result.stderr


def test_resume_refuses_a_journal_of_another_version(tmp_path, checkpoint_path, input_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".attnviz-export.json").write_text(json.dumps({"identity": {}, "lines_done": 0}))
    result = export([input_file, "--out", out, "--model", checkpoint_path, "--resume"])
    assert result.exit_code == 2 and "another version of attnviz" in result.stderr


def test_json_of_text_orjson_refuses_stays_valid_utf8_and_finite():
    value = {
        "token": "a\udc80b",
        "score": float("-inf"),
        "nested": [{"x": float("nan")}, (1.5, float("inf"))],
        "weights": np.array([[0.25, np.inf], [np.nan, 0.5]], dtype=np.float32),
        "count": np.int64(3),
    }
    data = json_bytes(value)
    data.decode("utf-8")  # valid UTF-8: the lone surrogate is escaped
    assert b"Infinity" not in data and b"NaN" not in data
    back = json.loads(data)
    assert back == {
        "token": "a\udc80b",
        "score": None,
        "nested": [{"x": None}, [1.5, None]],
        "weights": [[0.25, None], [None, 0.5]],
        "count": 3,
    }
