"""Helpers shared by the export tests: CLI calls, folder snapshots, interrupted runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from attnviz.cli import app

runner = CliRunner()
SENTENCES = [
    "the boy ate an apple .",
    "",
    "did the cat sleep ?",
    "my friend drinks water every day .",
    "a dog runs in the park .",
]
#: the data files of an export (JSONL, Pharaoh, NPZ)
DATA = ("alignments.jsonl", "alignments.pharaoh", "attention.npz")
#: eleven lines, one blank, for chunk, shard and process tests (they take the first N)
CHUNK_LINES = [
    "the boy ate an apple .",
    "did the cat sleep ?",
    "",
    "a dog runs in the park .",
    "my friend drinks water every day .",
    "the girl reads a book .",
    "did the boy sleep ?",
    "a cat",
    "the dog ate the book .",
    "my friend runs .",
    "the cat reads .",
]


def export(*args):
    return runner.invoke(app, ["export", *map(str, args)])


def write_input(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tree(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed, ``skip`` left out): kind and content."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        if skip is not None and Path(folder) == skip:
            dirs.clear()
            continue
        for name in dirs + files:
            path = Path(folder) / name
            if skip is not None and path == skip:
                continue
            info = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir",)
            elif stat.S_ISREG(info.st_mode):
                found[key] = ("file", path.read_bytes(), info.st_mtime_ns)
            else:
                found[key] = ("other", stat.S_IFMT(info.st_mode))
    return found


def make_outside(tmp_path: Path) -> Path:
    """A folder beside the output folder holding files an export must never touch."""
    outside = tmp_path / "outside"
    (outside / "pictures").mkdir(parents=True)
    (outside / "victim.txt").write_text("precious\n")
    (outside / "pictures" / "holiday.png").write_bytes(b"not really a png")
    return outside


def interrupt_on_call(monkeypatch, call: int) -> None:
    """Make the translator raise KeyboardInterrupt (as Ctrl-C would) on its ``call``-th batch
    of sentences, so that an export stops after ``call - 1`` committed chunks."""
    from attnviz.translator import Translator

    real = Translator.translate_grouped
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_grouped", interrupted)


def one_line(result) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]
