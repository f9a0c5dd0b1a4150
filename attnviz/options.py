"""One options type per concern, each validated once in its constructor.

:class:`DecodeOptions` is what the translator, export and the CLI pass around for decoding;
:class:`RenderOptions` is what every renderer (terminal table, figure, HTML) takes. Both are
plain frozen dataclasses: no torch, no matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from attnviz.errors import ConfigError, UsageError

#: Largest beam accepted: memory and time grow with beam x vocabulary at every step.
MAX_BEAM = 64
#: Largest batch accepted, in sentences.
MAX_BATCH_SIZE = 4096
#: Largest number of alternatives recorded per step.
MAX_TOPK = 50
DEFAULT_BATCH_SIZE = 32
DEFAULT_LENGTH_PENALTY = 1.0
VALUE_KINDS = ("weights", "scores")
BEAM_STYLES = ("attnviz", "joeynmt")
LENGTH_NORMS = ("average", "gnmt")


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
    :class:`SearchRules`; None: the model's own default, 1.0 for attnviz models);
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
class SearchRules:
    """How a model searches and scores hypotheses; stored with the model, not chosen per call.

    attnviz's own models use the defaults. An imported model carries its toolkit's rules, so
    that its greedy and beam translations are exactly the toolkit's.

    ``beam``: ``"attnviz"`` keeps 2K candidates per step, a finished hypothesis leaves the
    beam and a sentence stops once K hypotheses have finished; ``"joeynmt"`` keeps K
    candidates per step, a finished hypothesis keeps its slot (and is extended further), and
    a sentence stops once every slot has held a finished hypothesis (JoeyNMT 2's search).
    ``length_ratio``/``length_offset``: at most ``int(ratio * N) + offset`` target tokens for
    a source of N tokens (``</s>`` included when the encoder reads it); ``max_length``: a
    fixed limit instead. ``min_length``: ``</s>`` is not allowed before this many tokens.
    ``forbidden``: token ids never generated. ``length_norm``: ``"average"`` scores a
    hypothesis of T tokens as sum(log-probs) / T ** penalty; ``"gnmt"`` as
    sum(log-probs) / ((5 + T) / 6) ** penalty, the plain sum when penalty is 0.
    ``length_penalty``: the penalty used when :class:`DecodeOptions` leaves it unset.
    """

    beam: str = "attnviz"
    length_ratio: float = 2.0
    length_offset: int = 10
    max_length: int | None = None
    min_length: int = 0
    forbidden: tuple[int, ...] = ()
    length_norm: str = "average"
    length_penalty: float = DEFAULT_LENGTH_PENALTY

    def __post_init__(self) -> None:
        if self.beam not in BEAM_STYLES:
            raise ConfigError(f"unknown beam style {self.beam!r}; valid: {', '.join(BEAM_STYLES)}")
        if self.length_norm not in LENGTH_NORMS:
            raise ConfigError(
                f"unknown length norm {self.length_norm!r}; valid: {', '.join(LENGTH_NORMS)}"
            )
        ratio = self.length_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 100:
            raise ConfigError(f"length_ratio must be a number in (0, 100), not {ratio!r}")
        for name, low in (("length_offset", 0), ("min_length", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be a whole number >= {low}, not {value!r}")
        fixed = self.max_length
        if fixed is not None and (
            isinstance(fixed, bool) or not isinstance(fixed, int) or fixed < 1
        ):
            raise ConfigError(f"max_length must be a whole number >= 1, not {fixed!r}")
        forbidden = self.forbidden
        if not isinstance(forbidden, tuple | list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in forbidden
        ):
            raise ConfigError("forbidden must be a list of token ids")
        object.__setattr__(self, "forbidden", tuple(forbidden))
        penalty = self.length_penalty
        if isinstance(penalty, bool) or not isinstance(penalty, int | float):
            raise ConfigError(f"length_penalty must be a number, not {penalty!r}")
        if not math.isfinite(penalty) or not 0.0 <= penalty <= 10.0:
            raise ConfigError(f"length_penalty must be between 0 and 10, not {penalty}")

    def output_limit(self, source_length: int) -> int:
        """Most target tokens (EOS included) for a source of ``source_length`` tokens."""
        if self.max_length is not None:
            return self.max_length
        return max(1, int(self.length_ratio * source_length) + self.length_offset)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["forbidden"] = list(self.forbidden)
        return values

    @classmethod
    def from_dict(cls, values: Any) -> SearchRules:
        """Rebuild stored rules; unknown or bad fields are a ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError("search rules must be a dict")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise ConfigError(f"unknown search rule fields: {', '.join(unknown)}")
        return cls(**values)


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
        if isinstance(dpi, bool) or not isinstance(dpi, int | float) or not 0 < dpi < 10_000:
            raise UsageError(f"dpi must be a number between 1 and 9999, not {dpi!r}")
        for name in ("cmap", "title", "font"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{name} must be text, not {type(value).__name__}")

    @property
    def scores(self) -> bool:
        """True when raw energies are drawn instead of weights."""
        return self.values == "scores"
