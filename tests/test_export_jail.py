"""The output folder is a jail: no write through a link, no clobbered file, one run at a time.

Each test plants what a careless or hostile user might, runs export, and checks that nothing
outside the output folder changed and that the error is one line naming the path.
"""

from __future__ import annotations

import errno
import json
import os
import sys

import pytest
from export_support import (
    SENTENCES,
    export,
    interrupt_on_call,
    make_outside,
    one_line,
    tree,
    write_input,
)

from attnviz.errors import InputError, UsageError
from attnviz.export import LOCK, Exporter, ExportOptions, ExportStats
from attnviz.options import DecodeOptions


@pytest.fixture
def input_file(tmp_path):
    return write_input(tmp_path / "input.txt", SENTENCES)


@pytest.fixture
def setup(tmp_path, input_file, checkpoint_path):
    """(out, outside, run): ``run(*extra)`` exports ``input_file`` into ``out``."""
    out = tmp_path / "out"
    outside = make_outside(tmp_path)

    def run(*extra):
        return export(input_file, "--out", out, "--model", checkpoint_path, *extra)

    return out, outside, run


def unfinished(run, monkeypatch, *extra):
    """Leave an unfinished export (first chunk committed) in the output folder."""
    interrupt_on_call(monkeypatch, 2)
    assert run("--chunk-lines", "2", *extra).exit_code == 130
    monkeypatch.undo()


def test_overwrite_ignores_links_named_like_temporary_files(setup, tmp_path):
    out, outside, run = setup
    assert run("--npz").exit_code == 0
    for name in (".manifest.json.tmp", ".attention.npz.tmp", ".attnviz-export.json.tmp"):
        (out / name).symlink_to(outside / "victim.txt")
    before = tree(tmp_path, skip=out)
    result = run("--npz", "--overwrite")
    assert result.exit_code == 0, result.output
    assert tree(tmp_path, skip=out) == before
    assert (out / ".manifest.json.tmp").is_symlink()  # not ours: left alone, never followed
    assert json.loads((out / "manifest.json").read_text())["counts"]["records"] == 4


def test_resume_refuses_a_partial_file_that_is_a_link(setup, tmp_path, monkeypatch):
    out, outside, run = setup
    unfinished(run, monkeypatch)
    partial = out / "alignments.jsonl.partial"
    partial.unlink()
    partial.symlink_to(outside / "victim.txt")
    before = tree(tmp_path, skip=out)
    result = run("--chunk-lines", "2", "--resume")
    assert result.exit_code == 1
    line = one_line(result)
    assert str(partial) in line and "symbolic link" in line
    assert tree(tmp_path, skip=out) == before


def test_resume_refuses_a_partial_file_linked_from_outside(setup, tmp_path, monkeypatch):
    out, outside, run = setup
    unfinished(run, monkeypatch)
    partial = out / "alignments.jsonl.partial"
    victim = outside / "victim.txt"
    victim.write_bytes(partial.read_bytes())  # looks like a partial file, and is writable
    partial.unlink()
    os.link(victim, partial)
    before = tree(tmp_path, skip=out)
    result = run("--chunk-lines", "2", "--resume")
    assert result.exit_code == 1
    assert f"{partial}: has other hard links" in one_line(result)
    assert tree(tmp_path, skip=out) == before


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_resume_refuses_a_partial_file_that_is_not_a_file(setup, tmp_path, monkeypatch, kind):
    out, _, run = setup
    unfinished(run, monkeypatch)
    partial = out / "alignments.pharaoh.partial"
    partial.unlink()
    os.mkfifo(partial) if kind == "fifo" else partial.mkdir()
    result = run("--chunk-lines", "2", "--resume")
    assert result.exit_code == 1
    line = one_line(result)
    assert str(partial) in line
    assert ("named pipe" if kind == "fifo" else "a folder") in line


def test_resume_refuses_a_figures_link(setup, tmp_path, monkeypatch):
    out, outside, run = setup
    unfinished(run, monkeypatch, "--figures", "png", "--workers", "1")
    (out / "figures").rename(tmp_path / "moved-figures")
    (out / "figures").symlink_to(outside / "pictures", target_is_directory=True)
    before = tree(tmp_path, skip=out)
    result = run("--chunk-lines", "2", "--figures", "png", "--workers", "1", "--resume")
    assert result.exit_code == 1
    line = one_line(result)
    assert str(out / "figures") in line and "symbolic link" in line
    assert tree(tmp_path, skip=out) == before


