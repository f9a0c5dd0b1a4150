"""Export formats: one small writer class per format, with its reader beside it.

The exporter drives every selected format through the same steps:

- ``open(offset)``: start, or continue an interrupted run after ``offset``, the size the
  format last committed (the journal keeps ``{format: committed size}``);
- ``write(group)``: add the result of one input line (a :class:`SentenceGroup`); a format
  written as one file (``encodes``) splits this into ``encode(group)``, which depends on the
  options only and may run in a decoding process, and ``add(data)``;
- ``commit()``: make everything written so far durable and return the committed size;
- ``finish()``: give the result its final name and return it;
- ``close()``: release files and processes (also after an error).

Adding a format is one class here, listed in :data:`FORMATS` and selected by an
:class:`~attnviz.export.options.ExportOptions` field named by its ``option``, plus a round-trip
test: what its reader gives back equals what was written.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from attnviz.alignment import Alignment, json_bytes
from attnviz.errors import InputError, OutputError
from attnviz.export.folder import OutputFolder, PartialFile

if TYPE_CHECKING:
    from attnviz.export.figures import FigurePool
    from attnviz.export.options import ExportOptions

#: Longest JSONL record read back (an n-best record of long sentences is a few MB).
JSONL_MAX_LINE_BYTES = 64 << 20


@dataclass(frozen=True)
class SentenceGroup:
    """The result of one input line: its hypotheses, best first, or why it failed.

    ``index`` is the 0-based line number. A failed line has no alignments and an ``error``.
    """

    index: int
    source: str
    alignments: tuple[Alignment, ...] = ()
    error: str | None = None

    @property
    def best(self) -> Alignment | None:
        return self.alignments[0] if self.alignments else None

    def keyed(self, nbest: int) -> list[tuple[str, Alignment]]:
        """Each hypothesis with its key: ``"<index>"``, or ``"<index>-<rank>"`` with n-best."""
        return [
            (str(self.index) if nbest == 1 else f"{self.index}-{alignment.rank}", alignment)
            for alignment in self.alignments
        ]


class Format:
    """One output format (see the module docstring for the protocol)."""

    #: registry key, and the key of the format's committed size in the journal
    name: ClassVar[str]
    #: the entry it creates in the output folder (a file, or a folder of figures)
    filename: ClassVar[str]
    #: the ExportOptions field that selects it; None: always written
    option: ClassVar[str | None] = None
    #: True when ``write`` is ``add(encode(group))`` with an ``encode`` free of file state
    encodes: ClassVar[bool] = False

    def __init__(self, folder: OutputFolder, options: ExportOptions) -> None:
        self.folder = folder
        self.options = options

    @classmethod
    def selected(cls, options: ExportOptions) -> bool:
        return cls.option is None or bool(getattr(options, cls.option))

    @classmethod
    def entries(cls) -> tuple[str, ...]:
        """Every name it may leave in the folder, final or unfinished."""
        return (cls.filename,)

    @classmethod
    def check_previous(cls, folder: OutputFolder, name: str) -> Callable[[], None]:
        """Check that the entry ``name`` left by an earlier export is what this format writes
        (refused otherwise, naming it); return what removes it."""
        folder.regular(name)
        return lambda: folder.remove(name)

    def reclaim(self) -> None:
        """Take back the final name from a run that died while finishing."""

    def open(self, offset: int) -> None:
        raise NotImplementedError

    def write(self, group: SentenceGroup) -> None:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def finish(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` took; safe to call more than once."""


