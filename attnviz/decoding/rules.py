"""How a model searches: :class:`SearchRules`, output length limits, the tokens allowed at a
step and length-normalised scores."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import ConfigError
from attnviz.options import DEFAULT_LENGTH_PENALTY

if TYPE_CHECKING:
    import torch

BEAM_STOPS = ("beam_full", "all_slots_ended", "best_ended")
LENGTH_NORMS = ("average", "gnmt")


@dataclass(frozen=True)
class SearchRules:
    """How a model searches and scores hypotheses; stored with the model, not chosen per call.

    attnviz's own models use the defaults. An imported model carries its toolkit's rules, so
    that its greedy and beam translations are exactly the toolkit's.

    - Output limit (target tokens, ``</s>`` included) for a source of N encoder tokens:
      ``min(max_length_cap, int(max_length_ratio * N + max_length_offset))``, at least 1
      (ratio 0 makes it a fixed limit).
    - ``min_length``: ``</s>`` is not allowed before this many tokens; ``forbidden``: token
      ids never generated.
    - A hypothesis of T tokens scores, with ``length_norm`` ``"average"``,
      ``sum(log-probs) / (T + length_offset) ** penalty``; with ``"gnmt"``,
      ``sum(log-probs) / ((5 + T) / 6) ** penalty`` (the plain sum when penalty is 0).
      ``length_penalty`` is the penalty used when DecodeOptions leaves it unset.
    - ``beam_stop``, with beam size K: ``beam_full``: each step looks at the 2K best
      candidates; ended ones leave the beam until K have ended, which stops the sentence
      (attnviz); ``all_slots_ended``: each step keeps the K best candidates, ended ones
      included (they keep their slot and are extended further); a slot that has once held
      an ended hypothesis stays marked, and the sentence stops when all K are (JoeyNMT 2);
      ``best_ended``: each step looks at the K best candidates; every ended one is set
      aside (no cap on their number) and its slot is dead; the sentence stops once the best
      candidate of a step has ended and at least ``nbest`` have, so asking for more
      hypotheses can change the best one (OpenNMT-py).
    """

    max_length_ratio: float = 2.0
    max_length_offset: float = 10.0
    max_length_cap: int | None = None
    length_offset: int = 0
    beam_stop: str = "beam_full"
    min_length: int = 0
    forbidden: tuple[int, ...] = ()
    length_norm: str = "average"
    length_penalty: float = DEFAULT_LENGTH_PENALTY

    def __post_init__(self) -> None:
        if self.beam_stop not in BEAM_STOPS:
            raise ConfigError(
                f"unknown beam_stop {self.beam_stop!r}; valid: {', '.join(BEAM_STOPS)}"
            )
        if self.length_norm not in LENGTH_NORMS:
            raise ConfigError(
                f"unknown length_norm {self.length_norm!r}; valid: {', '.join(LENGTH_NORMS)}"
            )
        for name in ("max_length_ratio", "max_length_offset", "length_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be at least 0, not {value}")
        for name in ("length_offset", "min_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, not {value!r}")
        cap = self.max_length_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"max_length_cap must be a whole number >= 1, not {cap!r}")
        forbidden = self.forbidden
        if not isinstance(forbidden, tuple | list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in forbidden
        ):
            raise ConfigError("forbidden must be a list of token ids")
        object.__setattr__(self, "forbidden", tuple(forbidden))

    def max_output_length(self, source_length: int) -> int:
        """Most target tokens (EOS included) for a source of ``source_length`` tokens."""
        limit = max(1, int(self.max_length_ratio * source_length + self.max_length_offset))
        return limit if self.max_length_cap is None else min(limit, self.max_length_cap)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["forbidden"] = list(self.forbidden)
        return values

    @classmethod
    def from_dict(cls, values: Any) -> SearchRules:
        """Rebuild stored rules; unknown or bad fields are a ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError("search rules must be a dict")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise ConfigError(f"unknown search rules: {', '.join(unknown)}")
        return cls(**values)


ATTNVIZ_RULES = SearchRules()


def max_output_length(source_length: int) -> int:
    """Upper bound on target tokens (EOS included) under attnviz's own rules."""
    return ATTNVIZ_RULES.max_output_length(source_length)


def normalized_score(
    logprob_sum: float, length: int, length_penalty: float, rules: SearchRules | None = None
) -> float:
    """The score of a hypothesis of ``length`` tokens, as ``rules.length_norm`` says."""
    rules = rules or ATTNVIZ_RULES
    if rules.length_norm == "gnmt":
        if length_penalty <= 0:
            return logprob_sum
        return logprob_sum / ((5.0 + length) / 6.0) ** length_penalty
    return logprob_sum / max(length + rules.length_offset, 1) ** length_penalty


def normalized_scores(
    totals: np.ndarray, lengths: np.ndarray, length_penalty: float, rules: SearchRules
) -> np.ndarray:
    """:func:`normalized_score` of many hypotheses at once (float64)."""
    totals = totals.astype(np.float64)
    if rules.length_norm == "gnmt":
        if length_penalty <= 0:
            return totals
        return totals / ((5.0 + lengths) / 6.0) ** length_penalty
    return (
        totals / np.maximum(lengths + rules.length_offset, 1).astype(np.float64) ** length_penalty
    )


def length_limits(
    lengths: torch.Tensor,
    max_length: int | None,
    rules: SearchRules,
    prefixes: list[list[int]] | None = None,
) -> list[int]:
    """Per sentence, the most target tokens; a forced prefix always fits, plus one free step."""
    limits = [rules.max_output_length(int(n)) for n in lengths.tolist()]
    if max_length is not None:
        limits = [min(limit, max_length) for limit in limits]
    if prefixes is not None:
        limits = [max(limit, len(p) + 1) for limit, p in zip(limits, prefixes, strict=True)]
    return limits


def check_prefixes(prefixes: list[list[int]] | None, batch: int) -> None:
    if prefixes is not None and len(prefixes) != batch:
        raise ValueError(f"{len(prefixes)} prefixes for {batch} sentences")


def restrict(logprobs: torch.Tensor, rules: SearchRules, step: int, eos_id: int) -> torch.Tensor:
    """Log-probs [*, V] with the tokens the rules do not allow at ``step`` set to -inf."""
    banned = [i for i in rules.forbidden if i < logprobs.size(-1)]
    if step < rules.min_length:
        banned.append(eos_id)
    if not banned:
        return logprobs
    restricted = logprobs.clone()
    restricted[:, banned] = float("-inf")
    return restricted
