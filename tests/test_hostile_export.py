"""Export, shards and merge against careless and hostile use: odd shard specs and
environments, tampered manifests and journals, a merge aimed at its own shards, a decoding
process killed mid-run. Each failure is one line and a non-zero exit; nothing written is lost."""

from __future__ import annotations

import itertools
import json
import os
import signal

import pytest
from export_support import CHUNK_LINES, DATA, export, one_line, write_input
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import OutputError, UsageError
from attnviz.export import JOURNAL, MANIFEST, Exporter, ExportOptions
from attnviz.export.shards import parse_shard, shard_folder

LINES = CHUNK_LINES[:7]


@pytest.fixture
def seven_lines(tmp_path):
    return write_input(tmp_path / "in.txt", LINES)


def merge(*args):
    return CliRunner().invoke(app, ["merge", *map(str, args)])


def run(input_path, out, checkpoint_path, *extra):
    result = export(
        input_path, "--out", out, "--model", checkpoint_path, "--npz", "--chunk-lines", "2", *extra
    )
    assert result.exit_code == 0, result.output
    return result


def contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


# -- which shard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, environ, message",
    [
        ("²/3", {}, "K/N"),  # a digit to str.isdigit, not to int()
        ("１/２", {}, "K/N"),
        ("1/" + "9" * 5000, {}, "at most 100,000 shards$"),  # too long for int()
        ("7" * 30 + "/" + "9" * 30, {}, "at most 100,000 shards$"),
        ("auto", {"RANK": "²", "WORLD_SIZE": "3"}, "RANK='²' is not a whole number"),
        ("auto", {"RANK": "1" * 5000, "WORLD_SIZE": "1" * 5000}, "at most 100,000 shards$"),
        ("auto", {"RANK": "1"}, "RANK is set but WORLD_SIZE is not"),
        ("auto", {"SLURM_ARRAY_TASK_COUNT": "4"}, "SLURM_ARRAY_TASK_COUNT is set but"),
    ],
)
def test_odd_shard_specs_are_one_usage_error(text, environ, message):
    with pytest.raises(UsageError, match=message):
        parse_shard(text, environ)


def test_odd_shard_spec_on_the_command_line_is_one_line(tmp_path, seven_lines, checkpoint_path):
    result = export(
        seven_lines, "--out", tmp_path / "o", "--model", checkpoint_path, "--shard", "²/3"
    )
    assert result.exit_code == 2
    assert "--shard must be K/N" in one_line(result)
    assert not (tmp_path / "o").exists()


