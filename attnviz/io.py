"""The one I/O layer: atomic writes, output-path checks and line reading.

Every file attnviz writes under a final name goes through :func:`atomic_write`: a temporary
file with a unique name beside the target (created with ``O_EXCL``, never through a symlink),
fsync, then a rename. An error removes the temporary file, so nothing is half-written.
Every text input goes through :func:`iter_lines` / :func:`read_lines`: a file or stdin, UTF-8
checked, split on ``\\n`` only (``str.splitlines`` would also split on form feeds, U+2028 ...).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from attnviz.errors import AttnvizError, InputError, OutputError, OutputExistsError

STDIN = "-"
#: Lines longer than this are refused without being decoded or tokenized.
MAX_LINE_BYTES = 1 << 20


def expand_user(path: str | os.PathLike[str]) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; unchanged when there is no such
    home folder (pathlib raises RuntimeError there), so that the caller reports it missing."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def describe_kind(mode: int) -> str:
    """A phrase for a file type, e.g. "a named pipe"."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "of an unknown kind"


def check_output(path: Path, *, overwrite: bool = False) -> None:
    """Refuse an output path that exists and is not a regular file, or exists without overwrite.

    The folder must exist. Raises :class:`OutputError` naming the path.
    """
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise OutputError(f"{path}: cannot check ({err.strerror or err})") from err
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(
            f"{path}: exists and is {describe_kind(info.st_mode)}; refusing to replace it"
        )
    if not overwrite:
        raise OutputExistsError(f"{path}: file exists; refusing to replace it")


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Callable[[IO[bytes]], Any],
    *,
    mode: int = 0o666,
    durable: bool = True,
) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary stream) to ``path`` atomically.

    The target, if it exists, must be a regular file (a symlink, device or folder is refused,
    never followed or replaced). The permissions follow the umask, as for any new file.
    ``durable``: flush the data to the disk before the rename (``fsync``); without it the file
    is still never seen half-written by other processes, but a power failure soon after may
    lose it (for files that can be made again, when their number makes ``fsync`` costly).
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(target)
        if not stat.S_ISREG(info.st_mode):
            kind = describe_kind(info.st_mode)
            raise OutputError(f"cannot write {target}: it is {kind}; refusing to replace it")
    temporary = folder / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(temporary, flags, mode)
    except OSError as err:
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    try:
        with os.fdopen(descriptor, "wb") as stream:
            if isinstance(data, bytes | bytearray | memoryview):
                stream.write(data)
            else:
                data(stream)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return target


def check_input_file(
    path: str | os.PathLike[str],
    what: str = "text file",
    *,
    pipes: bool = True,
    why: str = "",
    error: type[AttnvizError] = InputError,
) -> os.stat_result:
    """Check a readable input and return its stat: it exists and is a regular file, or (with
    ``pipes``) a named pipe. Anything else is ``error`` naming the path and what it is;
    ``why`` is added to the message for a kind that is refused."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from err
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a folder, not a {what}")
    if not (stat.S_ISREG(info.st_mode) or (pipes and stat.S_ISFIFO(info.st_mode))):
        raise error(f"{path}: is {describe_kind(info.st_mode)}, not a {what}{why}")
    return info


def _open_source(source: str | os.PathLike[str]) -> tuple[IO[bytes], str, bool]:
    if str(source) == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no input: pass text or pipe lines on stdin")
        return sys.stdin.buffer, "stdin", False
    path = Path(source)
    check_input_file(path)
    try:
        return path.open("rb"), str(path), True
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err


def decode_line(raw: bytes, name: str, number: int, *, max_bytes: int = MAX_LINE_BYTES) -> str:
    """One line as text: at most ``max_bytes`` bytes, UTF-8; a BOM on line 1 is dropped."""
    if len(raw) > max_bytes:
        raise InputError(f"{name}:{number}: line is {len(raw):,} bytes; at most {max_bytes:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{name}:{number}: not UTF-8 text (bad byte at offset {err.start})"
        ) from err
    return text.removeprefix("\ufeff") if number == 1 else text


def iter_raw_lines(stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines as bytes without their ``\\n`` / ``\\r\\n``; a line longer than ``max_bytes`` is
    yielded truncated to ``max_bytes + 1`` bytes (so callers can refuse it) without being read
    into memory whole. The rest of such a line is skipped only when the next line is asked
    for: a caller that stops at the long line never waits for its end (on ``/dev/zero``,
    there is none)."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        cut = len(line) > max_bytes and not line.endswith(b"\n")
        yield line.rstrip(b"\n").removesuffix(b"\r")
        while cut:  # skip the rest of the over-long line in bounded pieces
            rest = stream.readline(1 << 16)
            cut = bool(rest) and not rest.endswith(b"\n")


def iter_lines(source: str | os.PathLike[str], *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Decoded lines of a file or of stdin (``-``), streamed. Errors name the line."""
    stream, name, owned = _open_source(source)
    try:
        for number, raw in enumerate(iter_raw_lines(stream, max_bytes), start=1):
            yield decode_line(raw, name, number, max_bytes=max_bytes)
    finally:
        if owned:
            stream.close()


def read_lines(source: str | os.PathLike[str], *, max_bytes: int = MAX_LINE_BYTES) -> list[str]:
    """All lines of a file or of stdin (``-``)."""
    return list(iter_lines(source, max_bytes=max_bytes))
