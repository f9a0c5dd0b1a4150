"""The export driver: decode a file chunk by chunk and hand each line's result to the formats.

The input is read in fixed chunks of lines; a chunk is decoded (sorted by length inside the
chunk, written back in input order), every format writes and commits it, and a small journal
records how far the run got and each format's committed size. Final names appear only when
the run completes, so an interrupted run (Ctrl-C, kill -9) never leaves a half-written file
under a final name, and ``resume`` cuts every format back to its last commit and carries on.
Chunks are fixed by input position, so a resumed run does exactly the same work per chunk and
its output is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnviz import io
from attnviz.errors import AttnvizError, OutputError, UsageError
from attnviz.export import source
from attnviz.export.folder import OutputFolder
from attnviz.export.formats import FORMATS, Format, selected_formats
from attnviz.export.options import ExportOptions
from attnviz.export.work import ChunkResult, DecodePool, check_workers, do_chunk, local_results

MANIFEST = "manifest.json"
JOURNAL = ".attnviz-export.json"
JOURNAL_VERSION = 2
_COUNTS = ("records", "empty", "failed")


@dataclass
class ExportStats:
    lines: int = 0
    records: int = 0
    empty: int = 0
    failed: int = 0
    figures: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    #: True when the folder already held this finished export and nothing was done
    already_complete: bool = False


@dataclass
class ExportProgress:
    done: int
    total: int
    elapsed: float


@dataclass
class _Journal:
    """How far a run got: saved after every chunk, so that it can be resumed."""

    identity: dict[str, Any]
    lines_done: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))
    finishing: bool = False

    def to_bytes(self) -> bytes:
        import json

        return json.dumps(
            {
                "version": JOURNAL_VERSION,
                "identity": self.identity,
                "lines_done": self.lines_done,
                "sizes": self.sizes,
                "stats": self.counts,
                "finishing": self.finishing,
            }
        ).encode("utf-8")

    @classmethod
    def from_value(cls, value: Any, where: Path) -> _Journal:
        if not isinstance(value, dict) or value.get("version") != JOURNAL_VERSION:
            raise UsageError(
                f"{where}: the unfinished export there was written by another version of "
                "attnviz; start again with --overwrite"
            )
        damaged = OutputError(f"{where}: damaged journal; start again with --overwrite")
        try:
            journal = cls(
                identity=dict(value["identity"]),
                lines_done=value["lines_done"],
                sizes={str(k): v for k, v in dict(value["sizes"]).items()},
                counts={key: dict(value["stats"])[key] for key in _COUNTS},
                finishing=value.get("finishing", False),
            )
        except (KeyError, TypeError, ValueError):
            raise damaged from None
        numbers = [journal.lines_done, *journal.sizes.values(), *journal.counts.values()]
        if not all(_is_count(number) for number in numbers):
            raise damaged
        if not isinstance(journal.finishing, bool):
            raise damaged
        return journal

    def check_progress(self, where: Path, options: ExportOptions, lines: int) -> None:
        """Refuse a journal whose progress cannot be that of ``options`` over an input of
        ``lines`` lines: resuming from it would cut files short or skip lines."""
        done = self.lines_done
        at_boundary = done == lines or done % options.chunk_lines == 0
        formats = {fmt.name for fmt in selected_formats(options)}
        complete = set(self.sizes) == formats if done else set(self.sizes) <= formats
        if (
            done > lines
            or not at_boundary
            or sum(self.counts.values()) != options.lines_taken(done)
            or not complete
        ):
            raise OutputError(f"{where}: damaged journal; start again with --overwrite")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class LineError(AttnvizError):
    """A single input line that cannot be handled; ``source`` is what its record shows."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


