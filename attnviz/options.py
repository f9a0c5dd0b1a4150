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
DEFAULT_BATCH_SIZE = 32
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