class AppendedFile(Format):
    """A format written as one file, appended to under ``<filename>.partial`` until finished."""

    encodes = True
    #: True when every commit ends with a whole line
    lines: ClassVar[bool] = True

    def __init__(self, folder: OutputFolder, options: ExportOptions) -> None:
        super().__init__(folder, options)
        self._file: PartialFile | None = None
        self._pending = bytearray()

    @classmethod
    def partial_name(cls) -> str:
        return f"{cls.filename}.partial"

    @classmethod
    def entries(cls) -> tuple[str, ...]:
        return (cls.filename, cls.partial_name())

    def reclaim(self) -> None:
        self.folder.reclaim(self.filename, self.partial_name())

    def open(self, offset: int) -> None:
        self._file = self.folder.open_partial(self.partial_name(), offset)
        if self.lines and offset and self._file.read_at(offset - 1, 1) != b"\n":
            self.close()
            raise OutputError(
                f"{self.folder / self.partial_name()}: its journal says a commit ended inside a "
                "line; start again with --overwrite"
            )

    def write(self, group: SentenceGroup) -> None:
        self.add(self.encode(group))

    def encode(self, group: SentenceGroup) -> bytes:
        """The bytes one group adds to the file (from the options and the group alone)."""
        raise NotImplementedError

    def add(self, data: bytes) -> None:
        """Append what :meth:`encode` made for one or more groups, in input order."""
        self._pending += data

    @property
    def end(self) -> int:
        """Where the next byte written will be: committed size plus what is pending."""
        return self._opened().size + len(self._pending)

    def commit(self) -> int:
        size = self._opened().append(bytes(self._pending))
        self._pending.clear()
        return size

    def finish(self) -> str:
        self.close()
        self.folder.publish(self.partial_name(), self.filename)
        return self.filename

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _opened(self) -> PartialFile:
        if self._file is None:
            raise OutputError(f"{self.folder / self.partial_name()}: not open")
        return self._file


# -- JSONL ------------------------------------------------------------------------------------


class JsonlFormat(AppendedFile):
    """``alignments.jsonl``: one object per input line, the ``translate --json`` keys plus
    ``id``; other hypotheses under ``nbest``; a failed line as ``id``, ``source``, ``error``."""

    name = "jsonl"
    filename = "alignments.jsonl"

    def encode(self, group: SentenceGroup) -> bytes:
        links, diagnostics = self.options.links, self.options.diagnostics
        return json_bytes(record(group, links, diagnostics, arrays=True)) + b"\n"


def record(
    group: SentenceGroup, links: str = "argmax", diagnostics: bool = False, arrays: bool = False
) -> dict[str, Any]:
    """The JSONL record of a group; ``links``, ``diagnostics``: see :meth:`Alignment.to_dict`;
    with ``arrays`` the matrices stay numpy arrays (for :func:`json_bytes`)."""
    if group.error is not None or group.best is None:
        return {"id": group.index, "source": group.source, "error": group.error or ""}
    as_dict = {"links": links, "diagnostics": diagnostics}
    result = {"id": group.index, **group.best.json_record(arrays, **as_dict)}
    if len(group.alignments) > 1:
        result["nbest"] = [a.json_record(arrays, **as_dict) for a in group.alignments[1:]]
    return result


def read_jsonl(source: str | os.PathLike[str]) -> Iterator[SentenceGroup]:
    """The groups of a JSONL file, or of stdin (``-``): export's records, or those of
    ``translate --json`` (one hypothesis per line; a record without ``id`` is numbered by its
    position). Blank lines are skipped. Errors name the file and line."""
    from attnviz import io

    if str(source) != io.STDIN:
        io.check_input_file(Path(source), "text file of alignment records")
    name = "stdin" if str(source) == io.STDIN else str(source)
    count = 0
    lines = io.iter_lines(source, max_bytes=JSONL_MAX_LINE_BYTES)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        yield _group_from_line(line, f"{name}:{number}", count)
        count += 1
    if not count:
        raise InputError(f"{name}: no alignment records")


