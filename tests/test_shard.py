"""Shards across machines: --shard K/N and auto, merge into files identical to one run,
torchrun with --shard auto, and merge refusing shards that do not belong together."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from export_support import CHUNK_LINES, DATA, export, interrupt_on_call, one_line, write_input
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import UsageError
from attnviz.export import JOURNAL, MANIFEST
from attnviz.export.shards import parse_shard, shard_folder

LINES = CHUNK_LINES


def merge(*args):
    return CliRunner().invoke(app, ["merge", *map(str, args)])


@pytest.fixture
def eleven_lines(tmp_path):
    return write_input(tmp_path / "in.txt", LINES)


def run_export(input_path, out, checkpoint_path, *extra):
    result = export(
        input_path, "--out", out, "--model", checkpoint_path, "--npz", "--chunk-lines", "2", *extra
    )
    assert result.exit_code == 0, result.output
    return result


def assert_same_export(ours: Path, single: Path, names=DATA) -> None:
    for name in names:
        assert (ours / name).read_bytes() == (single / name).read_bytes(), name
    mine, theirs = (json.loads((p / MANIFEST).read_text()) for p in (ours, single))
    for key in ("counts", "options", "files", "input_sha256", "model_sha256", "precision"):
        assert mine[key] == theirs[key], key


# -- which shard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, environ, expected",
    [
        ("0/1", {}, (0, 1)),
        ("2/3", {}, (2, 3)),
        (" 1/4 ", {}, (1, 4)),
        ("auto", {"RANK": "1", "WORLD_SIZE": "2"}, (1, 2)),
        ("auto", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
        (
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
            },
            (3, 4),
        ),
        (  # --array=0-12:4
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "8",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "12",
                "SLURM_ARRAY_TASK_STEP": "4",
            },
            (2, 4),
        ),
        (  # torchrun's variables win over Slurm's
            "auto",
            {"RANK": "0", "WORLD_SIZE": "2", "SLURM_ARRAY_TASK_ID": "5"},
            (0, 2),
        ),
    ],
)
def test_parse_shard(text, environ, expected):
    assert parse_shard(text, environ) == expected


@pytest.mark.parametrize(
    "environ",
    [
        # --array=1,3,7: three tasks that are not a range
        {
            "SLURM_ARRAY_TASK_ID": "3",
            "SLURM_ARRAY_TASK_COUNT": "3",
            "SLURM_ARRAY_TASK_MIN": "1",
            "SLURM_ARRAY_TASK_MAX": "7",
        },
        # an id off the step of its range
        {
            "SLURM_ARRAY_TASK_ID": "5",
            "SLURM_ARRAY_TASK_COUNT": "4",
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_MAX": "12",
            "SLURM_ARRAY_TASK_STEP": "4",
        },
    ],
)
def test_a_slurm_array_with_gaps_is_refused(environ):
    with pytest.raises(UsageError, match="has gaps; use --array=A-B or A-B:STEP"):
        parse_shard("auto", environ)


@pytest.mark.parametrize(
    "text, environ, message",
    [
        ("3/3", {}, "K must be between 0 and N - 1"),
        ("1/0", {}, "K must be between 0 and N - 1"),
        ("1-3", {}, "K/N"),
        ("a/b", {}, "K/N"),
        ("auto", {}, "neither pair is set"),
        ("auto", {"RANK": "2", "WORLD_SIZE": "2"}, "give shard 2 of 2"),
        ("auto", {"RANK": "x", "WORLD_SIZE": "2"}, "not a whole number"),
    ],
)
def test_bad_shard_is_one_clear_error(text, environ, message):
    with pytest.raises(UsageError, match=message):
        parse_shard(text, environ)


def test_shard_option_error_is_one_line(tmp_path, eleven_lines, checkpoint_path):
    out = tmp_path / "s"
    result = export(eleven_lines, "--out", out, "--model", checkpoint_path, "--shard", "5/2")
    assert result.exit_code == 2
    assert "--shard 5/2" in one_line(result)
    assert not out.exists()


# -- shards and merge -------------------------------------------------------------------------


def test_shards_merge_into_the_files_of_one_run(tmp_path, eleven_lines, checkpoint_path):
    single = tmp_path / "single"
    run_export(eleven_lines, single, checkpoint_path, "--figures", "svg")
    shards = tmp_path / "shards"
    for index in range(3):
        result = run_export(
            eleven_lines, shards, checkpoint_path, "--figures", "svg", "--shard", f"{index}/3"
        )
        assert str(shard_folder(shards, index, 3)) in result.stderr
    folders = sorted(shards.iterdir())
    assert [f.name for f in folders] == [f"shard-0000{i}-of-00003" for i in range(3)]
    # chunks of 2 lines: shard 0 has lines 0-1, 6-7; shard 1 has 2-3, 8-9; shard 2 has 4-5, 10
    ids = [
        [json.loads(line)["id"] for line in (f / "alignments.jsonl").read_text().splitlines()]
        for f in folders
    ]
    assert ids == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10]]
    merged = tmp_path / "merged"
    result = merge(*reversed(folders), "--out", merged)  # any order
    assert result.exit_code == 0, result.output
    assert "merged 3 shards" in result.stderr
    assert_same_export(merged, single)
    figures = sorted(p.name for p in (single / "figures").iterdir())
    assert figures == sorted(p.name for p in (merged / "figures").iterdir())
    assert len(figures) == len(LINES) - 1  # the empty line has no figure
    for name in figures:
        assert (merged / "figures" / name).read_bytes() == (single / "figures" / name).read_bytes()
    assert not (merged / JOURNAL).exists()
    assert sorted(p.name for p in merged.iterdir()) == sorted(p.name for p in single.iterdir())


def test_an_interrupted_shard_resumes(tmp_path, eleven_lines, checkpoint_path, monkeypatch):
    single = tmp_path / "single"
    run_export(eleven_lines, single, checkpoint_path)
    shards = tmp_path / "shards"
    run_export(eleven_lines, shards, checkpoint_path, "--shard", "0/2")
    interrupt_on_call(monkeypatch, 2)  # stops after the first chunk of shard 1
    result = export(
        eleven_lines, "--out", shards, "--model", checkpoint_path, "--npz", "--chunk-lines", "2",
        "--shard", "1/2",
    )  # fmt: skip
    assert result.exit_code == 130
    monkeypatch.undo()
    unfinished = shard_folder(shards, 1, 2)
    assert (unfinished / JOURNAL).exists()
    refused = merge(*sorted(shards.iterdir()), "--out", tmp_path / "merged")
    assert refused.exit_code == 1
    assert "unfinished; finish it with --resume" in one_line(refused)
    run_export(eleven_lines, shards, checkpoint_path, "--shard", "1/2", "--resume")
    assert merge(*sorted(shards.iterdir()), "--out", tmp_path / "merged").exit_code == 0
    assert_same_export(tmp_path / "merged", single)


def test_merge_refuses_shards_that_do_not_belong_together(tmp_path, eleven_lines, checkpoint_path):
    shards = tmp_path / "shards"
    for index in range(2):
        run_export(eleven_lines, shards, checkpoint_path, "--shard", f"{index}/2")
    first, second = sorted(shards.iterdir())
    out = tmp_path / "merged"

    result = merge(first, "--out", out)
    assert result.exit_code == 2 and "shards 1 of 2 are missing" in one_line(result)
    result = merge(first, first, "--out", out)
    assert result.exit_code == 2 and "are both shard 0" in one_line(result)

    beam = tmp_path / "beam"
    run_export(eleven_lines, beam, checkpoint_path, "--shard", "1/2", "--beam", "2")
    result = merge(first, shard_folder(beam, 1, 2), "--out", out)
    assert result.exit_code == 2 and "other options" in one_line(result)

    single = tmp_path / "single"
    run_export(eleven_lines, single, checkpoint_path)
    result = merge(first, single, "--out", out)
    assert result.exit_code == 2 and "other options" in one_line(result)
    whole = tmp_path / "whole"  # one folder that is all of an export (shard 0 of 1) merges
    assert merge(single, "--out", whole).exit_code == 0
    assert_same_export(whole, single)

    other_input = write_input(tmp_path / "other.txt", LINES[::-1])
    elsewhere = tmp_path / "elsewhere"
    run_export(other_input, elsewhere, checkpoint_path, "--shard", "1/2")
    result = merge(first, shard_folder(elsewhere, 1, 2), "--out", out)
    assert result.exit_code == 2 and "input_sha256 differs" in one_line(result)
    assert not out.exists() or not any(out.iterdir())

    assert merge(first, second, "--out", out).exit_code == 0
    again = merge(first, second, "--out", out)
    assert again.exit_code == 2 and "--overwrite" in one_line(again)
    (out / "alignments.pharaoh").write_text("changed\n")
    assert merge(first, second, "--out", out, "--overwrite").exit_code == 0
    assert_same_export(out, single)


def test_merge_leaves_files_it_did_not_write(tmp_path, eleven_lines, checkpoint_path):
    shards = tmp_path / "shards"
    for index in range(2):
        run_export(eleven_lines, shards, checkpoint_path, "--shard", f"{index}/2")
    out = tmp_path / "merged"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "alignments.jsonl").write_text("mine too\n")
    result = merge(*sorted(shards.iterdir()), "--out", out, "--overwrite")
    assert result.exit_code == 1
    assert "alignments.jsonl: not written by an earlier export here" in one_line(result)
    assert (out / "alignments.jsonl").read_text() == "mine too\n"
    (out / "alignments.jsonl").unlink()
    assert merge(*sorted(shards.iterdir()), "--out", out, "--overwrite").exit_code == 0
    assert (out / "notes.txt").read_text() == "mine\n"  # not a name export writes: left alone


@pytest.mark.slow
def test_torchrun_shards_then_merge_equal_one_run(tmp_path, eleven_lines, checkpoint_path):
    """Two processes under torchrun on the CPU, each --shard auto, then merge."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:  # the torch package always installs it beside the interpreter
        pytest.fail("torchrun not found beside the Python interpreter")
    single = tmp_path / "single"
    run_export(eleven_lines, single, checkpoint_path)
    shards = tmp_path / "shards"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "SLURM"))}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [
            torchrun, "--standalone", "--nproc-per-node", "2", "-m", "attnviz", "export",
            str(eleven_lines), "--out", str(shards), "--model", str(checkpoint_path), "--npz",
            "--chunk-lines", "2", "--device", "cpu", "--shard", "auto",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folders = sorted(shards.iterdir())
    assert [f.name for f in folders] == ["shard-00000-of-00002", "shard-00001-of-00002"]
    merged = tmp_path / "merged"
    assert merge(*folders, "--out", merged).exit_code == 0
    assert_same_export(merged, single)


def test_merge_refuses_an_npz_cut_short_between_two_entries(
    tmp_path, eleven_lines, checkpoint_path
):
    shards = tmp_path / "shards"
    for index in range(2):
        run_export(eleven_lines, shards, checkpoint_path, "--shard", f"{index}/2")
    first, second = sorted(shards.iterdir())
    npz = second / "attention.npz"
    data = npz.read_bytes()
    cut = data.index(b"PK\x03\x04", 1)  # the second array's entry: the first stays whole
    npz.write_bytes(data[:cut])
    out = tmp_path / "merged"
    result = merge(first, second, "--out", out)
    assert result.exit_code == 1
    assert f"{npz}: damaged NPZ (it ends before its central directory)" in one_line(result)
    assert not (out / "attention.npz").exists()


def test_merge_takes_shards_whose_npz_holds_no_array(tmp_path, checkpoint_path):
    short = write_input(tmp_path / "short.txt", LINES[:2])  # one chunk of 2: shard 1 gets none
    shards, single = tmp_path / "shards", tmp_path / "single"
    for index in range(2):
        run_export(short, shards, checkpoint_path, "--shard", f"{index}/2")
    empty = shard_folder(shards, 1, 2) / "attention.npz"
    assert zipfile.ZipFile(empty).namelist() == []
    run_export(short, single, checkpoint_path)
    out = tmp_path / "merged"
    assert merge(*sorted(shards.iterdir()), "--out", out).exit_code == 0
    assert (out / "attention.npz").read_bytes() == (single / "attention.npz").read_bytes()


def test_merge_progress_counts_every_file_once_and_only_goes_up(
    tmp_path, eleven_lines, checkpoint_path
):
    from attnviz.export.shards import merge as merge_shards

    shards = tmp_path / "shards"
    for index in range(2):
        run_export(eleven_lines, shards, checkpoint_path, "--shard", f"{index}/2")
    seen = []
    merge_shards(
        sorted(shards.iterdir()), tmp_path / "merged", on_progress=lambda *p: seen.append(p)
    )
    lines = len(LINES)
    files = 3  # JSONL, Pharaoh, NPZ: 6 chunks of 2 lines each
    assert {total for _, total in seen} == {files * lines}
    done = [count for count, _ in seen]
    assert done == sorted(done) and done[-1] == files * lines
    assert len(done) == files * 6