def test_lines_taken_counts_every_chunk_of_the_shard():
    for size, count, total in itertools.product([1, 2, 3, 5], [1, 2, 3, 4], range(23)):
        for index in range(count):
            options = ExportOptions(chunk_lines=size, shard=(index, count))
            chunks = range(0, total, size)
            expected = sum(
                min(size, total - first) for first in chunks if (first // size) % count == index
            )
            assert options.lines_taken(total) == expected, (size, count, total, index)
    # computed, not counted chunk by chunk: a huge input (a tampered manifest) is instant
    assert ExportOptions(chunk_lines=1, shard=(3, 7)).lines_taken(10**15) == 142857142857143


# -- export refusals --------------------------------------------------------------------------


def test_export_from_stdin_is_refused_with_a_reason(tmp_path, checkpoint_path):
    result = export("-", "--out", tmp_path / "o", "--model", checkpoint_path)
    assert result.exit_code != 0
    assert "takes a file, not stdin" in one_line(result)


def test_decoding_processes_elsewhere_than_the_cpu_are_refused_before_the_folder(tmp_path):
    import torch

    class OnAnAccelerator:
        checkpoint = object()
        device = torch.device("meta")
        dtype = torch.float32

    path = write_input(tmp_path / "in.txt", LINES)
    out = tmp_path / "out"
    exporter = Exporter(OnAnAccelerator(), path, out, ExportOptions(workers=2))
    with pytest.raises(UsageError, match="on the CPU"):
        exporter.run()
    assert not out.exists()  # no journal left to --resume or --overwrite


# -- merge ------------------------------------------------------------------------------------


@pytest.fixture
def two_shards(tmp_path, seven_lines, checkpoint_path):
    shards = tmp_path / "shards"
    for index in range(2):
        run(seven_lines, shards, checkpoint_path, "--shard", f"{index}/2")
    return [shard_folder(shards, index, 2) for index in range(2)]


def test_merge_never_writes_into_a_shard_it_reads(tmp_path, two_shards):
    before = [contents(folder) for folder in two_shards]
    link = tmp_path / "link"
    link.symlink_to(two_shards[0])
    for out in (two_shards[0], two_shards[1] / "sub" / "merged", link):
        result = merge(*two_shards, "--out", out, "--overwrite")
        assert result.exit_code == 2, result.output
        assert "is the shard folder" in one_line(result)
    assert [contents(folder) for folder in two_shards] == before
    assert not (two_shards[1] / "sub").exists()


def test_merged_html_view_is_the_one_of_a_single_run(tmp_path, seven_lines, checkpoint_path):
    extra = ("--html", "--words", "--diagnostics")
    single = tmp_path / "single"
    run(seven_lines, single, checkpoint_path, *extra)
    shards = tmp_path / "shards"
    for index in range(3):
        run(seven_lines, shards, checkpoint_path, *extra, "--shard", f"{index}/3")
    merged = tmp_path / "merged"
    result = merge(*sorted(shards.iterdir()), "--out", merged)
    assert result.exit_code == 0, result.output
    for name in (*DATA, "view.html"):
        assert (merged / name).read_bytes() == (single / name).read_bytes(), name
    manifests = [json.loads((p / MANIFEST).read_text()) for p in (merged, single)]
    assert manifests[0]["files"] == manifests[1]["files"]
    assert "view.html" in manifests[0]["files"]


def test_merge_refuses_a_view_that_is_not_the_export_s(tmp_path, seven_lines, checkpoint_path):
    shards = tmp_path / "shards"
    for index in range(2):
        run(seven_lines, shards, checkpoint_path, "--html", "--shard", f"{index}/2")
    page = shard_folder(shards, 1, 2) / "view.html"
    page.write_bytes(page.read_bytes().replace(b"<!DOCTYPE html>", b"<!doctype html>", 1))
    result = merge(*sorted(shards.iterdir()), "--out", tmp_path / "merged")
    assert result.exit_code == 1
    assert "view.html: does not start as this export's files do" in one_line(result)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda m: m.update(counts="x"), "counts are not whole numbers"),
        (lambda m: m.pop("counts"), "counts are not whole numbers"),
        (lambda m: m["counts"].update(lines="abc"), "counts are not whole numbers"),
        (lambda m: m["counts"].update(records=[1]), "counts are not whole numbers"),
        (lambda m: m["counts"].update(failed=-1), "counts are not whole numbers"),
        (lambda m: m["counts"].update(figures=True), "count of figures"),
        (lambda m: m.update(seconds="x"), "seconds are not a number"),
        (lambda m: m.update(seconds=float("inf")), "seconds are not a number"),
        (lambda m: m.update(files="alignments.jsonl"), "files are not a list"),
        (lambda m: m["options"].update(chunk_lines="2"), "chunk_lines is not a chunk size"),
        (lambda m: m["options"].update(chunk_lines=0), "chunk_lines is not a chunk size"),
        (lambda m: m["options"].update(shard=[True, 2]), "its shard is not K, N"),
        (lambda m: m["options"].update(shard=[-1, 2]), "its shard is not K, N"),
        (lambda m: m["counts"].update(lines=10**15), "holds 1000000000000000 lines"),
    ],
)
def test_merge_refuses_a_tampered_manifest_in_one_line(tmp_path, two_shards, tamper, message):
    path = two_shards[0] / MANIFEST
    manifest = json.loads(path.read_text())
    tamper(manifest)
    path.write_text(json.dumps(manifest))
    result = merge(*two_shards, "--out", tmp_path / "merged")
    assert result.exit_code != 0
    assert message in one_line(result)
    assert not (tmp_path / "merged").exists() or not list((tmp_path / "merged").iterdir())


# -- resume from a tampered journal -----------------------------------------------------------