def _group_from_line(line: str, where: str, position: int) -> SentenceGroup:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not a JSON alignment record ({err.msg})") from err
    except ValueError as err:  # an integer too long to convert
        reason = str(err).split(":")[0]
        raise InputError(f"{where}: not a JSON alignment record ({reason})") from err
    except RecursionError:
        raise InputError(f"{where}: not a JSON alignment record (nested too deeply)") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: not a JSON alignment record")
    index = value.pop("id", position)
    if isinstance(index, bool) or not isinstance(index, int):
        raise InputError(f"{where}: bad alignment record: 'id' must be a whole number")
    if "error" in value:
        return SentenceGroup(index, str(value.get("source", "")), error=str(value["error"]))
    others = value.pop("nbest", [])
    if not isinstance(others, list) or not all(isinstance(item, dict) for item in others):
        raise InputError(f"{where}: bad alignment record: 'nbest' must be a list of records")
    try:
        alignments = tuple(Alignment.from_dict(item) for item in [value, *others])
    except (ValueError, TypeError) as err:
        raise InputError(f"{where}: bad alignment record: {err}") from err
    return SentenceGroup(index, alignments[0].source, alignments)


# -- Pharaoh ----------------------------------------------------------------------------------


class PharaohFormat(AppendedFile):
    """``alignments.pharaoh``: the best hypothesis's hard links ``i-j`` per input line (read
    off by ``ExportOptions.links``); an empty line for an empty or failed input."""

    name = "pharaoh"
    filename = "alignments.pharaoh"

    def encode(self, group: SentenceGroup) -> bytes:
        best = group.best
        return ((best.pharaoh(self.options.links) if best is not None else "") + "\n").encode()


def read_pharaoh(path: str | os.PathLike[str]) -> Iterator[list[tuple[int, int]]]:
    """The links of each line of a Pharaoh file, as (source index, target index) pairs."""
    from attnviz import io

    for number, line in enumerate(io.iter_lines(path), start=1):
        links = []
        for pair in line.split():
            match = re.fullmatch(r"(\d+)-(\d+)", pair)
            if match is None:
                raise InputError(f"{path}:{number}: {pair!r} is not a link 'i-j'")
            links.append((int(match.group(1)), int(match.group(2))))
        yield links


# -- NPZ --------------------------------------------------------------------------------------

