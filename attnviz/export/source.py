"""The input file of an export: checked, fingerprinted, and read with change detection.

Export reads its input twice (once to fingerprint it, once to decode it, and again when an
interrupted run resumes), so it takes only regular files, and it notices a file that was
truncated, grown, rewritten or replaced while it ran, instead of describing the old file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from attnviz import io
from attnviz.errors import InputError

_BLOCK = 1 << 20


@dataclass(frozen=True)
class InputSnapshot:
    """What the input file was when the export started."""

    path: Path
    size: int
    sha256: str
    lines: int
    device: int
    inode: int
    mtime_ns: int


class _HashingReader:
    """A binary stream that hashes and counts what is read through ``readline``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def readline(self, limit: int = -1) -> bytes:
        data = self.stream.readline(limit)
        self.digest.update(data)
        self.size += len(data)
        return data


def check_input(path: str | os.PathLike[str]) -> None:
    """Refuse an input that is missing or not a regular file, naming what it is."""
    if str(path) == io.STDIN:
        raise InputError(
            "export reads its input more than once, so it takes a file, not stdin ('-')"
        )
    io.check_input_file(Path(path), pipes=False, why=" (export reads its input more than once)")


def _open(path: Path) -> IO[bytes]:
    check_input(path)
    try:
        stream = path.open("rb")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # swapped since the check
        stream.close()
        raise InputError(f"{path}: is no longer a regular file")
    return stream


def snapshot(path: str | os.PathLike[str]) -> InputSnapshot:
    """Check the input and take its size, hash and line count in one pass."""
    path = Path(path)
    digest = hashlib.sha256()
    size = lines = 0
    last = b"\n"
    with _open(path) as stream:
        info = os.fstat(stream.fileno())
        try:
            while block := stream.read(_BLOCK):
                digest.update(block)
                size += len(block)
                lines += block.count(b"\n")
                last = block[-1:]
        except OSError as err:
            raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    lines += 0 if last == b"\n" else 1
    return InputSnapshot(
        path, size, digest.hexdigest(), lines, info.st_dev, info.st_ino, info.st_mtime_ns
    )


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(_BLOCK):
                digest.update(block)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    return digest.hexdigest()


def read_lines(
    snap: InputSnapshot, max_bytes: int = io.MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes]]:
    """(0-based index, raw line) of every line; a line over ``max_bytes`` comes truncated to
    ``max_bytes + 1`` bytes (see :func:`attnviz.io.iter_raw_lines`). After the last line,
    raises :class:`InputError` if the file is not the one :func:`snapshot` saw."""
    with _open(snap.path) as stream:
        reader = _HashingReader(stream)
        try:
            yield from enumerate(io.iter_raw_lines(reader, max_bytes))  # type: ignore[arg-type]
        except OSError as err:
            raise InputError(f"{snap.path}: cannot read ({err.strerror or err})") from err
        info = os.fstat(stream.fileno())
    _check_unchanged(snap, reader, info)


def _check_unchanged(snap: InputSnapshot, reader: _HashingReader, info: os.stat_result) -> None:
    problem = None
    if (info.st_dev, info.st_ino) != (snap.device, snap.inode):
        problem = "was replaced by another file"
    elif reader.size != snap.size:
        problem = f"was {snap.size:,} bytes at the start and {reader.size:,} bytes at the end"
    elif reader.digest.hexdigest() != snap.sha256:
        problem = "was rewritten"
    elif info.st_size != snap.size:
        problem = f"was {snap.size:,} bytes at the start and is {info.st_size:,} bytes now"
    elif info.st_mtime_ns != snap.mtime_ns:
        problem = "was modified"
    else:
        try:
            now = os.stat(snap.path)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (snap.device, snap.inode):
            problem = "was moved or replaced"
    if problem is not None:
        raise InputError(
            f"{snap.path}: changed during the export ({problem}); nothing was finished; "
            "export it again with --overwrite"
        )
