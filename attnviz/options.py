"""One options type per concern, each validated once in its constructor.

:class:`DecodeOptions` is what the translator, export and the CLI pass around for decoding;
:class:`RenderOptions` is what every renderer (terminal table, figure, HTML) takes. Both are
plain frozen dataclasses: no torch, no matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from attnviz.errors import UsageError

#: Largest beam accepted: memory and time grow with beam x vocabulary at every step.
MAX_BEAM = 64
#: Largest batch accepted, in sentences.
MAX_BATCH_SIZE = 4096
#: Figure resolution range: below 10 dpi labels shrink under one pixel and FreeType refuses them.
MIN_DPI, MAX_DPI = 10, 9999
#: Largest number of alternatives recorded per step.
MAX_TOPK = 50
DEFAULT_BATCH_SIZE = 128
#: Lines an export decodes and commits together by default: several batches, so that sorting
#: by length inside a chunk keeps padding low, and few enough to resume at a fine grain.
DEFAULT_CHUNK_LINES = 1024
DEFAULT_LENGTH_PENALTY = 1.0
VALUE_KINDS = ("weights", "scores")


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{name} must be {limit}, not {value}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, not {value!r}")


@dataclass(frozen=True)
class DecodeOptions:
    """How sentences are decoded.

    ``beam``: beam size (1 is greedy); ``nbest``: hypotheses kept per sentence (≤ beam);
    ``words``: merge subword pieces into words; ``batch_size``: sentences decoded together;
    ``length_penalty``: how strongly a hypothesis score is normalised by its length (see
    ``attnviz.decoding.SearchRules``; None: the model's own default, 1.0 for attnviz models);
    ``prefix``: target text forced before free decoding; ``topk``: alternatives recorded per
    step (0: none).
    """

    beam: int = 1
    nbest: int = 1
    words: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    length_penalty: float | None = None
    prefix: str | None = None
    topk: int = 0

    def __post_init__(self) -> None:
        _int("beam size", self.beam, 1, MAX_BEAM)
        _int("nbest", self.nbest, 1)
        if self.nbest > self.beam:
            raise UsageError(f"nbest ({self.nbest}) cannot exceed the beam size ({self.beam})")
        _bool("words", self.words)
        _int("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        penalty = self.length_penalty
        if penalty is not None:
            if isinstance(penalty, bool) or not isinstance(penalty, int | float):
                raise UsageError(f"length penalty must be a number, not {penalty!r}")
            if not math.isfinite(penalty) or not 0.0 <= penalty <= 10.0:
                raise UsageError(f"length penalty must be between 0 and 10, not {penalty}")
        if self.prefix is not None and not isinstance(self.prefix, str):
            raise UsageError(f"prefix must be text, not {type(self.prefix).__name__}")
        _int("topk", self.topk, 0, MAX_TOPK)

    def fingerprint(self) -> dict[str, Any]:
        """Every field, as plain values (for manifests and resume checks)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RenderOptions:
    """What a renderer draws and how; the same for the terminal table, figures and HTML.

    ``values``: ``"weights"`` (softmax attention, 0-1) or ``"scores"`` (raw energies);
    ``numbers``: write each cell's number in it; ``cmap``: a colormap name (figures; default
    per value kind); ``dpi``, ``title``, ``font``: figure settings; ``show_table``: the
    terminal table under the translation line.
    """

    values: str = "weights"
    numbers: bool = False
    cmap: str | None = None
    dpi: float = 150
    title: str | None = None
    font: str | None = None
    show_table: bool = True

    def __post_init__(self) -> None:
        if self.values not in VALUE_KINDS:
            raise UsageError(f"values must be one of {', '.join(VALUE_KINDS)}, not {self.values!r}")
        _bool("numbers", self.numbers)
        _bool("show_table", self.show_table)
        dpi = self.dpi
        if (
            isinstance(dpi, bool)
            or not isinstance(dpi, int | float)
            or not MIN_DPI <= dpi <= MAX_DPI
        ):
            raise UsageError(f"dpi must be a number between {MIN_DPI} and {MAX_DPI}, not {dpi!r}")
        for name in ("cmap", "title", "font"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{name} must be text, not {type(value).__name__}")

    @property
    def scores(self) -> bool:
        """True when raw energies are drawn instead of weights."""
        return self.values == "scores"


#: ``head`` value that averages the heads of the chosen layer.
MEAN_HEADS = "mean"
#: Most layers a selection may name (far above any model; keeps messages and loops bounded).
MAX_LAYERS = 1024


@dataclass(frozen=True)
class HeadSelection:
    """Which cross-attention matrix is *the* attention: a layer and a head, or the mean over
    the layer's heads.

    ``layer``: 0-based from the bottom decoder layer, negative counts from the top (-1, the
    default, is the last layer); ``head``: a 0-based head index or ``"mean"`` (the default).
    A model with one layer and one head (every RNN) has the one matrix under the default.
    """

    layer: int = -1
    head: int | str = MEAN_HEADS

    def __post_init__(self) -> None:
        _int("layer", self.layer, -MAX_LAYERS, MAX_LAYERS - 1)
        if self.head != MEAN_HEADS:
            if isinstance(self.head, str):
                raise UsageError(f"head must be a head number or {MEAN_HEADS!r}, not {self.head!r}")
            _int("head", self.head, 0, MAX_LAYERS - 1)

    @classmethod
    def parse(cls, layer: int = -1, head: str | int = MEAN_HEADS) -> HeadSelection:
        """From text as typed (``--head 3`` or ``--head mean``)."""
        if isinstance(head, str) and head != MEAN_HEADS:
            text = head.strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 4:
                raise UsageError(f"head must be a head number or {MEAN_HEADS!r}, not {head!r:.40}")
            head = int(text)
        return cls(layer, head)

    @property
    def is_mean(self) -> bool:
        return self.head == MEAN_HEADS

    def resolve(self, layers: int, heads: int) -> tuple[int, int | None]:
        """(layer index in [0, layers), head index or None for the mean) for a model of
        ``layers`` x ``heads`` matrices; a selection outside it is a UsageError."""
        if not -layers <= self.layer < layers:
            raise UsageError(
                f"layer {self.layer} is outside the model's {layers} decoder layer"
                f"{'s' if layers != 1 else ''} (0 to {layers - 1}, or -{layers} to -1)"
            )
        if self.is_mean:
            return self.layer % layers, None
        if not self.head < heads:  # type: ignore[operator]
            raise UsageError(
                f"head {self.head} is outside the model's {heads} head"
                f"{'s' if heads != 1 else ''} per layer (0 to {heads - 1})"
            )
        return self.layer % layers, int(self.head)  # type: ignore[arg-type]

    def describe(self, layers: int, heads: int) -> str:
        """The view in words, e.g. ``layer 6/6, mean of 8 heads`` (layers counted from 1)."""
        layer, head = self.resolve(layers, heads)
        where = f"layer {layer + 1}/{layers}"
        if head is None:
            return f"{where}, mean of {heads} heads" if heads > 1 else where
        return f"{where}, head {head + 1}/{heads}"


DEFAULT_VIEW = HeadSelection()