# An NPZ is a ZIP archive of .npy files. It is written as a stream of stored (uncompressed)
# entries, so that it can be appended to and cut back to a commit like the other files; the
# central directory that ends the archive is added when the export finishes, and rebuilt from
# the local headers when an interrupted run resumes.
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_ZIP64_LIMIT = (1 << 31) - 1  # beyond this, offsets and sizes need ZIP64 records
_DOS_DATE = (0, 0x21)  # 1980-01-01 00:00: fixed so that the bytes do not depend on the clock


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class NpzFormat(AppendedFile):
    """``attention.npz``: the weights of line ``id`` under ``"<id>"`` (``"<id>-<rank>"`` with
    n-best); ``numpy.load`` reads it."""

    name = "npz"
    filename = "attention.npz"
    option = "npz"
    lines = False

    def __init__(self, folder: OutputFolder, options: ExportOptions) -> None:
        super().__init__(folder, options)
        self._entries: list[tuple[bytes, int, int, int]] = []  # name, crc, size, offset

    def open(self, offset: int) -> None:
        super().open(offset)
        self._entries = self._scan(offset)

    def encode(self, group: SentenceGroup) -> bytes:
        chunk = bytearray()
        for key, alignment in group.keyed(self.options.decode.nbest):
            name, data = f"{key}.npy".encode(), _npy_bytes(alignment.weights)
            if len(data) > _ZIP64_LIMIT:
                raise OutputError(f"{self.filename}: array {key} is over 2 GiB")
            time, date = _DOS_DATE
            chunk += _LOCAL.pack(
                b"PK\x03\x04", 20, 0, 0, 0, time, date, zlib.crc32(data), len(data), len(data),
                len(name), 0,
            )  # fmt: skip
            chunk += name + data
        return bytes(chunk)

    def add(self, data: bytes) -> None:
        """Append local entries made by :meth:`encode`, noting where each one starts."""
        self._entries.extend(_local_entries(data, self.end))
        super().add(data)

    def finish(self) -> str:
        self._opened().append(self._central_directory())
        return super().finish()

    def _central_directory(self) -> bytes:
        start = self.end
        out = bytearray()
        for name, crc, size, offset in self._entries:
            extra = b""
            if offset > _ZIP64_LIMIT:
                extra = struct.pack("<HHQ", 1, 8, offset)
            version = 45 if extra else 20
            time, date = _DOS_DATE
            out += _CENTRAL.pack(
                b"PK\x01\x02", version, 3, version, 0, 0, 0, time, date, crc, size, size,
                len(name), len(extra), 0, 0, 0, 0, min(offset, 0xFFFFFFFF),
            )  # fmt: skip
            out += name + extra
        count, size = len(self._entries), len(out)
        if count >= 0xFFFF or start > _ZIP64_LIMIT or size > _ZIP64_LIMIT:
            end64 = start + size
            out += _END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start)
            out += _LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1)
        out += _END.pack(
            b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
            min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF), 0,
        )  # fmt: skip
        return bytes(out)

    def _scan(self, end: int) -> list[tuple[bytes, int, int, int]]:
        """The entries of the first ``end`` bytes of the partial file, from their headers."""
        entries, offset = [], 0
        file = self._opened()
        while offset < end:
            header = file.read_at(offset, _LOCAL.size)
            fields = _LOCAL.unpack(header) if len(header) == _LOCAL.size else None
            if fields is None or fields[0] != b"PK\x03\x04":
                raise OutputError(
                    f"{file.path}: damaged at byte {offset:,}; start again with --overwrite"
                )
            crc, size, name_length, extra_length = fields[7], fields[8], fields[10], fields[11]
            name = file.read_at(offset + _LOCAL.size, name_length)
            entries.append((name, crc, size, offset))
            offset += _LOCAL.size + name_length + extra_length + size
        if offset != end:
            raise OutputError(f"{file.path}: damaged at its end; start again with --overwrite")
        return entries


