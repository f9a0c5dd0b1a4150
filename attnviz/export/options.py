"""What an export writes and how: :class:`ExportOptions`, validated once in its constructor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attnviz.errors import UsageError
from attnviz.options import DEFAULT_CHUNK_LINES, MAX_DPI, MIN_DPI, DecodeOptions

FIGURE_FORMATS = ("png", "svg")
#: Most decoding or figure worker processes accepted.
MAX_WORKERS = 64
#: Most lines committed together.
MAX_CHUNK_LINES = 1_000_000
#: Most shards an export can be split into.
MAX_SHARDS = 100_000


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low} and {high}, not {value}")


@dataclass(frozen=True)
class ExportOptions:
    """How a file is exported.

    ``decode``: how sentences are decoded; ``refs``: lines are ``source<TAB>reference`` and
    the references are forced; ``npz`` / ``figures`` (``"png"``, ``"svg"`` or None) /
    ``html`` (the interactive page ``view.html``): the optional formats; ``chunk_lines``:
    lines committed together (the resume granularity, and the unit of work of decoding
    processes and shards); ``strict``: stop at the first line that cannot be handled;
    ``workers``: processes decoding chunks (1: the exporting process itself);
    ``figure_workers``: processes drawing figures; ``dpi``: resolution of PNG figures.
    Neither number of processes changes a byte of the output. ``shard``: ``(K, N)`` exports
    only the chunks whose number (line // chunk_lines) is K modulo N; ``(0, 1)``: every
    chunk. ``links``: how hard links are read off the attention (see
    :func:`attnviz.eval.extract_links`); ``diagnostics``: add attention diagnostics to each
    JSONL record.
    """

    decode: DecodeOptions = field(default_factory=DecodeOptions)
    refs: bool = False
    npz: bool = False
    figures: str | None = None
    html: bool = False
    chunk_lines: int = DEFAULT_CHUNK_LINES
    strict: bool = False
    workers: int = 1
    figure_workers: int = 2
    dpi: int = 100
    shard: tuple[int, int] = (0, 1)
    links: str = "argmax"
    diagnostics: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.decode, DecodeOptions):
            raise UsageError(f"decode must be DecodeOptions, not {type(self.decode).__name__}")
        for name in ("refs", "npz", "html", "strict", "diagnostics"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.figures is not None and self.figures not in FIGURE_FORMATS:
            raise UsageError(
                f"unknown figure format {self.figures!r}; use {', '.join(FIGURE_FORMATS)}"
            )
        _check_int("chunk size", self.chunk_lines, 1, MAX_CHUNK_LINES)
        _check_int("workers", self.workers, 1, MAX_WORKERS)
        _check_int("figure workers", self.figure_workers, 1, MAX_WORKERS)
        if self.figures is not None:
            _check_int("dpi", self.dpi, MIN_DPI, MAX_DPI)
        if not isinstance(self.shard, tuple) or len(self.shard) != 2:
            raise UsageError(f"shard must be a pair (index, count), not {self.shard!r}")
        _check_int("shard count", self.shard[1], 1, MAX_SHARDS)
        _check_int("shard index", self.shard[0], 0, self.shard[1] - 1)
        from attnviz.eval import parse_link_method

        object.__setattr__(self, "links", str(parse_link_method(self.links)))

    def fingerprint(self) -> dict[str, Any]:
        """Options that can change the output bytes (a resumed run must use the same).

        Batch size is one: float sums over differently shaped batches differ in the last bits.
        Each optional format appears under the name of the option that selects it.
        """
        from attnviz.export.formats import FORMATS

        values: dict[str, Any] = {**self.decode.fingerprint(), "refs": self.refs}
        for fmt in FORMATS.values():
            if fmt.option is not None:
                values[fmt.option] = getattr(self, fmt.option)
        values["chunk_lines"] = self.chunk_lines
        values["dpi"] = self.dpi
        if self.sharded:
            values["shard"] = list(self.shard)
        values["links"] = self.links
        values["diagnostics"] = self.diagnostics
        return values

    @property
    def sharded(self) -> bool:
        return self.shard[1] > 1

    def takes_chunk(self, number: int) -> bool:
        """Whether chunk ``number`` (0-based, lines ``number * chunk_lines`` on) is this
        export's."""
        index, count = self.shard
        return number % count == index

    def lines_taken(self, total: int) -> int:
        """How many of ``total`` input lines fall in this export's chunks."""
        index, count = self.shard
        size = self.chunk_lines
        chunks = -(-total // size)
        if index >= chunks:
            return 0
        taken = (chunks - 1 - index) // count + 1
        lines = taken * size
        if (chunks - 1) % count == index:  # the last chunk, which may be short, is ours
            lines -= chunks * size - total
        return lines
