"""The work of one chunk, and the processes that do it in parallel.

A chunk of input lines becomes a :class:`ChunkResult`: each format's bytes for the chunk
(encoded where the chunk was decoded), the groups for the formats that need them (figures),
the counts and the warnings. The exporter writes results in input order, so the bytes are the
same whether a chunk was done in the exporting process or in one of ``workers`` decoding
processes (:class:`DecodePool`, one CPU thread each).
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.alignment import SentenceError
from attnviz.errors import InputError, UsageError

if TYPE_CHECKING:
    from attnviz.export.formats import Format, SentenceGroup
    from attnviz.export.options import ExportOptions

Chunk = list[tuple[int, bytes]]  # (0-based line number, raw line)


@dataclass
class ChunkResult:
    """What a chunk adds: ``payloads`` by format name (formats encoded where the chunk was
    decoded), ``groups`` for the others, ``counts`` (records, empty, failed), ``warnings``."""

    first: int
    end: int  # one past the last line
    payloads: dict[str, bytes] = field(default_factory=dict)
    groups: list[SentenceGroup] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def do_chunk(
    translator: Any,
    options: ExportOptions,
    chunk: Chunk,
    input_path: Path,
    encoders: list[Format],
    keep_groups: bool,
) -> ChunkResult:
    """Decode a chunk and encode it in every format of ``encoders``."""
    from attnviz.export.exporter import LineError, parse_line
    from attnviz.export.formats import SentenceGroup

    counts = {"records": 0, "empty": 0, "failed": 0}
    warnings: list[str] = []

    def failed(index: int, text: str, message: str) -> SentenceGroup:
        if options.strict:
            raise InputError(f"{input_path}: {message}")
        warnings.append(message)
        counts["failed"] += 1
        return SentenceGroup(index, text, error=message)

    groups: dict[int, SentenceGroup] = {}
    todo: list[tuple[int, str, str | None]] = []
    for index, raw in chunk:
        try:
            todo.append((index, *parse_line(raw, index + 1, options.refs)))
        except LineError as err:
            groups[index] = failed(index, err.source, str(err))
    refs = [ref or "" for _, _, ref in todo] if options.refs else None
    results = translator.translate_grouped(
        [text for _, text, _ in todo], refs=refs, options=options.decode
    )
    for (index, text, _), result in zip(todo, results, strict=True):
        if isinstance(result, SentenceError):
            groups[index] = failed(index, text, f"line {index + 1}: {result.message}")
            continue
        groups[index] = SentenceGroup(index, text, tuple(result))
        counts["records" if text.strip() else "empty"] += 1
    ordered = [groups[index] for index, _ in chunk]
    payloads = {fmt.name: b"".join(fmt.encode(group) for group in ordered) for fmt in encoders}
    return ChunkResult(
        first=chunk[0][0],
        end=chunk[-1][0] + 1,
        payloads=payloads,
        groups=ordered if keep_groups else None,
        counts=counts,
        warnings=warnings,
    )


# -- decoding processes -----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(
    translator: Any,
    checkpoint: Any,
    precision: str,
    options: ExportOptions,
    input_path: str,
    encoder_names: list[str],
    keep_groups: bool,
    exporter_pid: int,
) -> None:
    """Set a worker up: the exporting process's translator when the worker was forked from
    it, else one built from the checkpoint; one CPU thread either way."""
    import signal

    import torch

    from attnviz.export.figures import _die_with

    _die_with(exporter_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the exporting process handles Ctrl-C
    from attnviz.export.formats import FORMATS
    from attnviz.translator import Translator

    torch.set_num_threads(1)
    if translator is None:
        translator = Translator(checkpoint, "cpu", precision, threads=1)
    translator.threads = 1
    _WORKER["translator"] = translator
    _WORKER["options"] = options
    _WORKER["input"] = Path(input_path)
    _WORKER["encoders"] = [FORMATS[name](None, options) for name in encoder_names]
    _WORKER["keep_groups"] = keep_groups


def _work(chunk: Chunk) -> ChunkResult:
    return do_chunk(
        _WORKER["translator"],
        _WORKER["options"],
        chunk,
        _WORKER["input"],
        _WORKER["encoders"],
        _WORKER["keep_groups"],
    )


def check_workers(translator: Any) -> None:
    """Refuse decoding processes for a translator that decodes elsewhere than on the CPU."""
    device = getattr(translator, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        raise UsageError(
            "--workers decodes on the CPU; on a GPU use one process and a large --batch-size"
        )


class DecodePool:
    """``workers`` processes decoding chunks, each with its own copy of the model and one
    thread; results come back in the order the chunks went in."""

    def __init__(
        self,
        translator: Any,
        options: ExportOptions,
        input_path: Path,
        encoders: list[Format],
        keep_groups: bool,
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        check_workers(translator)
        checkpoint = getattr(translator, "checkpoint", None)
        forked = sys.platform.startswith("linux")
        dtype = getattr(translator, "dtype", None)
        precision = str(dtype).removeprefix("torch.") if dtype is not None else "auto"
        if not forked and checkpoint is None:
            raise UsageError("--workers needs a translator loaded from a checkpoint")
        # Linux: fork, so that a worker starts at once with the model already in memory (as
        # torch's own data loader workers do); elsewhere a fresh interpreter loads it
        method = "fork" if forked else "spawn" if os.name == "nt" else "forkserver"
        context = multiprocessing.get_context(method)
        self.workers = options.workers
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(
                translator if forked else None,
                None if forked else checkpoint,
                precision,
                options,
                str(input_path),
                [fmt.name for fmt in encoders],
                keep_groups,
                os.getpid(),
            ),
        )

    def map(self, chunks: Iterable[Chunk]) -> Iterator[ChunkResult]:
        """Results of ``chunks`` in order, with a few chunks per worker in flight."""
        from concurrent.futures.process import BrokenProcessPool

        from attnviz.errors import OutputError

        pending: deque[Any] = deque()
        ahead = 2 * self.workers
        source = iter(chunks)
        exhausted = False
        while True:
            # a process that died breaks the pool: submitting then fails as a result does
            try:
                while not exhausted and len(pending) < ahead:
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.append(self.pool.submit(_work, chunk))
                if not pending:
                    return
                result = pending.popleft().result()
            except BrokenProcessPool as err:
                raise OutputError(
                    "a decoding process ended unexpectedly (killed, or out of memory); "
                    "what was committed is kept: continue with --resume"
                ) from err
            yield result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def local_results(
    do: Callable[[Chunk], ChunkResult], chunks: Iterable[Chunk]
) -> Iterator[ChunkResult]:
    """Results of ``chunks`` done one after the other in this process."""
    for chunk in chunks:
        yield do(chunk)
