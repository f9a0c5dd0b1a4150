"""Scores for translations (standard library only).

* :func:`chrf` is corpus-level chrF (Popović 2015) with sacreBLEU's default settings.
* :func:`exact_match` is the fraction of hypotheses identical to their reference.

Word-alignment scores (AER, precision, recall) live in :mod:`attnviz.eval`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(
    hypotheses: Sequence[str], references: Sequence[str], n: int = 6, beta: float = 2
) -> float:
    """Corpus-level chrF on a 0–100 scale, as sacreBLEU computes it by default.

    Character n-grams of orders 1..n are counted with all whitespace removed; hypothesis,
    reference and matched counts are summed over the corpus per order. Precision and recall
    are averaged over the orders for which both sides have n-grams, then combined into an
    F-beta score (beta = 2 weighs recall more).
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"chrf needs one reference per hypothesis; got {len(hypotheses)} hypotheses and "
            f"{len(references)} references"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    totals = [[0, 0, 0] for _ in range(n)]  # per order: hypothesis, reference, matched
    for hyp, ref in zip(hypotheses, references, strict=True):
        hyp_chars, ref_chars = "".join(hyp.split()), "".join(ref.split())
        for order in range(1, n + 1):
            hyp_grams = _char_ngrams(hyp_chars, order)
            ref_grams = _char_ngrams(ref_chars, order)
            row = totals[order - 1]
            row[0] += sum(hyp_grams.values())
            row[1] += sum(ref_grams.values())
            row[2] += sum((hyp_grams & ref_grams).values())
    precision = recall = 0.0
    effective = 0
    for n_hyp, n_ref, n_match in totals:
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            effective += 1
    if effective == 0:
        return 0.0
    precision /= effective
    recall /= effective
    if precision + recall == 0:
        return 0.0
    factor = beta**2
    return 100.0 * (1 + factor) * precision * recall / (factor * precision + recall)


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction (0–1) of hypotheses equal to their reference; 0.0 for an empty corpus."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"exact_match needs one reference per hypothesis; got {len(hypotheses)} "
            f"hypotheses and {len(references)} references"
        )
    if not hypotheses:
        return 0.0
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(hypotheses)