def _local_entries(data: bytes, base: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(name, crc, size, offset) of each local entry in ``data``, which starts at ``base``."""
    offset = 0
    while offset < len(data):
        fields = _LOCAL.unpack_from(data, offset)
        crc, size, name_length, extra_length = fields[7], fields[8], fields[10], fields[11]
        start = offset + _LOCAL.size
        yield bytes(data[start : start + name_length]), crc, size, base + offset
        offset = start + name_length + extra_length + size


def read_npz(path: str | os.PathLike[str]) -> Iterator[tuple[str, np.ndarray]]:
    """The (key, weights) pairs of an NPZ file, in the order they were written."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as arrays:
            for key in arrays.files:
                yield key, arrays[key]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not an NPZ file of attention weights ({err})") from err


# -- HTML -------------------------------------------------------------------------------------


class HtmlFormat(AppendedFile):
    """``view.html``: the interactive HTML view of every line (:mod:`attnviz.render.html`),
    streamed: the page's head, one entry per line, its tail when the export finishes."""

    name = "html"
    filename = "view.html"
    option = "html"

    def __init__(self, folder: OutputFolder, options: ExportOptions) -> None:
        from attnviz.render.html import HtmlPage

        super().__init__(folder, options)
        self._page = HtmlPage(
            title="attnviz export", words=options.decode.words, diagnostics=options.diagnostics
        )

    def open(self, offset: int) -> None:
        super().open(offset)
        if offset == 0:
            self._pending += self._page.head().encode()

    def encode(self, group: SentenceGroup) -> bytes:
        return self._page.sentence(group.index, group).encode()

    def frame(self) -> tuple[bytes, bytes]:
        """What the page holds before its first entry and after its last (each entry is one
        line)."""
        return self._page.head().encode(), self._page.tail().encode()

    def finish(self) -> str:
        self._opened().append(self._page.tail().encode())
        return super().finish()


def read_html(path: str | os.PathLike[str]) -> Iterator[SentenceGroup]:
    """The groups of an export's ``view.html``, exactly as they were written."""
    from attnviz.render.html import read_page

    for sentence in read_page(path):
        yield SentenceGroup(sentence.index, sentence.source, sentence.alignments, sentence.error)


# -- figures ----------------------------------------------------------------------------------

#: The figure files of an export folder, and the temporary files of a figure being written.
FIGURE_NAME = re.compile(r"(\d+(?:-\d+)?)\.(png|svg)")
_FIGURE_TEMPORARY = re.compile(r"\.\d+(?:-\d+)?\.(?:png|svg)\.[0-9]+-[0-9a-f]+\.tmp")
OWNED_FIGURE_FILE = re.compile(f"{FIGURE_NAME.pattern}|{_FIGURE_TEMPORARY.pattern}")


class FigureFormat(Format):
    """``figures/<key>.png|svg``: one figure per hypothesis of a non-empty line, drawn in
    worker processes into a folder the export creates; the committed size is the number of
    figures written."""

    name = "figures"
    filename = "figures"
    option = "figures"

    def __init__(self, folder: OutputFolder, options: ExportOptions) -> None:
        super().__init__(folder, options)
        self._pool: FigurePool | None = None
        self._identity: tuple[int, int] | None = None
        self._count = 0

    @classmethod
    def check_previous(cls, folder: OutputFolder, name: str) -> Callable[[], None]:
        entries = folder.check_folder_files(name, OWNED_FIGURE_FILE)
        return lambda: folder.remove_folder(name, entries)

    def open(self, offset: int) -> None:
        from attnviz.export.figures import FigurePool

        if offset == 0 and self.folder.lstat(self.filename) is None:
            self._identity = self.folder.make_folder(self.filename)
        else:
            self._identity = self.folder.check_folder(self.filename)
            # a figure being written when the last run was killed left its temporary file
            entries = self.folder.check_folder_files(self.filename, OWNED_FIGURE_FILE)
            leftovers = [name for name in entries if _FIGURE_TEMPORARY.fullmatch(name)]
            if leftovers:
                self.folder.remove_files(self.filename, leftovers)
        self._count = offset
        self._pool = FigurePool(self.options)

    def write(self, group: SentenceGroup) -> None:
        best = group.best
        if self._pool is None or best is None or not (best.shape[0] and best.shape[1]):
            return
        for key, alignment in group.keyed(self.options.decode.nbest):
            path = self.folder / self.filename / f"{key}.{self.options.figures}"
            self._pool.submit(alignment, path)
            self._count += 1

    def commit(self) -> int:
        if self._pool is not None:
            self._pool.wait()
        # the figures went into the folder created at the start, not into a substitute
        if self.folder.check_folder(self.filename) != self._identity:
            raise OutputError(f"{self.folder / self.filename}: replaced during the export")
        return self._count

    def finish(self) -> str:
        self.commit()
        self.close()
        return self.filename

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def read_figures(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """The figure files of an export's ``figures`` folder, by key (``"<id>"`` or
    ``"<id>-<rank>"``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of figures")
    found = {}
    for path in sorted(folder.iterdir()):
        match = FIGURE_NAME.fullmatch(path.name)
        if match is not None and path.is_file():
            found[match.group(1)] = path
    return found


#: Every format, in the order they are written and finished; the key is the format's name.
FORMATS: dict[str, type[Format]] = {
    fmt.name: fmt for fmt in (JsonlFormat, PharaohFormat, NpzFormat, HtmlFormat, FigureFormat)
}


def selected_formats(options: ExportOptions) -> list[type[Format]]:
    """The formats an export with ``options`` writes."""
    return [fmt for fmt in FORMATS.values() if fmt.selected(options)]