@pytest.fixture
def interrupted(tmp_path, seven_lines, checkpoint_path):
    from attnviz.translator import load_model

    translator = load_model(str(checkpoint_path))
    options = ExportOptions(npz=True, chunk_lines=2)
    out = tmp_path / "out"

    def stop_after_two_chunks(progress):
        if progress.done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Exporter(translator, seven_lines, out, options, on_progress=stop_after_two_chunks).run()
    return translator, options, out


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda j: j.update(lines_done=3), "damaged journal"),  # inside a chunk
        (lambda j: j.update(lines_done=-2), "damaged journal"),
        (lambda j: j.update(lines_done=10**30), "damaged journal"),
        (lambda j: j.update(lines_done=4.5), "damaged journal"),
        (lambda j: j.update(lines_done=True), "damaged journal"),
        (lambda j: j.update(sizes={}), "damaged journal"),  # would cut every file to 0
        (lambda j: j["sizes"].pop("npz"), "damaged journal"),
        (lambda j: j["sizes"].update(jsonl=-1), "damaged journal"),
        (lambda j: j["sizes"].update(other=3), "damaged journal"),
        (lambda j: j["stats"].update(records=-100), "damaged journal"),
        (lambda j: j.update(finishing="no"), "damaged journal"),
        (lambda j: j["sizes"].update(jsonl=7), "a commit ended inside a line"),
    ],
)
def test_resume_refuses_a_tampered_journal(interrupted, tamper, message):
    translator, options, out = interrupted
    path = out / JOURNAL
    journal = json.loads(path.read_text())
    assert journal["lines_done"] == 4
    tamper(journal)
    path.write_text(json.dumps(journal))
    committed = {name: data for name, data in contents(out).items() if name != JOURNAL}
    with pytest.raises(OutputError, match=message):
        Exporter(translator, out.parent / "in.txt", out, options, resume=True).run()
    if "inside a line" not in message:  # refused before any file was opened
        assert {n: d for n, d in contents(out).items() if n != JOURNAL} == committed


# -- decoding processes -----------------------------------------------------------------------


def test_a_killed_decoding_process_is_one_line_and_resume_completes(
    tmp_path, seven_lines, checkpoint_path, monkeypatch
):
    import attnviz.export.work as work

    clean = tmp_path / "clean"
    run(seven_lines, clean, checkpoint_path)
    real = work.do_chunk

    def killed_on_the_third_chunk(translator, options, chunk, *args):
        if chunk[0][0] == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(translator, options, chunk, *args)

    monkeypatch.setattr(work, "do_chunk", killed_on_the_third_chunk)  # forked workers inherit it
    out = tmp_path / "out"
    result = export(
        seven_lines, "--out", out, "--model", checkpoint_path, "--npz", "--chunk-lines", "2",
        "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "a decoding process ended unexpectedly" in one_line(result)
    assert (out / JOURNAL).exists() and not (out / MANIFEST).exists()
    monkeypatch.undo()
    run(seven_lines, out, checkpoint_path, "--workers", "3", "--resume")
    for name in DATA:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_a_pool_broken_while_submitting_is_the_same_error():
    from concurrent.futures.process import BrokenProcessPool

    from attnviz.export.work import DecodePool

    class BrokenPool:
        def submit(self, *args):
            raise BrokenProcessPool("a child process terminated abruptly")

    pool = object.__new__(DecodePool)
    pool.workers, pool.pool = 2, BrokenPool()
    with pytest.raises(OutputError, match="a decoding process ended unexpectedly"):
        next(pool.map([[(0, b"a")]]))


def test_a_shard_folder_that_is_a_link_is_refused_not_followed(tmp_path, checkpoint_path):
    source = write_input(tmp_path / "in.txt", LINES)
    shards, elsewhere = tmp_path / "shards", tmp_path / "elsewhere"
    shards.mkdir()
    elsewhere.mkdir()
    (shards / "shard-00000-of-00002").symlink_to(elsewhere, target_is_directory=True)
    result = export(source, "--out", shards, "--model", checkpoint_path, "--shard", "0/2")
    assert result.exit_code != 0
    assert "is a symbolic link" in one_line(result)
    assert list(elsewhere.iterdir()) == []