def test_overwrite_refuses_a_figures_link_before_removing_anything(setup, tmp_path):
    out, outside, run = setup
    assert run("--figures", "png", "--workers", "1").exit_code == 0
    for figure in (out / "figures").iterdir():
        figure.unlink()
    (out / "figures").rmdir()
    (out / "figures").symlink_to(outside / "pictures", target_is_directory=True)
    before, inside = tree(tmp_path, skip=out), tree(out)
    result = run("--figures", "png", "--workers", "1", "--overwrite")
    assert result.exit_code == 1
    line = one_line(result)
    assert str(out / "figures") in line
    assert tree(tmp_path, skip=out) == before
    assert tree(out) == inside  # the earlier export is intact


@pytest.mark.parametrize("figures", [[], ["--figures", "png"]])
def test_overwrite_keeps_the_users_own_manifest_and_figures(setup, tmp_path, figures):
    out, _, run = setup
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "0.png").write_bytes(b"my own drawing")
    (out / "manifest.json").write_text('{"mine": true}\n')
    before = tree(tmp_path)
    result = run(*figures, "--overwrite")
    assert result.exit_code == 1
    line = one_line(result)
    # the first name export needs that it did not write, in name order
    named = out / ("figures" if figures else "manifest.json")
    assert f"{named}: not written by an earlier export here" in line
    assert tree(tmp_path) == before


