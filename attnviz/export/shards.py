"""Exports split across machines: which shard a process is, and joining the shards.

``export --shard K/N`` exports the chunks ``K, K + N, K + 2N, ...`` of the input (a chunk is
``chunk_lines`` lines, numbered from the start of the file) into its own resumable folder;
:func:`merge` joins the N finished shard folders into one export whose files are
byte-identical to those of a single run with the same options.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from attnviz.errors import InputError, OutputError, UsageError
from attnviz.export.options import MAX_CHUNK_LINES, MAX_SHARDS, ExportOptions

#: What identifies an export's content; shards of one export agree on all of it.
#: Stands for any number written with more digits than this one has.
_TOO_LARGE = 10**18

_IDENTITY = ("attnviz_version", "input_size", "input_sha256", "model_sha256", "precision")


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"K/N"`` (0 <= K < N), or ``"auto"``: ``RANK``/``WORLD_SIZE`` (torchrun), else
    ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` (a Slurm job array; ids counted from
    ``SLURM_ARRAY_TASK_MIN`` by ``SLURM_ARRAY_TASK_STEP``)."""
    environ = os.environ if environ is None else environ
    text = text.strip()
    if text == "auto":
        if "RANK" in environ and "WORLD_SIZE" in environ:
            index, count = _whole(environ, "RANK"), _whole(environ, "WORLD_SIZE")
            where = "RANK/WORLD_SIZE"
        elif "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
            index, count = _slurm_shard(environ)
            where = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
        else:
            for pair in (("RANK", "WORLD_SIZE"), ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")):
                half = [name for name in pair if name in environ]
                if half:
                    missing = next(name for name in pair if name not in environ)
                    raise UsageError(f"--shard auto: {half[0]} is set but {missing} is not")
            raise UsageError(
                "--shard auto reads RANK and WORLD_SIZE (torchrun) or SLURM_ARRAY_TASK_ID and "
                "SLURM_ARRAY_TASK_COUNT (a Slurm job array); neither pair is set"
            )
        _check_count(count)
        if not 0 <= index < count:
            raise UsageError(f"--shard auto: {where} give shard {index} of {count}")
    else:
        match = re.fullmatch(r"([0-9]+)/([0-9]+)", text)
        if match is None:
            raise UsageError(f"--shard must be K/N (e.g. 0/4) or auto, not {text!r:.60}")
        index, count = _number(match.group(1)), _number(match.group(2))
        _check_count(count)
        if not 0 <= index < count:
            raise UsageError(f"--shard {text}: K must be between 0 and N - 1")
    return index, count


def _slurm_shard(environ: Mapping[str, str]) -> tuple[int, int]:
    """The shard of a Slurm array task: task ids MIN, MIN + STEP, … are shards 0, 1, …
    (``--array=0-15:4`` makes 4 shards); an array with gaps or a list of ids is refused."""

    def number(name: str, default: int) -> int:
        return _whole(environ, name) if name in environ else default

    count = _whole(environ, "SLURM_ARRAY_TASK_COUNT")
    first = number("SLURM_ARRAY_TASK_MIN", 0)
    step = max(1, number("SLURM_ARRAY_TASK_STEP", 1))
    last = number("SLURM_ARRAY_TASK_MAX", first + (count - 1) * step)
    offset = _whole(environ, "SLURM_ARRAY_TASK_ID") - first
    if count and (last != first + (count - 1) * step or offset % step):
        raise UsageError(
            f"--shard auto: a Slurm array of {count} tasks from {first} to {last} by {step} has "
            "gaps; use --array=A-B or A-B:STEP, or give --shard K/N"
        )
    return offset // step, count


def _check_count(count: int) -> None:
    if count > MAX_SHARDS:
        told = f", not {count:,}" if count < _TOO_LARGE else ""
        raise UsageError(f"at most {MAX_SHARDS:,} shards{told}")


def _whole(environ: Mapping[str, str], name: str) -> int:
    value = environ[name].strip()
    if re.fullmatch(r"[0-9]+", value) is None:
        raise UsageError(f"--shard auto: {name}={value!r:.60} is not a whole number")
    return _number(value)


def _number(digits: str) -> int:
    """ASCII ``digits`` as a number; one too long to be a shard number is capped (any value
    over :data:`MAX_SHARDS` is refused the same way), so that no digit string is too long
    to convert."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < len(str(_TOO_LARGE)) else _TOO_LARGE


def shard_folder(out: str | os.PathLike[str], index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` of an export into ``out`` goes: a folder inside
    ``out`` that attnviz makes, so a symbolic link there is refused, never followed."""
    path = Path(out) / f"shard-{index:05d}-of-{count:05d}"
    if path.is_symlink():
        raise OutputError(f"{path}: is a symbolic link; a shard folder must be a real folder")
    return path


# -- merging ----------------------------------------------------------------------------------


@dataclass
class _Shard:
    path: Path
    manifest: dict[str, Any]
    index: int


def _read_shard(path: Path) -> _Shard:
    from attnviz.export.exporter import JOURNAL, MANIFEST
    from attnviz.export.folder import OutputFolder

    folder = OutputFolder(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    if folder.lstat(JOURNAL) is not None:
        raise InputError(f"{path}: the shard export there is unfinished; finish it with --resume")
    manifest = folder.read_json(MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("options"), dict):
        raise InputError(f"{path}: no finished export there (no {MANIFEST} of attnviz)")
    shard = manifest["options"].setdefault("shard", [0, 1])  # a whole export: shard 0 of 1
    if not (isinstance(shard, list) and len(shard) == 2 and all(_whole_number(v) for v in shard)):
        raise InputError(f"{path}: damaged {MANIFEST} (its shard is not K, N)")
    _check_manifest(path / MANIFEST, manifest)
    return _Shard(path, manifest, shard[0])


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_manifest(where: Path, manifest: dict[str, Any]) -> None:
    """Refuse a manifest whose numbers and lists merge relies on are not what export writes."""
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(
        _whole_number(counts.get(key)) for key in ("lines", "records", "empty", "failed")
    ):
        raise InputError(f"{where}: damaged (its counts are not whole numbers)")
    if not _whole_number(counts.get("figures", 0)):
        raise InputError(f"{where}: damaged (its count of figures is not a whole number)")
    seconds = manifest.get("seconds", 0.0)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds < float("inf")
    ):
        raise InputError(f"{where}: damaged (its seconds are not a number)")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise InputError(f"{where}: damaged (its files are not a list of names)")
    chunk_lines = manifest["options"].get("chunk_lines")
    if not _whole_number(chunk_lines) or not 1 <= chunk_lines <= MAX_CHUNK_LINES:
        raise InputError(f"{where}: damaged (its chunk_lines is not a chunk size)")


def _check(shards: list[_Shard]) -> tuple[int, dict[str, Any]]:
    """The shards, checked to be all of one export; return (count, options without shard)."""
    first = shards[0].manifest
    count = first["options"]["shard"][1]
    options = {k: v for k, v in first["options"].items() if k != "shard"}
    seen: dict[int, Path] = {}
    for shard in shards:
        manifest = shard.manifest
        for key in _IDENTITY:
            if manifest.get(key) != first.get(key):
                raise UsageError(
                    f"{shard.path}: not a shard of the same export as {shards[0].path} "
                    f"({key} differs)"
                )
        other = {k: v for k, v in manifest["options"].items() if k != "shard"}
        if other != options or manifest["options"]["shard"][1] != count:
            raise UsageError(
                f"{shard.path}: exported with other options than {shards[0].path}; "
                "shards must share every option but the shard index"
            )
        if manifest.get("files") != first.get("files"):
            raise UsageError(f"{shard.path}: holds other files than {shards[0].path}")
        if shard.index in seen:
            raise UsageError(f"{shard.path} and {seen[shard.index]} are both shard {shard.index}")
        seen[shard.index] = shard.path
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        few = ", ".join(str(index) for index in missing[:5])
        raise UsageError(f"shards {few}{' …' if len(missing) > 5 else ''} of {count} are missing")
    return count, options


@dataclass
class MergeStats:
    lines: int
    records: int
    empty: int
    failed: int
    figures: int
    shards: int


def merge(
    shard_dirs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> MergeStats:
    """Join finished shard folders into one export in ``out``; its files are byte-identical
    to those of a single run (the manifest sums the shards' counts and times)."""
    from attnviz.export.exporter import JOURNAL, MANIFEST, Exporter, _Journal
    from attnviz.export.formats import selected_formats

    if not shard_dirs:
        raise UsageError("give the shard folders to merge")
    shards = [_read_shard(Path(path)) for path in shard_dirs]
    count, options_values = _check(shards)
    _check_out(Path(out), shards)
    shards.sort(key=lambda shard: shard.index)
    counts = _checked_counts(shards, count, options_values["chunk_lines"])
    export_options = _merged_options(shards[0], options_values)

    # the output folder: checked, locked and cleared as export does
    exporter = Exporter(None, Path(os.devnull), Path(out), export_options, overwrite=overwrite)
    folder = exporter.folder
    folder.create()
    folder.lock()
    try:
        if folder.names():
            if not overwrite:
                raise UsageError(
                    f"{folder.path}: folder is not empty; use --overwrite to replace an "
                    "earlier export there"
                )
            exporter._clear_previous()
        formats = [fmt(folder, export_options) for fmt in selected_formats(export_options)]
        journal = _Journal({"merge": [str(shard.path) for shard in shards]})
        journal.sizes = {fmt.name: 0 for fmt in formats}
        folder.write(JOURNAL, journal.to_bytes())  # marks the partial files as ours
        progress = _Progress(counts["lines"], export_options.chunk_lines, count, on_progress)
        written = _merge_formats(formats, shards, folder, progress)
        manifest = dict(shards[0].manifest)
        manifest.update(
            options=options_values,
            counts=counts,
            files=written,
            resumed_from_line=0,
            seconds=round(sum(float(s.manifest.get("seconds", 0.0)) for s in shards), 3),
            merged_from=[str(shard.path) for shard in shards],
        )
        import json

        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        folder.write(MANIFEST, text.encode("utf-8"))
        folder.remove(JOURNAL)
    finally:
        folder.unlock()
    return MergeStats(shards=count, **counts)


def _checked_counts(shards: list[_Shard], count: int, chunk_lines: int) -> dict[str, int]:
    """The shards' counts summed, each shard checked to hold the lines its number takes."""
    counts = {
        key: sum(shard.manifest["counts"].get(key, 0) for shard in shards)
        for key in ("lines", "records", "empty", "failed", "figures")
    }
    total = counts["lines"]
    for shard in shards:
        taken = ExportOptions(chunk_lines=chunk_lines, shard=(shard.index, count))
        expected = taken.lines_taken(total)
        if shard.manifest["counts"].get("lines") != expected:
            raise InputError(
                f"{shard.path}: holds {shard.manifest['counts'].get('lines')} lines, but shard "
                f"{shard.index} of {count} of a {total}-line input has {expected}"
            )
    return counts


def _merged_options(first: _Shard, options_values: dict[str, Any]) -> ExportOptions:
    """The export options that write the files the shards hold (their manifest's list)."""
    from attnviz.export.formats import FORMATS
    from attnviz.options import DecodeOptions

    files = list(first.manifest.get("files") or [])
    known = {fmt.filename for fmt in FORMATS.values()}
    unknown = [name for name in files if name not in known]
    if unknown:
        raise InputError(f"{first.path}: unknown file {unknown[0]!r} in its manifest")
    return ExportOptions(
        decode=DecodeOptions(words=options_values.get("words", False)),
        npz="attention.npz" in files,
        html="view.html" in files,
        figures=_figure_format(first) if "figures" in files else None,
        chunk_lines=options_values["chunk_lines"],
        diagnostics=options_values.get("diagnostics", False),
    )


@dataclass
class _Progress:
    """Where a merge is: ``total`` lines in chunks of ``chunk_lines`` over ``count`` shards,
    reported as lines done over all files (each file's lines count once)."""

    total: int
    chunk_lines: int
    count: int
    report: Callable[[int, int], None] | None
    files: int = 1
    file: int = 0  # the file being written, from 0

    def chunk_done(self, number: int) -> None:
        if self.report is not None:
            done = self.file * self.total + min((number + 1) * self.chunk_lines, self.total)
            self.report(done, self.files * self.total)


def _merge_formats(
    formats: list[Any], shards: list[_Shard], folder: Any, progress: _Progress
) -> list[str]:
    """Write every format's file from the shards' files, chunk by chunk in input order;
    return the names written."""
    from attnviz.export.formats import HtmlFormat

    total, chunk_lines, count = progress.total, progress.chunk_lines, progress.count
    progress.files = sum(fmt.name != "figures" for fmt in formats)
    written = []
    try:
        for fmt in formats:
            if fmt.name == "figures":
                written.append(_merge_figures(shards, folder))
                continue
            fmt.open(0)
            sources = [shard.path / fmt.filename for shard in shards]
            if fmt.name == "npz":
                pieces = _npz_chunks(sources, total, chunk_lines, count)
            else:  # the page's head and tail are written by the format itself
                frame = fmt.frame() if isinstance(fmt, HtmlFormat) else (b"", b"")
                pieces = _line_chunks(sources, total, chunk_lines, count, frame)
            for number, data in enumerate(pieces):
                fmt.add(data)
                progress.chunk_done(number)
            fmt.commit()
            written.append(fmt.finish())
            progress.file += 1
    finally:
        for fmt in formats:
            if fmt.name != "figures":
                fmt.close()
    return written


def _check_out(out: Path, shards: list[_Shard]) -> None:
    """Refuse an output folder that is a shard folder or lies inside one: merging there
    would replace or mix with the files being merged."""
    target = out.resolve()
    for shard in shards:
        home = shard.path.resolve()
        if target == home or home in target.parents:
            raise UsageError(
                f"{out}: is the shard folder {shard.path} or inside it; merge into a folder "
                "of its own"
            )


def _figure_format(shard: _Shard) -> str:
    value = shard.manifest["options"].get("figures")
    return value if isinstance(value, str) else "png"


def _open_input(path: Path) -> IO[bytes]:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise InputError(f"{path}: not a regular file")
    return os.fdopen(descriptor, "rb")


def _chunk_sizes(total: int, chunk_lines: int) -> Iterator[int]:
    for first in range(0, total, chunk_lines):
        yield min(chunk_lines, total - first)


def _line_chunks(
    sources: list[Path],
    total: int,
    chunk_lines: int,
    count: int,
    frame: tuple[bytes, bytes] = (b"", b""),
) -> Iterator[bytes]:
    """The lines of each chunk, in input order, taken from the shard that did it; each file
    starts with ``frame[0]`` and ends with ``frame[1]``, which are left out."""
    head, tail = frame
    streams = [_open_input(path) for path in sources]
    try:
        for path, stream in zip(sources, streams, strict=True):
            if stream.read(len(head)) != head:
                raise InputError(f"{path}: does not start as this export's files do")
        for number, size in enumerate(_chunk_sizes(total, chunk_lines)):
            stream = streams[number % count]
            lines = [stream.readline() for _ in range(size)]
            if not lines[-1].endswith(b"\n"):
                raise InputError(f"{sources[number % count]}: fewer lines than its manifest says")
            yield b"".join(lines)
        for path, stream in zip(sources, streams, strict=True):
            if stream.read(len(tail) + 1) != tail:
                raise InputError(f"{path}: more lines than its manifest says")
    finally:
        for stream in streams:
            stream.close()


_LOCAL = struct.Struct("<4s2B4HL2L2H")
#: What follows the last local entry: the central directory, or an end record when the
#: archive holds no entry.
_AFTER_ENTRIES = (b"PK\x01\x02", b"PK\x06\x06", b"PK\x05\x06")


def _npz_entries(path: Path, stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line id, raw local entry) of each array of an export's NPZ, in file order."""
    while True:
        header = stream.read(_LOCAL.size)
        if header[:4] in _AFTER_ENTRIES:
            return
        if header[:4] != b"PK\x03\x04":  # cut short (even between two entries), or not a zip
            raise InputError(f"{path}: damaged NPZ (it ends before its central directory)")
        if len(header) < _LOCAL.size:
            raise InputError(f"{path}: damaged NPZ")
        fields = _LOCAL.unpack(header)
        size, name_length, extra_length = fields[8], fields[10], fields[11]
        rest = stream.read(name_length + extra_length + size)
        name = rest[:name_length].decode("ascii", "replace")
        key = name.removesuffix(".npy").split("-")[0]
        if not key.isdigit() or len(rest) != name_length + extra_length + size:
            raise InputError(f"{path}: damaged NPZ or not written by export (entry {name!r})")
        yield int(key), header + rest


def _npz_chunks(sources: list[Path], total: int, chunk_lines: int, count: int) -> Iterator[bytes]:
    """The arrays of each chunk, in input order, taken from the shard that did it."""
    streams = [_open_input(path) for path in sources]
    try:
        entries = [
            _npz_entries(path, stream) for path, stream in zip(sources, streams, strict=True)
        ]
        ahead: list[tuple[int, bytes] | None] = [next(e, None) for e in entries]
        for number, _ in enumerate(_chunk_sizes(total, chunk_lines)):
            shard = number % count
            data = bytearray()
            while ahead[shard] is not None and ahead[shard][0] // chunk_lines == number:
                data += ahead[shard][1]
                ahead[shard] = next(entries[shard], None)
            yield bytes(data)
        for path, left in zip(sources, ahead, strict=True):
            if left is not None:
                raise InputError(f"{path}: holds line {left[0]}, which is not its shard's")
    finally:
        for stream in streams:
            stream.close()


def _merge_figures(shards: list[_Shard], folder: Any) -> str:
    """Copy every shard's figures into the merged folder's ``figures``."""
    from attnviz.export.formats import FIGURE_NAME

    folder.make_folder("figures")
    for shard in shards:
        source = shard.path / "figures"
        if not source.is_dir():
            raise InputError(f"{source}: missing")
        for entry in sorted(os.listdir(source)):
            path = source / entry
            if not FIGURE_NAME.fullmatch(entry) or not path.is_file() or path.is_symlink():
                raise InputError(f"{path}: not a figure written by export")
            target = folder / "figures" / entry
            try:
                with _open_input(path) as reader, open(target, "xb") as writer:
                    shutil.copyfileobj(reader, writer)
            except FileExistsError:
                raise OutputError(f"{target}: two shards hold this figure") from None
    return "figures"
