"""Scores for translations and word alignments (standard library only).

* :func:`parse_pharaoh` reads a gold alignment line (``i-j`` sure, ``i?j`` possible).
* :func:`aer` is the alignment error rate of Och & Ney (2003), summed over a corpus.
* :func:`chrf` is corpus-level chrF (Popović 2015) with sacreBLEU's default settings.
* :func:`exact_match` is the fraction of hypotheses identical to their reference.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

Link = tuple[int, int]

_LINK = re.compile(r"(\d+)([-?])(\d+)")


def parse_pharaoh(line: str) -> tuple[set[Link], set[Link]]:
    """Parse one alignment line into ``(sure, possible)`` sets of ``(i, j)`` links.

    ``i-j`` is a sure link and ``i?j`` a possible one; sure links are also possible, so
    the second set always contains the first. An empty line is an empty alignment.

    >>> parse_pharaoh("0-0 1?0 2-1")
    ({(0, 0), (2, 1)}, {(0, 0), (1, 0), (2, 1)})
    """
    sure: set[Link] = set()
    possible: set[Link] = set()
    for token in line.split():
        match = _LINK.fullmatch(token)
        if match is None:
            raise ValueError(
                f"malformed alignment link {token!r}: expected 'i-j' (sure) or 'i?j' (possible) "
                "with non-negative integers"
            )
        link = (int(match.group(1)), int(match.group(3)))
        possible.add(link)
        if match.group(2) == "-":
            sure.add(link)
    return sure, possible


def aer(
    predicted: Iterable[set[Link]], sure: Iterable[set[Link]], possible: Iterable[set[Link]]
) -> float:
    """Corpus-level alignment error rate, 0 (perfect) to 1.

    ``AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|)`` with every count summed over sentences.
    Possible links are taken to include the sure ones (``P ∪ S`` is used for ``P``).
    """
    predicted, sure, possible = list(predicted), list(sure), list(possible)
    if not len(predicted) == len(sure) == len(possible):
        raise ValueError(
            f"aer needs one predicted, sure and possible set per sentence; got "
            f"{len(predicted)}, {len(sure)} and {len(possible)}"
        )
    hits = total = 0
    for a, s, p in zip(predicted, sure, possible, strict=True):
        a, s = set(a), set(s)
        p = set(p) | s
        hits += len(a & s) + len(a & p)
        total += len(a) + len(s)
    if total == 0:
        return 0.0
    return 1.0 - hits / total


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
