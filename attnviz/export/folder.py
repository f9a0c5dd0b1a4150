"""The output folder as a jail.

Export creates, opens and removes only regular files it owns inside its folder. Every entry is
checked with ``lstat`` and opened with ``O_NOFOLLOW`` (new files with ``O_EXCL``), so a
symbolic link, pipe or device planted there is refused, never followed; final names are given
by a rename inside the folder, which replaces a link rather than writing through it; files
under final names are written by :func:`attnviz.io.atomic_write` (unique temporary names).
A lock file, held with an advisory lock (``fcntl.flock``) for the whole run, makes a second
export into the same folder fail at once. The folder itself may be reached through a link:
it is the place the user chose.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from attnviz import io
from attnviz.errors import OutputError

LOCK = ".attnviz-export.lock"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _cannot(action: str, path: Path, err: OSError) -> OutputError:
    if err.errno == errno.ELOOP:
        return OutputError(f"{path}: is a symbolic link; refusing to follow it")
    return OutputError(f"cannot {action} {path}: {err.strerror or err}")


def refuse(path: Path, info: os.stat_result) -> OutputError:
    """The error for an entry that is not a regular file where export needs one."""
    kind = io.describe_kind(info.st_mode)
    return OutputError(f"{path}: is {kind}, not a file this export wrote; refusing to use it")


class PartialFile:
    """A file the export appends to and makes durable chunk by chunk; errors name it."""

    def __init__(self, path: Path, descriptor: int, size: int) -> None:
        self.path = path
        self.size = size
        self._descriptor: int | None = descriptor

    def append(self, data: bytes) -> int:
        """Write ``data`` at the end, fsync, and return the new size."""
        descriptor = self._open_descriptor()
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        except OSError as err:
            raise _cannot("write", self.path, err) from err
        self.size += len(data)
        return self.size

    def read_at(self, offset: int, length: int) -> bytes:
        try:
            return os.pread(self._open_descriptor(), length, offset)
        except OSError as err:
            raise _cannot("read", self.path, err) from err

    def _open_descriptor(self) -> int:
        if self._descriptor is None:
            raise OutputError(f"{self.path}: already closed")
        return self._descriptor

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


class OutputFolder:
    """The folder an export writes into, and the only operations it performs there."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- the folder and its lock -------------------------------------------------------------

    def create(self) -> None:
        """Make the folder (and its parents) unless it exists; refuse anything but a folder."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise _cannot("create", self.path, err) from err
            return
        except OSError as err:
            raise _cannot("check", self.path, err) from err
        if not stat.S_ISDIR(info.st_mode):
            kind = io.describe_kind(info.st_mode)
            raise OutputError(f"{self.path}: exists and is {kind}, not a folder")

    def lock(self) -> None:
        """Take the folder's lock, or fail at once if another export holds it."""
        try:
            import fcntl
        except ImportError:  # not a POSIX system: the folder is not locked
            fcntl = None
        path = self / LOCK
        for _ in range(10):
            flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK | _CLOEXEC
            try:
                descriptor = os.open(path, flags, 0o666)
            except OSError as err:
                raise _cannot("create the lock file", path, err) from err
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                os.close(descriptor)
                raise refuse(path, info)
            try:
                if fcntl is not None:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(descriptor)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(
                        f"{self.path}: another export is writing into this folder "
                        f"(it holds {LOCK}); wait for it to end or choose another folder"
                    ) from None
                raise _cannot("lock", path, err) from err
            # an export that just ended removes its lock file: ours must still be the one there
            current = self.lstat(LOCK)
            if current is not None and (current.st_dev, current.st_ino) == (
                info.st_dev,
                info.st_ino,
            ):
                self._lock = descriptor
                return
            os.close(descriptor)
        raise OutputError(f"{path}: cannot take the lock (it keeps changing)")

    def unlock(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            current = os.lstat(self / LOCK)
            mine = os.fstat(self._lock)
            if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(self / LOCK)
        os.close(self._lock)
        self._lock = None

    # -- entries -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The folder's entries, the lock file left out."""
        try:
            return sorted(name for name in os.listdir(self.path) if name != LOCK)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise _cannot("list", self.path, err) from err

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (links not followed), or None when there is none."""
        try:
            return os.lstat(self / name)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise _cannot("check", self / name, err) from err

    def regular(self, name: str) -> bool:
        """True when ``name`` is a regular file; False when absent; refused otherwise."""
        info = self.lstat(name)
        if info is None:
            return False
        if not stat.S_ISREG(info.st_mode):
            raise refuse(self / name, info)
        return True

    def read_json(self, name: str, limit: int = 1 << 20) -> Any:
        """The JSON value of a regular file of at most ``limit`` bytes; None when it is absent,
        not a regular file, too large or not JSON (so it is not taken for one of ours)."""
        info = self.lstat(name)
        if info is None or not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        try:
            descriptor = os.open(self / name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as stream:
            data = stream.read(limit + 1)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write a file under its final name atomically (see :func:`attnviz.io.atomic_write`)."""
        io.atomic_write(self / name, data)

    def remove(self, name: str) -> None:
        """Remove a regular file (absent is fine); anything else is refused."""
        if self.regular(name):
            try:
                os.unlink(self / name)
            except OSError as err:
                raise _cannot("remove", self / name, err) from err

    # -- files being written -----------------------------------------------------------------

    def open_partial(self, name: str, offset: int) -> PartialFile:
        """Open ``name`` for appending after its first ``offset`` bytes (dropping the rest);
        create it when it is absent and ``offset`` is 0."""
        path = self / name
        exists = self.regular(name)
        if not exists and offset:
            raise OutputError(
                f"{path}: missing, but the unfinished export there needs its first {offset:,} "
                "bytes; start again with --overwrite"
            )
        flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC
        flags |= _NONBLOCK if exists else os.O_CREAT | os.O_EXCL
        try:
            descriptor = os.open(path, flags, 0o666)
        except OSError as err:
            raise _cannot("open", path, err) from err
        info = os.fstat(descriptor)
        problem: OutputError | None = None
        if not stat.S_ISREG(info.st_mode):
            problem = refuse(path, info)
        elif info.st_nlink > 1:  # another name for the same file may lie outside the folder
            problem = OutputError(f"{path}: has other hard links; refusing to write to it")
        elif info.st_size < offset:
            problem = OutputError(
                f"{path}: shorter than its journal says ({info.st_size:,} < {offset:,} bytes); "
                "start again with --overwrite"
            )
        else:
            try:
                os.ftruncate(descriptor, offset)  # drop anything after the last commit
                os.lseek(descriptor, offset, os.SEEK_SET)
            except OSError as err:
                problem = _cannot("truncate", path, err)
        if problem is not None:
            os.close(descriptor)
            raise problem
        return PartialFile(path, descriptor, offset)

    def publish(self, partial: str, final: str) -> None:
        """Give a finished file its final name (replacing an earlier regular file only)."""
        self.regular(final)
        try:
            os.replace(self / partial, self / final)
        except OSError as err:
            raise _cannot("rename", self / partial, err) from err

    def reclaim(self, final: str, partial: str) -> None:
        """Undo :meth:`publish` of a run that died while finishing."""
        if self.lstat(partial) is None and self.regular(final):
            try:
                os.rename(self / final, self / partial)
            except OSError as err:
                raise _cannot("rename", self / final, err) from err

    # -- sub-folders -------------------------------------------------------------------------

    def make_folder(self, name: str) -> tuple[int, int]:
        """Create a sub-folder that must not exist yet; return its identity (device, inode)."""
        try:
            os.mkdir(self / name)
        except FileExistsError:
            info = self.lstat(name)
            if info is not None and not stat.S_ISDIR(info.st_mode):
                raise refuse(self / name, info) from None
            raise OutputError(
                f"{self / name}: already exists; refusing to write into a folder this export "
                "did not create"
            ) from None
        except OSError as err:
            raise _cannot("create", self / name, err) from err
        return self.check_folder(name)

    def check_folder(self, name: str) -> tuple[int, int]:
        """The identity of a real sub-folder owned by this user; links and the rest refused."""
        path = self / name
        info = self.lstat(name)
        if info is None:
            raise OutputError(f"{path}: missing; start again with --overwrite")
        if not stat.S_ISDIR(info.st_mode):
            raise OutputError(
                f"{path}: is {io.describe_kind(info.st_mode)}, not the folder this export "
                "created; refusing to use it"
            )
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise OutputError(f"{path}: belongs to another user; refusing to write into it")
        return info.st_dev, info.st_ino

    def check_folder_files(self, name: str, pattern: re.Pattern[str]) -> list[str]:
        """The entries of sub-folder ``name``, each a regular file matching ``pattern``;
        anything else is refused, naming it."""
        self.check_folder(name)
        folder = self / name
        try:
            entries = sorted(os.listdir(folder))
        except OSError as err:
            raise _cannot("list", folder, err) from err
        for entry in entries:
            info = os.lstat(folder / entry)
            if not stat.S_ISREG(info.st_mode):
                raise refuse(folder / entry, info)
            if not pattern.fullmatch(entry):
                raise OutputError(
                    f"{folder / entry}: not written by an export; refusing to remove it"
                )
        return entries

    def remove_folder(self, name: str, entries: list[str]) -> None:
        """Remove the files ``entries`` (checked by :meth:`check_folder_files`) and the folder."""
        folder = self / name
        try:
            for entry in entries:
                os.unlink(folder / entry)
            os.rmdir(folder)
        except OSError as err:
            raise _cannot("remove", folder, err) from err
