"""Interrupted exports: Ctrl-C, a crash while finishing, kill -9; resume is byte-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from export_support import SENTENCES, export, interrupt_on_call, one_line, write_input

from attnviz.export import JOURNAL, LOCK, MANIFEST

FINAL = ("alignments.jsonl", "alignments.pharaoh", "attention.npz")


@pytest.fixture
def five_lines(tmp_path):
    lines = ["the boy ate an apple .", "did the cat sleep ?", "", "a dog runs .", "my friend ."]
    return write_input(tmp_path / "in.txt", lines)


def small_export(input_path, out, checkpoint_path, *extra):
    return export(
        input_path, "--out", out, "--model", checkpoint_path, "--npz", "--chunk-lines", "2", *extra
    )


def assert_same_files(ours: Path, theirs: Path, names=FINAL) -> None:
    for name in names:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def test_resume_after_a_crash_while_finishing(tmp_path, checkpoint_path, five_lines, monkeypatch):
    """Every format got its final name, then the run died before the manifest."""
    import attnviz.io

    clean = tmp_path / "clean"
    assert small_export(five_lines, clean, checkpoint_path).exit_code == 0
    crashed = tmp_path / "crashed"
    real = attnviz.io.atomic_write

    def die_on_manifest(path, data, **kwargs):
        if Path(path).name == MANIFEST:
            raise KeyboardInterrupt
        return real(path, data, **kwargs)

    monkeypatch.setattr(attnviz.io, "atomic_write", die_on_manifest)
    assert small_export(five_lines, crashed, checkpoint_path).exit_code == 130
    monkeypatch.undo()
    assert (crashed / JOURNAL).exists() and (crashed / "attention.npz").exists()
    result = small_export(five_lines, crashed, checkpoint_path, "--resume")
    assert result.exit_code == 0, result.output
    assert_same_files(crashed, clean)
    assert sorted(p.name for p in crashed.iterdir()) == sorted(p.name for p in clean.iterdir())


def test_interrupt_in_the_first_chunk_can_be_resumed(
    tmp_path, checkpoint_path, five_lines, monkeypatch
):
    clean = tmp_path / "clean"
    assert small_export(five_lines, clean, checkpoint_path).exit_code == 0
    broken = tmp_path / "broken"
    interrupt_on_call(monkeypatch, 1)
    assert small_export(five_lines, broken, checkpoint_path).exit_code == 130
    monkeypatch.undo()
    assert json.loads((broken / JOURNAL).read_text())["lines_done"] == 0
    result = small_export(five_lines, broken, checkpoint_path, "--resume")
    assert result.exit_code == 0, result.output
    assert_same_files(broken, clean)


def test_resume_refuses_another_batch_size(tmp_path, checkpoint_path, five_lines, monkeypatch):
    out = tmp_path / "out"
    interrupt_on_call(monkeypatch, 2)
    assert small_export(five_lines, out, checkpoint_path).exit_code == 130
    monkeypatch.undo()
    assert json.loads((out / JOURNAL).read_text())["lines_done"] == 2
    result = small_export(five_lines, out, checkpoint_path, "--resume", "--batch-size", "7")
    assert result.exit_code == 2 and "same" in one_line(result)


def test_resume_refuses_a_changed_input(tmp_path, checkpoint_path, five_lines, monkeypatch):
    out = tmp_path / "out"
    interrupt_on_call(monkeypatch, 2)
    assert small_export(five_lines, out, checkpoint_path).exit_code == 130
    monkeypatch.undo()
    with five_lines.open("ab") as stream:
        stream.write(b"one more line .\n")
    result = small_export(five_lines, out, checkpoint_path, "--resume")
    assert result.exit_code == 2 and "another input" in one_line(result)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "attnviz", *args]


def test_a_lock_held_by_another_process_blocks_until_that_process_dies(
    tmp_path, checkpoint_path, five_lines
):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, types\n"
            "from attnviz.export import Exporter, ExportOptions\n"
            "translator = types.SimpleNamespace(path=None, dtype=None)\n"
            "Exporter(translator, sys.argv[1], sys.argv[2], ExportOptions()).start()\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(five_lines),
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = small_export(five_lines, out, checkpoint_path)
        assert result.exit_code == 1
        assert "another export is writing into this folder" in one_line(result)
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with the process; its lock file alone is no export
    result = small_export(five_lines, out, checkpoint_path)
    assert result.exit_code == 0, result.output
    assert not (out / LOCK).exists()


def _wait_for(condition, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _journal_lines(journal: Path) -> int:
    try:
        return json.loads(journal.read_text())["lines_done"]
    except (OSError, json.JSONDecodeError, KeyError):
        return -1


@pytest.mark.slow
def test_sigkill_then_resume_is_byte_identical(tmp_path, checkpoint_path):
    lines = [f"{s} {w}" for w in ("one", "two", "three", "four") for s in SENTENCES * 12]
    path = write_input(tmp_path / "big.txt", lines)
    common = ["--model", str(checkpoint_path), "--npz", "--chunk-lines", "10", "--device", "cpu"]
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(_cli("export", str(path), "--out", str(clean), *common), check=True, env=env)

    process = subprocess.Popen(
        _cli("export", str(path), "--out", str(broken), *common),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: _journal_lines(broken / JOURNAL) >= 60)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # nothing under a final name yet
    for name in (*FINAL, MANIFEST):
        assert not (broken / name).exists()
    done = _journal_lines(broken / JOURNAL)
    assert 60 <= done < len(lines)

    subprocess.run(
        _cli("export", str(path), "--out", str(broken), *common, "--resume"), check=True, env=env
    )
    assert_same_files(broken, clean)
    ours = json.loads((broken / MANIFEST).read_text())
    theirs = json.loads((clean / MANIFEST).read_text())
    assert ours["resumed_from_line"] == done and theirs["resumed_from_line"] == 0
    for key in ("seconds", "resumed_from_line", "input"):
        ours.pop(key), theirs.pop(key)
    assert ours == theirs
    with zipfile.ZipFile(broken / "attention.npz") as archive:
        assert archive.testzip() is None
        assert len(archive.namelist()) == len(lines)
    assert sorted(p.name for p in broken.iterdir()) == sorted(p.name for p in clean.iterdir())


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {child for child, ppid in parents.items() if ppid == parent}
        todo.extend(children - found)
        found |= children
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="walks /proc")
def test_killing_the_export_leaves_no_figure_worker(tmp_path, checkpoint_path):
    lines = [f"{s} {n}" for n in range(4) for s in SENTENCES if s]
    path = write_input(tmp_path / "in.txt", lines)
    out = tmp_path / "out"
    common = ["--model", str(checkpoint_path), "--figures", "png", "--workers", "2"]
    common += ["--chunk-lines", "2", "--device", "cpu"]
    process = subprocess.Popen(
        _cli("export", str(path), "--out", str(out), *common),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: len(list((out / "figures").glob("*.png"))) >= 2 if out.exists() else False)
    helpers = _descendants(process.pid)
    assert len(helpers) >= 2  # the figure workers (and the processes that start them)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _wait_for(lambda: not any(_running(pid) for pid in helpers), seconds=20)

    result = subprocess.run(
        _cli("export", str(path), "--out", str(out), *common, "--resume"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == sorted(f"{i}.png" for i in range(len(lines)))
    assert json.loads((out / MANIFEST).read_text())["counts"]["figures"] == len(lines)
