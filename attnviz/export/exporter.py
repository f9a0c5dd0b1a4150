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
from attnviz.alignment import SentenceError
from attnviz.errors import AttnvizError, InputError, OutputError, UsageError
from attnviz.export import source
from attnviz.export.folder import OutputFolder
from attnviz.export.formats import FORMATS, Format, SentenceGroup, selected_formats
from attnviz.export.options import ExportOptions

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
        try:
            return cls(
                identity=dict(value["identity"]),
                lines_done=int(value["lines_done"]),
                sizes={str(k): int(v) for k, v in dict(value["sizes"]).items()},
                counts={key: int(dict(value["stats"])[key]) for key in _COUNTS},
                finishing=bool(value.get("finishing", False)),
            )
        except (KeyError, TypeError, ValueError):
            raise OutputError(f"{where}: damaged journal; start again with --overwrite") from None


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
        snapshot = source.snapshot(self.input_path)
        self.folder.create()
        self.folder.lock()
        try:
            self._identity = self._identify(snapshot)
            self._journal = self._prepare(self._identity)
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
        stats = ExportStats(resumed_from=journal.lines_done, lines=snapshot.lines)
        formats = [fmt(self.folder, self.options) for fmt in selected_formats(self.options)]
        try:
            if journal.finishing:
                for fmt in formats:
                    fmt.reclaim()
            for fmt in formats:
                fmt.open(journal.sizes.get(fmt.name, 0))
            for chunk in self._chunks(journal.lines_done):
                self._process(chunk, formats, journal)
                self._report(journal, clock)
            journal.finishing = True
            self.folder.write(JOURNAL, journal.to_bytes())
            files = [fmt.finish() for fmt in formats]
        finally:
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
        """The input's lines after the first ``skip``, in chunks of ``chunk_lines``."""
        assert self._input is not None
        chunk: list[tuple[int, bytes]] = []
        for index, raw in source.read_lines(self._input):
            if index < skip:
                continue
            chunk.append((index, raw))
            if len(chunk) == self.options.chunk_lines:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _process(
        self, chunk: list[tuple[int, bytes]], formats: list[Format], journal: _Journal
    ) -> None:
        """Decode one chunk, write it in every format, commit, then record it in the journal."""
        for group in self._groups(chunk, journal.counts):
            for fmt in formats:
                fmt.write(group)
        # everything of this chunk must be on disk before the journal says so
        for fmt in formats:
            journal.sizes[fmt.name] = fmt.commit()
        journal.lines_done = chunk[-1][0] + 1
        self.folder.write(JOURNAL, journal.to_bytes())

    def _groups(
        self, chunk: list[tuple[int, bytes]], counts: dict[str, int]
    ) -> list[SentenceGroup]:
        """The result of every line of a chunk, in input order."""
        groups: dict[int, SentenceGroup] = {}
        todo: list[tuple[int, str, str | None]] = []
        for index, raw in chunk:
            try:
                todo.append((index, *parse_line(raw, index + 1, self.options.refs)))
            except LineError as err:
                groups[index] = self._failed(index, err.source, str(err), counts)
        refs = [ref or "" for _, _, ref in todo] if self.options.refs else None
        results = self.translator.translate_grouped(
            [text for _, text, _ in todo], refs=refs, options=self.options.decode
        )
        for (index, text, _), result in zip(todo, results, strict=True):
            if isinstance(result, SentenceError):
                message = f"line {index + 1}: {result.message}"
                groups[index] = self._failed(index, text, message, counts)
                continue
            groups[index] = SentenceGroup(index, text, tuple(result))
            counts["records" if text.strip() else "empty"] += 1
        return [groups[index] for index, _ in chunk]

    def _failed(self, index: int, text: str, message: str, counts: dict[str, int]) -> SentenceGroup:
        if self.options.strict:
            raise InputError(f"{self.input_path}: {message}")
        self.on_warning(message)
        counts["failed"] += 1
        return SentenceGroup(index, text, error=message)

    def _report(self, journal: _Journal, clock: float) -> None:
        if self.on_progress and self._input is not None:
            done = sum(journal.counts.values())
            elapsed = time.perf_counter() - clock
            self.on_progress(ExportProgress(done, self._input.lines, elapsed))

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
