"""Streaming batch export of alignments: JSONL, Pharaoh, NPZ and figures.

The input is read in fixed chunks of lines; a chunk is decoded (sorted by length inside the
chunk, written back in input order), its records appended to ``*.partial`` files, and a small
journal records how far the run got and the byte size of each partial file. Final names
appear only when the run completes, so an interrupted run (Ctrl-C, kill -9) never leaves a
half-written file under a final name, and ``resume`` truncates the partial files to the last
committed chunk and carries on. Chunks are fixed by input position, so a resumed run does
exactly the same work per chunk and its output is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.alignment import Alignment, SentenceError
from attnviz.errors import AttnvizError, InputError, UsageError
from attnviz.options import DecodeOptions

JSONL = "alignments.jsonl"
PHARAOH = "alignments.pharaoh"
NPZ = "attention.npz"
FIGURES = "figures"
MANIFEST = "manifest.json"
JOURNAL = ".attnviz-export.json"
PARTS = ".attnviz-parts"
FIGURE_FORMATS = ("png", "svg")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed so that NPZ bytes do not depend on the clock


@dataclass(frozen=True)
class ExportOptions:
    refs: bool = False
    words: bool = False
    npz: bool = False
    figures: str | None = None
    beam: int = 1
    nbest: int = 1
    batch_size: int = 32
    chunk_lines: int = 256
    strict: bool = False
    workers: int = 2
    dpi: int = 100

    def fingerprint(self) -> dict[str, Any]:
        """Options that can change the output bytes (a resumed run must use the same).

        Batch size is one: float sums over differently shaped batches differ in the last bits.
        """
        values = asdict(self)
        for key in ("strict", "workers"):
            values.pop(key)
        return values


@dataclass
class ExportStats:
    lines: int = 0
    records: int = 0
    empty: int = 0
    failed: int = 0
    figures: int = 0
    resumed_from: int = 0
    seconds: float = 0.0


@dataclass
class ExportProgress:
    done: int
    total: int
    elapsed: float


class LineError(AttnvizError):
    """A single input line that cannot be handled."""


# -- input ------------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    count = 0
    last = b"\n"
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


def iter_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        for raw in stream:
            yield raw.rstrip(b"\n").rstrip(b"\r")


def _decode_line(raw: bytes, number: int, refs: bool) -> tuple[str, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LineError(f"line {number}: not UTF-8 (bad byte at offset {err.start})") from err
    if number == 1:
        text = text.removeprefix("\ufeff")
    if not refs:
        return text, None
    if not text.strip():
        return "", ""
    if "\t" not in text:
        raise LineError(f"line {number}: no tab between source and reference (--refs)")
    source, reference = text.split("\t", 1)
    return source, reference


# -- output helpers --------------------------------------------------------------------------


def _record(alignment: Alignment, index: int, group: list[Alignment]) -> dict[str, Any]:
    record = {"id": index, **alignment.to_dict()}
    if len(group) > 1:
        record["nbest"] = [a.to_dict() for a in group[1:]]
    return record


def _error_record(index: int, source: str, message: str) -> dict[str, Any]:
    return {"id": index, "source": source, "error": message}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write_npz_part(path: Path, arrays: list[tuple[str, np.ndarray]]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            archive.writestr(info, _npy_bytes(array))
    _write_atomic(path, buffer.getvalue())


def _merge_npz(parts: list[Path], target: Path) -> None:
    """Concatenate the chunk archives into one NPZ, entry by entry (streamed)."""
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as merged:
        for part in parts:
            with zipfile.ZipFile(part) as archive:
                for info in archive.infolist():
                    out = zipfile.ZipInfo(info.filename, date_time=_ZIP_DATE)
                    merged.writestr(out, archive.read(info))
    os.replace(tmp, target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- the exporter -----------------------------------------------------------------------------


class Exporter:
    """Export alignments of every line of ``input_path`` into ``out_dir``."""

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
        if options.figures is not None and options.figures not in FIGURE_FORMATS:
            raise UsageError(
                f"unknown figure format {options.figures!r}; use {', '.join(FIGURE_FORMATS)}"
            )
        if resume and overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        if options.chunk_lines < 1:
            raise UsageError("chunk size must be at least 1")
        if not 1 <= options.nbest <= options.beam:
            raise UsageError(
                f"nbest ({options.nbest}) must be at least 1 and at most the beam size "
                f"({options.beam})"
            )
        if options.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {options.batch_size}")
        if options.figures and not 1 <= options.dpi <= 9999:
            raise UsageError(f"dpi must be between 1 and 9999, not {options.dpi}")
        self.translator = translator
        self.input_path = Path(input_path)
        self.out_dir = Path(out_dir)
        self.options = options
        self.resume = resume
        self.overwrite = overwrite
        self.on_progress = on_progress
        self.on_warning = on_warning or (lambda message: None)
        self._started: tuple[dict[str, Any], dict[str, Any] | None] | None = None

    # paths
    def _partial(self, name: str) -> Path:
        return self.out_dir / f"{name}.partial"

    @property
    def _journal(self) -> Path:
        return self.out_dir / JOURNAL

    @property
    def _parts(self) -> Path:
        return self.out_dir / PARTS

    def _model_hash(self) -> str | None:
        path = getattr(self.translator, "path", None)
        return file_sha256(Path(path)) if path else None

    def _identity(self) -> dict[str, Any]:
        dtype = getattr(self.translator, "dtype", None)
        return {
            "input_sha256": file_sha256(self.input_path),
            "model_sha256": self._model_hash(),
            "precision": str(dtype).removeprefix("torch.") if dtype is not None else None,
            "options": self.options.fingerprint(),
        }

    def _prepare(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """Check DIR; return the journal to resume from, if any."""
        if not self.input_path.exists():
            raise InputError(f"{self.input_path}: no such file")
        if self.input_path.is_dir():
            raise InputError(f"{self.input_path}: is a folder, not a text file")
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out}: exists and is not a folder")
        busy = out.exists() and any(out.iterdir())
        if self.resume:
            if not self._journal.exists():
                if busy and (out / MANIFEST).exists():
                    raise UsageError(f"{out}: the export there is already complete")
                if busy:
                    raise UsageError(f"{out}: nothing to resume (no unfinished export there)")
                return None
            journal = json.loads(self._journal.read_text(encoding="utf-8"))
            if journal.get("identity") != identity:
                raise UsageError(
                    f"{out}: the unfinished export there used another input, model or options; "
                    "resume with the same ones, or use --overwrite"
                )
            return journal
        if busy:
            if not self.overwrite:
                raise UsageError(
                    f"{out}: folder is not empty; use --resume to continue an unfinished "
                    "export or --overwrite to replace it"
                )
            for name in (JSONL, PHARAOH, NPZ, MANIFEST, JOURNAL):
                (out / name).unlink(missing_ok=True)
                self._partial(name).unlink(missing_ok=True)
            for folder in (out / FIGURES, self._parts):
                if folder.exists():
                    shutil.rmtree(folder)
        return None

    def start(self) -> None:
        """Check the input and the output folder; after this, an interruption can be resumed."""
        if self._started is not None:
            return
        identity = self._identity()
        journal = self._prepare(identity)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._started = (identity, journal)

    def run(self) -> ExportStats:
        options = self.options
        start = time.perf_counter()
        self.start()
        assert self._started is not None
        identity, journal = self._started
        out = self.out_dir
        stats = ExportStats()
        total = count_lines(self.input_path)
        done_lines = 0
        sizes = {JSONL: 0, PHARAOH: 0}
        if journal is not None:
            done_lines = int(journal["lines_done"])
            sizes = {JSONL: int(journal["sizes"][JSONL]), PHARAOH: int(journal["sizes"][PHARAOH])}
            prior = journal.get("stats", {})
            for key in ("records", "empty", "failed", "figures"):
                setattr(stats, key, int(prior.get(key, 0)))
            stats.resumed_from = done_lines
        for name in (JSONL, PHARAOH):
            partial, final = self._partial(name), out / name
            if journal is not None and not partial.exists() and final.exists():
                os.replace(final, partial)  # the last run died while finishing: take it back
            if not partial.exists():
                if sizes[name]:
                    raise UsageError(
                        f"{out}: the unfinished export there lacks {partial.name}; "
                        "start again with --overwrite"
                    )
                partial.touch()
            if partial.stat().st_size < sizes[name]:
                raise UsageError(
                    f"{out}: {partial.name} is shorter than its journal says; "
                    "start again with --overwrite"
                )
            with partial.open("r+b") as stream:  # drop anything after the last commit
                stream.truncate(sizes[name])
        if journal is None:  # from now on an interrupted run can be resumed
            self._write_journal(identity, done_lines, sizes, stats)
        if options.npz:
            self._parts.mkdir(exist_ok=True)
        if options.figures:
            (out / FIGURES).mkdir(exist_ok=True)

        pool = _FigurePool(options) if options.figures else None
        try:
            chunk: list[tuple[int, bytes]] = []
            for index, raw in enumerate(iter_lines(self.input_path)):
                if index < done_lines:
                    continue
                chunk.append((index, raw))
                if len(chunk) == options.chunk_lines:
                    self._process(chunk, stats, sizes, identity, pool)
                    chunk = []
                    self._report(stats, total, start)
            if chunk:
                self._process(chunk, stats, sizes, identity, pool)
                self._report(stats, total, start)
            if pool is not None:
                pool.wait()
        finally:
            if pool is not None:
                pool.close()
        stats.lines = total
        stats.seconds = time.perf_counter() - start
        self._finish(stats, identity)
        return stats

    def _report(self, stats: ExportStats, total: int, start: float) -> None:
        if self.on_progress:
            done = stats.records + stats.failed + stats.empty
            self.on_progress(ExportProgress(done, total, time.perf_counter() - start))

    def _process(
        self,
        chunk: list[tuple[int, bytes]],
        stats: ExportStats,
        sizes: dict[str, int],
        identity: dict[str, Any],
        pool: _FigurePool | None,
    ) -> None:
        options = self.options
        records: dict[int, dict[str, Any]] = {}
        pharaoh: dict[int, str] = {}
        arrays: list[tuple[str, np.ndarray]] = []
        todo: list[tuple[int, str, str | None]] = []
        for index, raw in chunk:
            try:
                source, reference = _decode_line(raw, index + 1, options.refs)
            except LineError as err:
                self._line_failed(index, raw.decode("utf-8", "replace"), str(err), records)
                pharaoh[index] = ""
                stats.failed += 1
                continue
            todo.append((index, source, reference))
        groups = self._decode(todo, records, stats)
        for (index, source, _), group in zip(todo, groups, strict=True):
            if group is None:
                pharaoh[index] = ""
                continue
            best = group[0]
            records[index] = _record(best, index, group)
            pharaoh[index] = best.pharaoh()
            if not source.strip():
                stats.empty += 1
            else:
                stats.records += 1
            if options.npz:
                for alignment in group:
                    name = str(index) if options.nbest == 1 else f"{index}-{alignment.rank}"
                    arrays.append((name, alignment.weights))
            if pool is not None and best.shape[0] and best.shape[1]:
                for alignment in group:
                    name = str(index) if options.nbest == 1 else f"{index}-{alignment.rank}"
                    pool.submit(alignment, self.out_dir / FIGURES / f"{name}.{options.figures}")
                    stats.figures += 1
        # everything of this chunk must be on disk before the journal says so
        if pool is not None:
            pool.wait()
        if options.npz:
            first = chunk[0][0]
            _write_npz_part(self._parts / f"{first:012d}.npz", arrays)
        ordered = [index for index, _ in chunk]
        jsonl_bytes = "".join(
            json.dumps(records[i], ensure_ascii=False, allow_nan=False) + "\n" for i in ordered
        ).encode("utf-8")
        pharaoh_bytes = "".join(pharaoh[i] + "\n" for i in ordered).encode("utf-8")
        for name, data in ((JSONL, jsonl_bytes), (PHARAOH, pharaoh_bytes)):
            with self._partial(name).open("ab") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            sizes[name] += len(data)
        self._write_journal(identity, chunk[-1][0] + 1, sizes, stats)

    def _write_journal(
        self, identity: dict[str, Any], lines_done: int, sizes: dict[str, int], stats: ExportStats
    ) -> None:
        journal = {
            "identity": identity,
            "lines_done": lines_done,
            "sizes": dict(sizes),
            "stats": {
                "records": stats.records,
                "empty": stats.empty,
                "failed": stats.failed,
                "figures": stats.figures,
            },
        }
        _write_atomic(self._journal, json.dumps(journal).encode("utf-8"))

    def _decode(
        self,
        todo: list[tuple[int, str, str | None]],
        records: dict[int, dict[str, Any]],
        stats: ExportStats,
    ) -> list[list[Alignment] | None]:
        options = self.options
        sources = [source for _, source, _ in todo]
        refs = [reference or "" for _, _, reference in todo] if options.refs else None
        decode = DecodeOptions(
            beam=options.beam,
            nbest=options.nbest,
            words=options.words,
            batch_size=options.batch_size,
        )
        groups: list[list[Alignment] | None] = []
        results = self.translator.translate_grouped(sources, refs=refs, options=decode)
        for (index, source, _), result in zip(todo, results, strict=True):
            if isinstance(result, SentenceError):
                message = f"line {index + 1}: {result.message}"
                self._line_failed(index, source, message, records)
                stats.failed += 1
                groups.append(None)
            else:
                groups.append(result)
        return groups

    def _line_failed(
        self, index: int, source: str, message: str, records: dict[int, dict[str, Any]]
    ) -> None:
        if self.options.strict:
            raise InputError(f"{self.input_path}: {message}")
        self.on_warning(message)
        records[index] = _error_record(index, source, message)

    def _finish(self, stats: ExportStats, identity: dict[str, Any]) -> None:
        from attnviz import __version__

        out = self.out_dir
        if self.options.npz:
            parts = sorted(self._parts.glob("*.npz")) if self._parts.exists() else []
            if parts or not (out / NPZ).exists():
                _merge_npz(parts, out / NPZ)
        os.replace(self._partial(JSONL), out / JSONL)
        os.replace(self._partial(PHARAOH), out / PHARAOH)
        model_path = getattr(self.translator, "path", None)
        manifest = {
            "attnviz_version": __version__,
            "model": str(model_path) if model_path else None,
            "model_sha256": identity["model_sha256"],
            "input": str(self.input_path),
            "input_sha256": identity["input_sha256"],
            "precision": identity["precision"],
            "options": self.options.fingerprint(),
            "counts": {
                "lines": stats.lines,
                "records": stats.records,
                "empty": stats.empty,
                "failed": stats.failed,
                "figures": stats.figures,
            },
            "resumed_from_line": stats.resumed_from,
            "seconds": round(stats.seconds, 3),
        }
        _write_atomic(
            out / MANIFEST,
            (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        )
        self._journal.unlink(missing_ok=True)
        if self._parts.exists():
            shutil.rmtree(self._parts)


# -- figures in worker processes -------------------------------------------------------------

_RENDERER: Any = None


def _init_worker(options: dict[str, Any]) -> None:
    global _RENDERER
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    from attnviz.render.figure import FigureRenderer

    _RENDERER = FigureRenderer(**options)


def _render_in_worker(record: dict[str, Any], path: str) -> str:
    alignment = Alignment.from_dict(record)
    return str(_RENDERER.render(alignment, Path(path)))


class _FigurePool:
    """Renders figures in worker processes; at most a bounded number in flight."""

    def __init__(self, options: ExportOptions) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max(1, options.workers)
        self.limit = self.workers * 16
        context = multiprocessing.get_context("spawn" if os.name == "nt" else "forkserver")
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=({"dpi": options.dpi},),
        )
        self.pending: list[Any] = []

    def submit(self, alignment: Alignment, path: Path) -> None:
        if len(self.pending) >= self.limit:
            self._drain(self.limit // 2)
        self.pending.append(self.pool.submit(_render_in_worker, alignment.to_dict(), str(path)))

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep:
            self.pending.pop(0).result()

    def wait(self) -> None:
        self._drain(0)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
