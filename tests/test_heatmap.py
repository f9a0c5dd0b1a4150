"""`attnviz heatmap`: formats, --from files and stdin, numbering, errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from attnviz.cli import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


@pytest.mark.parametrize(("suffix", "magic"), [("png", PNG), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_heatmap_formats(tmp_path, checkpoint_path, suffix, magic):
    out = tmp_path / f"fig.{suffix}"
    result = invoke("heatmap", "the boy ate an apple .", "--out", out, "--model", checkpoint_path)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    assert f"wrote {out}" in result.stderr


def test_unknown_format_lists_formats_before_loading_a_model(tmp_path):
    result = invoke("heatmap", "x", "--out", tmp_path / "fig.gif", "--model", "/nope.pt")
    assert result.exit_code == 2
    assert ".png, .svg, .pdf" in result.stderr and "Traceback" not in result.output


def test_from_stdin_renders_translate_json(tmp_path, checkpoint_path):
    translated = invoke("translate", "the boy ate an apple .", "--json", "--model", checkpoint_path)
    assert translated.exit_code == 0
    out = tmp_path / "fig.png"
    result = invoke("heatmap", "--from", "-", "--out", out, input=translated.stdout)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG)


def test_from_file_with_index_and_nbest_numbering(tmp_path, checkpoint_path):
    translated = invoke(
        "translate", "the boy ate an apple .", "did the cat sleep ?",
        "--json", "--beam", "3", "--nbest", "2", "--model", checkpoint_path,
    )  # fmt: skip
    records = tmp_path / "records.jsonl"
    records.write_text(translated.stdout, encoding="utf-8")
    assert len(translated.stdout.splitlines()) == 4
    result = invoke("heatmap", "--from", records, "--out", tmp_path / "all.png")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("all-*.png")) == [
        "all-1.png", "all-2.png", "all-3.png", "all-4.png",
    ]  # fmt: skip
    one = invoke("heatmap", "--from", records, "--index", "2", "--out", tmp_path / "one.svg")
    assert one.exit_code == 0 and (tmp_path / "one.svg").exists()
    assert not list(tmp_path.glob("one-*.svg"))
    bad = invoke("heatmap", "--from", records, "--index", "9", "--out", tmp_path / "x.png")
    assert bad.exit_code == 2 and "out of range" in bad.stderr


def test_model_nbest_gives_one_figure_per_hypothesis(tmp_path, checkpoint_path):
    out = tmp_path / "nbest.png"
    result = invoke(
        "heatmap", "the boy ate an apple .", "--beam", "3", "--nbest", "3",
        "--out", out, "--model", checkpoint_path, "--values", "--words",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("nbest-*.png")) == [
        "nbest-1.png", "nbest-2.png", "nbest-3.png",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json\n", "not a JSON alignment record"), ("", "no alignment records"),
     ('{"source": "x"}\n', "lacks")],
)  # fmt: skip
def test_bad_from_files(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content, encoding="utf-8")
    result = invoke("heatmap", "--from", path, "--out", tmp_path / "f.png")
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "f.png").exists()


def test_scores_and_export_records_render(tmp_path, checkpoint_path):
    export_dir = tmp_path / "exp"
    source = tmp_path / "in.txt"
    source.write_text("the boy ate an apple .\n\n", encoding="utf-8")
    assert invoke("export", source, "--out", export_dir, "--model", checkpoint_path).exit_code == 0
    out = tmp_path / "scores.png"
    result = invoke("heatmap", "--from", export_dir / "alignments.jsonl", "--out", out, "--scores")
    assert result.exit_code == 0, result.output
    record = json.loads((export_dir / "alignments.jsonl").read_text().splitlines()[0])
    assert record["id"] == 0 and out.exists()


def test_existing_figure_is_kept_without_force_and_replaced_with_it(tmp_path, checkpoint_path):
    out = tmp_path / "fig.png"
    out.write_bytes(b"mine")
    args = ["heatmap", "the boy ate an apple .", "-m", str(checkpoint_path), "--out", str(out)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert (
        refused.stderr.strip() == f"attnviz: error: {out}: file exists; pass --force to replace it"
    )
    assert out.read_bytes() == b"mine"
    replaced = CliRunner().invoke(app, [*args, "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_numbered_figures_are_all_checked_before_any_is_drawn(tmp_path, checkpoint_path):
    out = tmp_path / "fig.png"
    second = tmp_path / "fig-2.png"
    second.write_bytes(b"mine")
    args = ["heatmap", "a dog runs .", "did the cat sleep ?", "-m", str(checkpoint_path)]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 1 and str(second) in result.stderr
    assert not (tmp_path / "fig-1.png").exists() and second.read_bytes() == b"mine"