def parse_line(raw: bytes, number: int, refs: bool) -> tuple[str, str | None]:
    """(source, reference) of one raw input line; a line too long is refused unread."""
    if len(raw) > io.MAX_LINE_BYTES:
        raise LineError(f"line {number}: longer than {io.MAX_LINE_BYTES:,} bytes; skipped", "")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        message = f"line {number}: not UTF-8 (bad byte at offset {err.start})"
        raise LineError(message, raw.decode("utf-8", "replace")) from err
    if number == 1:
        text = text.removeprefix("\ufeff")
    if not refs:
        return text, None
    if not text.strip():
        return "", ""
    if "\t" not in text:
        raise LineError(f"line {number}: no tab between source and reference (--refs)", text)
    source_text, reference = text.split("\t", 1)
    return source_text, reference


class Exporter:
    """Export alignments of every line of ``input_path`` into the folder ``out_dir``.

    :meth:`start` checks the input and the folder and takes the folder's lock; :meth:`run`
    (which calls it if needed) does the export and releases the lock. Use the exporter as a
    context manager, or call :meth:`close`, when :meth:`run` may not be reached.
    """

    def __init__(
        self,
        translator: Any,
        input_path: Path,
        out_dir: Path,
        options: ExportOptions,
        *,
        resume: bool = False,
        overwrite: bool = False,
        on_progress: Callable[[ExportProgress], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(options, ExportOptions):
            raise UsageError(f"options must be ExportOptions, not {type(options).__name__}")
        if resume and overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        self.translator = translator
        self.input_path = Path(input_path)
        self.folder = OutputFolder(out_dir)
        self.options = options
        self.resume = resume
        self.overwrite = overwrite
        self.on_progress = on_progress
        self.on_warning = on_warning or (lambda message: None)
        self._input: source.InputSnapshot | None = None
        self._identity: dict[str, Any] = {}
        self._journal: _Journal | None = None
        self._complete: ExportStats | None = None

    @property
    def out_dir(self) -> Path:
        return self.folder.path

    @property
    def already_complete(self) -> bool:
        """After :meth:`start`: the folder holds this finished export (``resume`` only)."""
        return self._complete is not None

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's lock; a later :meth:`start` checks the folder again."""
        self.folder.unlock()
        self._input = None

    # -- starting: input, folder, lock, resume or overwrite -----------------------------------

    def start(self) -> None:
        """Check the input and the output folder and take the folder's lock; after this, an
        interruption can be resumed."""
        if self._input is not None:
            return
        self._complete = None
        if self.options.workers > 1:  # before the folder is made or anything is written
            check_workers(self.translator)
        snapshot = source.snapshot(self.input_path)
        self.folder.create()
        self.folder.lock()
        try:
            self._identity = self._identify(snapshot)
            self._journal = self._prepare(self._identity)
            if self._journal is not None:
                where = self.folder / JOURNAL
                self._journal.check_progress(where, self.options, snapshot.lines)
        except BaseException:
            self.close()
            raise
        self._input = snapshot

    def _identify(self, snapshot: source.InputSnapshot) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one."""
        model_path = getattr(self.translator, "path", None)
        dtype = getattr(self.translator, "dtype", None)
        return {
            "input_size": snapshot.size,
            "input_sha256": snapshot.sha256,
            "model_sha256": source.file_sha256(Path(model_path)) if model_path else None,
            "precision": str(dtype).removeprefix("torch.") if dtype is not None else None,
            "options": self.options.fingerprint(),
        }

    def _prepare(self, identity: dict[str, Any]) -> _Journal | None:
        """The journal to resume from, if any; clears an earlier export with ``overwrite``."""
        out = self.folder.path
        busy = bool(self.folder.names())
        if self.resume:
            journal = self._read_journal()
            if journal is not None:
                if journal.identity != identity:
                    raise UsageError(
                        f"{out}: the unfinished export there used another input, model or "
                        "options; resume with the same ones, or use --overwrite"
                    )
                return journal
            manifest = self._read_manifest()
            if manifest is not None:
                self._check_finished(manifest, identity)
                return None
            if busy:
                raise UsageError(f"{out}: nothing to resume (no unfinished export there)")
            return None
        if busy:
            if not self.overwrite:
                raise UsageError(
                    f"{out}: folder is not empty; use --resume to continue an unfinished "
                    "export or --overwrite to replace it"
                )
            self._clear_previous()
        return None

    def _check_finished(self, manifest: dict[str, Any], identity: dict[str, Any]) -> None:
        if {key: manifest.get(key) for key in identity} != identity:
            raise UsageError(
                f"{self.folder.path}: the finished export there used another input, model or "
                "options; use --overwrite to replace it"
            )
        counts = manifest["counts"]
        self._complete = ExportStats(
            **{key: _count(counts.get(key)) for key in ("lines", *_COUNTS, "figures")},
            already_complete=True,
        )

    def _read_journal(self) -> _Journal | None:
        if not self.folder.regular(JOURNAL):
            return None
        value = self.folder.read_json(JOURNAL)
        if value is None:
            raise OutputError(
                f"{self.folder / JOURNAL}: damaged journal; start again with --overwrite"
            )
        return _Journal.from_value(value, self.folder / JOURNAL)

    def _read_manifest(self) -> dict[str, Any] | None:
        """The manifest of an earlier export here, or None when there is none of ours."""
        value = self.folder.read_json(MANIFEST)
        ours = isinstance(value, dict) and "attnviz_version" in value
        return value if ours and isinstance(value.get("counts"), dict) else None

    def _owned(self) -> set[str]:
        """The names an earlier export recorded in its manifest or journal."""
        by_filename = {fmt.filename: fmt for fmt in FORMATS.values()}
        owned: set[str] = set()
        manifest = self._read_manifest()
        if manifest is not None:
            files = manifest.get("files")
            if not isinstance(files, list):  # manifests from before the list of files
                options = manifest.get("options")
                options = options if isinstance(options, dict) else {}
                files = [
                    fmt.filename
                    for fmt in FORMATS.values()
                    if fmt.option is None or options.get(fmt.option)
                ]
            owned |= {MANIFEST, *(name for name in files if name in by_filename)}
        journal = self.folder.read_json(JOURNAL)
        if isinstance(journal, dict) and isinstance(journal.get("sizes"), dict):
            owned |= {JOURNAL, MANIFEST}
            for key in journal["sizes"]:
                fmt = FORMATS.get(key) or by_filename.get(key)
                owned |= set(fmt.entries()) if fmt is not None else set()
        return owned

    def _clear_previous(self) -> None:
        """Remove an earlier export; refuse, before removing anything, when an entry of a
        name export uses is not one it recorded, or is not what it wrote."""
        owned = self._owned()
        needed = {MANIFEST, JOURNAL}
        for fmt in selected_formats(self.options):
            needed |= set(fmt.entries())
        by_entry = {entry: fmt for fmt in FORMATS.values() for entry in fmt.entries()}
        removers = []
        for name in sorted((owned | needed) & set(self.folder.names())):
            if name not in owned:
                raise OutputError(
                    f"{self.folder / name}: not written by an earlier export here; refusing "
                    "to replace it"
                )
            removers.append(by_entry.get(name, Format).check_previous(self.folder, name))
        for remove in removers:
            remove()

    # -- running ------------------------------------------------------------------------------

    def run(self) -> ExportStats:
        """Export every line (or do nothing, for a finished export and ``resume``)."""
        clock = time.perf_counter()
        try:
            self.start()
            if self._complete is not None:
                return self._complete
            return self._export(clock)
        finally:
            self.close()

    def _export(self, clock: float) -> ExportStats:
        assert self._input is not None
        snapshot, journal = self._input, self._journal
        if journal is None:  # written before any other file, so that an interruption is ours
            journal = _Journal(self._identity)
            self.folder.write(JOURNAL, journal.to_bytes())
        lines = self.options.lines_taken(snapshot.lines)
        stats = ExportStats(resumed_from=journal.lines_done, lines=lines)
        formats = [fmt(self.folder, self.options) for fmt in selected_formats(self.options)]
        pool: DecodePool | None = None
        try:
            if journal.finishing:
                for fmt in formats:
                    fmt.reclaim()
            for fmt in formats:
                fmt.open(journal.sizes.get(fmt.name, 0))
            encoders = [fmt for fmt in formats if fmt.encodes]
            keep_groups = len(encoders) < len(formats)
            chunks = self._chunks(journal.lines_done)
            if self.options.workers > 1:
                pool = DecodePool(
                    self.translator, self.options, self.input_path, encoders, keep_groups
                )
                results = pool.map(chunks)
            else:
                results = local_results(
                    lambda chunk: do_chunk(
                        self.translator,
                        self.options,
                        chunk,
                        self.input_path,
                        encoders,
                        keep_groups,
                    ),
                    chunks,
                )
            for result in results:
                self._process(result, formats, journal)
                self._report(journal, clock)
            journal.finishing = True
            self.folder.write(JOURNAL, journal.to_bytes())
            files = [fmt.finish() for fmt in formats]
        finally:
            if pool is not None:
                pool.close()
            for fmt in formats:
                fmt.close()
        for key in _COUNTS:
            setattr(stats, key, journal.counts[key])
        stats.figures = journal.sizes.get("figures", 0)
        stats.seconds = time.perf_counter() - clock
        self._write_manifest(stats, journal.identity, files)
        self.folder.remove(JOURNAL)
        return stats

    def _chunks(self, skip: int) -> Iterator[list[tuple[int, bytes]]]:
        """The input's lines after the first ``skip``, in chunks of ``chunk_lines`` (only this
        shard's chunks)."""
        assert self._input is not None
        options = self.options
        chunk: list[tuple[int, bytes]] = []
        for index, raw in source.read_lines(self._input):
            if index < skip or not options.takes_chunk(index // options.chunk_lines):
                continue
            chunk.append((index, raw))
            if len(chunk) == options.chunk_lines:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _process(self, result: ChunkResult, formats: list[Format], journal: _Journal) -> None:
        """Write one chunk's result in every format, commit, then record it in the journal."""
        for message in result.warnings:
            self.on_warning(message)
        for fmt in formats:
            if fmt.name in result.payloads:
                fmt.add(result.payloads[fmt.name])
            else:
                for group in result.groups or ():
                    fmt.write(group)
        # everything of this chunk must be on disk before the journal says so
        for fmt in formats:
            journal.sizes[fmt.name] = fmt.commit()
        for key, count in result.counts.items():
            journal.counts[key] += count
        journal.lines_done = result.end
        self.folder.write(JOURNAL, journal.to_bytes())

    def _report(self, journal: _Journal, clock: float) -> None:
        if self.on_progress and self._input is not None:
            done = sum(journal.counts.values())
            elapsed = time.perf_counter() - clock
            total = self.options.lines_taken(self._input.lines)
            self.on_progress(ExportProgress(done, total, elapsed))

    def _write_manifest(
        self, stats: ExportStats, identity: dict[str, Any], files: list[str]
    ) -> None:
        import json

        from attnviz import __version__

        model_path = getattr(self.translator, "path", None)
        manifest = {
            "attnviz_version": __version__,
            "model": str(model_path) if model_path else None,
            "model_sha256": identity["model_sha256"],
            "input": str(self.input_path),
            "input_size": identity["input_size"],
            "input_sha256": identity["input_sha256"],
            "precision": identity["precision"],
            "options": identity["options"],
            "counts": {
                "lines": stats.lines,
                **{key: getattr(stats, key) for key in _COUNTS},
                "figures": stats.figures,
            },
            "files": files,
            "resumed_from_line": stats.resumed_from,
            "seconds": round(stats.seconds, 3),
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        self.folder.write(MANIFEST, text.encode("utf-8"))