def test_overwrite_refuses_a_users_file_inside_the_exports_figures(setup, tmp_path):
    out, _, run = setup
    assert run("--figures", "png", "--workers", "1").exit_code == 0
    (out / "figures" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    result = run("--figures", "png", "--workers", "1", "--overwrite")
    assert result.exit_code == 1
    assert str(out / "figures" / "notes.txt") in one_line(result)
    assert tree(tmp_path) == before


def test_overwrite_replaces_only_what_the_earlier_export_wrote(setup, tmp_path):
    out, _, run = setup
    assert run("--npz", "--figures", "png", "--workers", "1").exit_code == 0
    (out / "keep.txt").write_text("mine")
    result = run("--overwrite")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["alignments.jsonl", "alignments.pharaoh", "keep.txt", "manifest.json"]
    assert json.loads((out / "manifest.json").read_text())["files"] == [
        "alignments.jsonl",
        "alignments.pharaoh",
    ]


@pytest.mark.parametrize("mode", ["--resume", "--overwrite"])
def test_a_second_run_on_the_same_folder_fails_at_once(
    setup, tmp_path, input_file, checkpoint_path, mode
):
    from attnviz.translator import load_model

    out, _, run = setup
    first = Exporter(load_model(str(checkpoint_path)), input_file, out, ExportOptions())
    with first:
        first.start()  # holds the folder's lock from here to the end of run()
        before = tree(tmp_path)
        result = run(mode)
        assert result.exit_code == 1
        line = one_line(result)
        assert f"{out}: another export is writing into this folder" in line
        assert tree(tmp_path) == before
        stats = first.run()
    assert stats.records == 4
    assert not (out / LOCK).exists()
    clean = tmp_path / "clean"
    assert export(input_file, "--out", clean, "--model", checkpoint_path).exit_code == 0
    for name in ("alignments.jsonl", "alignments.pharaoh"):
        assert (out / name).read_bytes() == (clean / name).read_bytes()


@pytest.mark.parametrize("change", ["truncate", "grow"])
def test_input_changed_during_the_run_fails_without_a_manifest(
    setup, tmp_path, input_file, monkeypatch, change
):
    from attnviz.translator import Translator

    out, outside, run = setup
    real = Translator.translate_grouped
    calls = {"n": 0}

    def changes_the_input(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            with input_file.open("r+b" if change == "truncate" else "ab") as stream:
                stream.truncate(30) if change == "truncate" else stream.write(b"one more .\n")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_grouped", changes_the_input)
    before = tree(outside)
    result = run("--chunk-lines", "2")
    assert result.exit_code == 1
    line = one_line(result)
    assert f"{input_file}: changed during the export" in line
    assert not (out / "manifest.json").exists() and not (out / "alignments.jsonl").exists()
    assert tree(outside) == before
    again = run("--chunk-lines", "2", "--resume")  # the journal describes the old input
    assert again.exit_code == 2 and "another input" in one_line(again)


def test_resume_of_a_finished_export_is_a_no_op(setup, tmp_path):
    _, _, run = setup
    assert run("--npz").exit_code == 0
    before = tree(tmp_path)
    result = run("--npz", "--resume")
    assert result.exit_code == 0, result.output
    assert "already complete" in result.stderr and "nothing to do" in result.stderr
    assert tree(tmp_path) == before
    other = run("--npz", "--resume", "--beam", "2")
    assert other.exit_code == 2
    assert "finished export there used another input, model or options" in one_line(other)
    assert tree(tmp_path) == before


def test_over_long_line_is_refused_unread_and_not_copied(tmp_path, checkpoint_path, monkeypatch):
    from attnviz.io import MAX_LINE_BYTES
    from attnviz.translator import Translator

    seen: list[str] = []
    real = Translator.translate_grouped

    def recording(self, sentences, *args, **kwargs):
        seen.extend(sentences)
        return real(self, sentences, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_grouped", recording)
    path = tmp_path / "in.txt"
    path.write_bytes(b"the boy\n" + b"a " * (MAX_LINE_BYTES // 2 + 1) + b"\ndid the cat sleep ?\n")
    out = tmp_path / "out"
    result = export(path, "--out", out, "--model", checkpoint_path)
    assert result.exit_code == 0, result.output
    assert "line 2: longer than" in result.stderr
    assert seen == ["the boy", "did the cat sleep ?"]
    records = (out / "alignments.jsonl").read_text().splitlines()
    assert json.loads(records[1]) == {
        "id": 1,
        "source": "",
        "error": f"line 2: longer than {MAX_LINE_BYTES:,} bytes; skipped",
    }
    assert (out / "alignments.jsonl").stat().st_size < 100_000


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_inputs_are_named(tmp_path, checkpoint_path, kind):
    path = {"fifo": tmp_path / "pipe", "device": "/dev/null", "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    result = export(path, "--out", tmp_path / "out", "--model", checkpoint_path)
    assert result.exit_code == 1
    expected = {"fifo": "is a named pipe", "device": "is a device", "folder": "is a folder"}
    assert f"{path}: {expected[kind]}" in one_line(result)
    assert not (tmp_path / "out").exists()


def test_special_output_is_named(tmp_path, input_file, checkpoint_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    result = export(input_file, "--out", pipe, "--model", checkpoint_path)
    assert result.exit_code == 1
    assert f"{pipe}: exists and is a named pipe, not a folder" in one_line(result)
    lock = tmp_path / "out" / LOCK
    lock.parent.mkdir()
    lock.symlink_to(tmp_path / "outside-lock")
    result = export(input_file, "--out", lock.parent, "--model", checkpoint_path)
    assert result.exit_code == 1
    assert f"{lock}: is a symbolic link" in one_line(result)
    assert not (tmp_path / "outside-lock").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_full_disk_names_the_file(setup, monkeypatch):
    out, _, run = setup
    real = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".partial"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(os, "write", full)
    result = run()
    assert result.exit_code == 1
    line = one_line(result)
    assert f"cannot write {out / 'alignments.jsonl.partial'}: No space left on device" in line


def test_the_library_raises_for_a_changed_input(tmp_path, input_file, checkpoint_path):
    """The same check through the Python API: a typed error, no manifest."""
    from attnviz.translator import load_model

    translator = load_model(str(checkpoint_path))

    class Truncating:
        path = translator.path
        dtype = translator.dtype

        def translate_grouped(self, *args, **kwargs):
            input_file.write_text("short\n")
            return translator.translate_grouped(*args, **kwargs)

    options = ExportOptions(decode=DecodeOptions(), chunk_lines=2)
    with pytest.raises(InputError, match="changed during the export"):
        Exporter(Truncating(), input_file, tmp_path / "out", options).run()
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out" / LOCK).exists()


def test_a_finished_exporter_does_not_run_again_without_its_lock(
    tmp_path, input_file, checkpoint_path
):
    """run() releases the lock; running again checks the folder like a new run."""
    from attnviz.translator import load_model

    translator = load_model(str(checkpoint_path))
    exporter = Exporter(translator, input_file, tmp_path / "out", ExportOptions())
    assert exporter.run().records == 4
    assert not (tmp_path / "out" / LOCK).exists()
    with pytest.raises(UsageError, match="folder is not empty"):
        exporter.run()
    # a manifest whose counts are not numbers is still read without a traceback
    manifest = tmp_path / "out" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["counts"] = {"lines": "many", "records": None}
    manifest.write_text(json.dumps(record))
    again = Exporter(translator, input_file, tmp_path / "out", ExportOptions(), resume=True)
    assert again.run() == ExportStats(already_complete=True)
