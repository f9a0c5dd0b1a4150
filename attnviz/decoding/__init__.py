"""Batched greedy, beam and forced decoding that keep every hypothesis's attention.

Written once against the family protocol (:mod:`attnviz.families.base`): any model family's
network decodes here. Inputs are padded id tensors ``src [B, N]`` with ``lengths [B]``. Each
function returns, per sentence, a list of :class:`Hypothesis` (best first) whose
``weights``/``scores`` are ``[T, L, H, length]``: one row per emitted target token, the
cross-attention of every layer and head, real source positions only.

A sentence's result never depends on the other sentences of its batch: the encoder packs
padding away, attention masks it, and the output length limit is per sentence.

How hypotheses are searched and scored follows the model's :class:`SearchRules` (attnviz's
own by default; an imported model's toolkit's otherwise).

The loops stay on the device: per step they read back one number (how many sentences are
done), sentences that are done leave the batch, and everything recorded goes to the host
once, after the last step.

Modules: ``rules`` (SearchRules, length limits, allowed tokens, scores), ``hypothesis`` (the
result type), ``batch`` (what the loops share: start, rows still decoding, per-step
record), ``greedy``, ``beam`` (with
``beam_record``, rebuilding hypotheses from back-pointers), ``joeynmt_beam`` and ``forced``.
"""

from attnviz.decoding.beam import beam_decode
from attnviz.decoding.forced import forced_decode
from attnviz.decoding.greedy import greedy_decode
from attnviz.decoding.hypothesis import Hypothesis
from attnviz.decoding.rules import (
    ATTNVIZ_RULES,
    BEAM_STOPS,
    LENGTH_NORMS,
    SearchRules,
    max_output_length,
    normalized_score,
)

__all__ = [
    "ATTNVIZ_RULES",
    "BEAM_STOPS",
    "LENGTH_NORMS",
    "Hypothesis",
    "SearchRules",
    "beam_decode",
    "forced_decode",
    "greedy_decode",
    "max_output_length",
    "normalized_score",
]
