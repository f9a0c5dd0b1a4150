"""Word alignments from attention, scored against gold links, and attention diagnostics.

numpy only. Four parts:

* gold readers: Pharaoh lines (``i-j`` sure, ``i?j`` or ``ipj`` possible) and the NAACL 2003 /
  WPT format (``sentence i j [S|P]``, 1-indexed, one link per line);
* hard links from an attention matrix (:func:`extract_links`) and symmetrisation of two
  directions (:func:`symmetrise`: intersection, union, grow-diag, grow-diag-final,
  grow-diag-final-and of Koehn, Och & Marcu 2003);
* precision, recall, AER and F1 exactly as Och & Ney (2003), per sentence and summed over a
  corpus (:class:`LinkCounts`);
* diagnostics that need no gold (:func:`diagnose`): attention entropy, the coverage deviation
  and absentmindedness penalties of Rikters & Fishel (2017), weight on ``</s>``, crossing
  links, and source words attended too little or too much.

Links are ``(i, j)`` pairs, Pharaoh order: ``i`` indexes the source, ``j`` the target, both
0-based over real tokens (``</s>`` never takes part in a link).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import InputError, UsageError

if TYPE_CHECKING:
    from attnviz.alignment import Alignment

Link = tuple[int, int]

LINK_METHODS = ("argmax", "argmax-target", "both", "threshold:X")
SYMMETRISATIONS = ("intersection", "union", "grow-diag", "grow-diag-final", "grow-diag-final-and")
GOLD_FORMATS = ("auto", "pharaoh", "naacl")

UNATTENDED_BELOW = 0.5  # total weight a source word receives: likely under-translated
OVERATTENDED_ABOVE = 2.0  # ... or attended far more than once: likely over-translated

# -- gold -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gold:
    """Gold links of one sentence. ``possible`` always contains ``sure``."""

    sure: frozenset[Link] = frozenset()
    possible: frozenset[Link] = frozenset()

    def __post_init__(self) -> None:
        if not self.sure <= self.possible:
            object.__setattr__(self, "possible", self.possible | self.sure)

    def reversed(self) -> Gold:
        return Gold(
            frozenset((j, i) for i, j in self.sure), frozenset((j, i) for i, j in self.possible)
        )


# one link, standing alone between whitespace: i-j, i?j or ipj with ASCII digits
_PHARAOH_LINK = re.compile(r"(?<!\S)([0-9]+)([-?p])([0-9]+)(?!\S)")
_NAACL_LINE = re.compile(r"\s*[0-9]+\s+[0-9]+\s+[0-9]+(\s+[SPsp])?(\s+[-+.eE0-9]+)?\s*")


def parse_pharaoh(line: str, *, one_indexed: bool = False, reverse: bool = False) -> Gold:
    """One Pharaoh line: ``i-j`` sure, ``i?j`` or ``ipj`` possible; blank means no links.

    ``one_indexed`` reads indices counted from 1; ``reverse`` reads target-source lines
    (``j-i``). Raises ValueError naming the bad link.

    >>> parse_pharaoh("0-0 1?0 2p1")
    Gold(sure=frozenset({(0, 0)}), possible=frozenset({(0, 0), (1, 0), (2, 1)}))
    """
    links = _PHARAOH_LINK.findall(line)
    if len(links) != len(line.split()):
        for token in line.split():  # find the token to blame
            if _PHARAOH_LINK.fullmatch(token) is None:
                raise ValueError(
                    f"malformed alignment link {token!r}: expected 'i-j' (sure) or 'i?j' / "
                    "'ipj' (possible) with non-negative integers"
                )
    sure: set[Link] = set()
    possible: set[Link] = set()
    shift = 1 if one_indexed else 0
    for left, separator, right in links:
        i, j = int(left) - shift, int(right) - shift
        if i < 0 or j < 0:
            raise ValueError(f"link {left}{separator}{right!s} has index 0 in a 1-indexed file")
        link = (j, i) if reverse else (i, j)
        possible.add(link)
        if separator == "-":
            sure.add(link)
    return Gold(frozenset(sure), frozenset(possible))


def read_pharaoh(
    path: str | Path, *, one_indexed: bool = False, reverse: bool = False
) -> Iterator[Gold]:
    """Stream a Pharaoh gold file, one :class:`Gold` per line (a blank line: no links)."""
    return _parse_pharaoh_lines(_lines(path), path, one_indexed=one_indexed, reverse=reverse)


def _parse_pharaoh_lines(
    lines: Iterable[str], path: str | Path, *, one_indexed: bool, reverse: bool
) -> Iterator[Gold]:
    for number, line in enumerate(lines, 1):
        try:
            yield parse_pharaoh(line, one_indexed=one_indexed, reverse=reverse)
        except ValueError as err:
            raise InputError(f"{path}:{number}: {err}") from None


def read_naacl(path: str | Path, *, reverse: bool = False) -> list[Gold]:
    """Read a NAACL 2003 / WPT file: ``sentence i j [S|P] [confidence]`` per line.

    Sentences and positions count from 1, position 0 is the NULL word (its links are
    dropped), a missing S/P means S. Sentence ``n`` is item ``n - 1`` of the list; sentences
    without links are empty.
    """
    return _parse_naacl_lines(_lines(path), path, reverse=reverse)


def _parse_naacl_lines(lines: Iterable[str], path: str | Path, *, reverse: bool) -> list[Gold]:
    sentences: dict[int, tuple[set[Link], set[Link]]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if _NAACL_LINE.fullmatch(line) is None:
            raise InputError(f"{path}:{number}: expected 'sentence i j [S|P]' (NAACL/WPT format)")
        fields = line.split()
        sentence, i, j = int(fields[0]), int(fields[1]), int(fields[2])
        if sentence == 0:
            raise InputError(f"{path}:{number}: sentence numbers start at 1")
        kind = fields[3].upper() if len(fields) > 3 else "S"
        sure, possible = sentences.setdefault(sentence, (set(), set()))
        if i == 0 or j == 0:
            continue  # NULL alignment
        link = (j - 1, i - 1) if reverse else (i - 1, j - 1)
        possible.add(link)
        if kind == "S":
            sure.add(link)
    count = max(sentences, default=0)
    empty = (set(), set())
    return [
        Gold(frozenset(sentences.get(n, empty)[0]), frozenset(sentences.get(n, empty)[1]))
        for n in range(1, count + 1)
    ]


def detect_gold_format(path: str | Path) -> str:
    """``naacl`` when the first non-blank line looks like ``sentence i j [S|P]``."""
    for line in _lines(path):
        if line.strip():
            return "naacl" if _NAACL_LINE.fullmatch(line) else "pharaoh"
    return "pharaoh"


def read_gold(
    path: str | Path,
    *,
    format: str = "auto",
    one_indexed: bool = False,
    reverse: bool = False,
) -> Iterator[Gold]:
    """Gold links sentence by sentence, in either format (``auto`` looks at the first line
    with text). The file is read once, so it may be a pipe."""
    if format not in GOLD_FORMATS:
        raise UsageError(f"gold format must be one of {', '.join(GOLD_FORMATS)}, not {format!r}")
    lines = _lines(path)
    if format == "auto":
        head = []  # blank lines before the first link, kept: they are sentences too
        for line in lines:
            head.append(line)
            if line.strip():
                break
        format = "naacl" if head and _NAACL_LINE.fullmatch(head[-1]) else "pharaoh"
        lines = itertools.chain(head, lines)
    if format == "naacl":
        return iter(_parse_naacl_lines(lines, path, reverse=reverse))
    return _parse_pharaoh_lines(lines, path, one_indexed=one_indexed, reverse=reverse)


def _lines(path: str | Path, max_bytes: int | None = None) -> Iterator[str]:
    """Lines of a text file through attnviz's one I/O layer (UTF-8 checked, errors name the
    line)."""
    from attnviz import io

    if str(path) != io.STDIN:
        io.check_input_file(Path(path))
    return io.iter_lines(path, **({"max_bytes": max_bytes} if max_bytes else {}))


# -- hard links ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkMethod:
    """How hard links are read off an attention matrix; see :func:`parse_link_method`."""

    name: str = "argmax"
    threshold: float = 0.0

    def __str__(self) -> str:
        return f"threshold:{self.threshold:g}" if self.name == "threshold" else self.name


def parse_link_method(method: str | LinkMethod) -> LinkMethod:
    """``argmax`` | ``argmax-target`` | ``both`` | ``threshold:X`` with 0 < X <= 1."""
    if isinstance(method, LinkMethod):
        return method
    text = str(method).strip()
    if text in ("argmax", "argmax-target", "both"):
        return LinkMethod(text)
    if text.startswith("threshold:"):
        try:
            value = float(text.removeprefix("threshold:"))
        except ValueError:
            value = math.nan
        if not 0.0 < value <= 1.0:
            raise UsageError(f"threshold must be a number in (0, 1], not {text!r}")
        return LinkMethod("threshold", value)
    raise UsageError(f"unknown link method {text!r}; choose from {', '.join(LINK_METHODS)}")


def extract_links(weights: np.ndarray, method: str | LinkMethod = "argmax") -> list[Link]:
    """Hard links of a [T, S] attention matrix over real tokens only.

    ``argmax``: each target token to the source token it attends to most (target order);
    ``argmax-target``: each source token to the target token that attends to it most;
    ``both``: links found both ways; ``threshold:X``: every cell with weight >= X.
    Links are ``(i, j)``, source index first; all but ``argmax`` come sorted by (j, i).
    """
    method = parse_link_method(method)
    n_tgt, n_src = weights.shape
    if n_tgt == 0 or n_src == 0:
        return []
    if method.name == "argmax":
        return list(zip(weights.argmax(axis=1).tolist(), range(n_tgt), strict=True))
    if method.name == "argmax-target":
        links = zip(range(n_src), weights.argmax(axis=0).tolist(), strict=True)
    elif method.name == "both":
        by_target = set(zip(weights.argmax(axis=1).tolist(), range(n_tgt), strict=True))
        by_source = zip(range(n_src), weights.argmax(axis=0).tolist(), strict=True)
        links = (link for link in by_source if link in by_target)
    else:
        rows, cols = np.nonzero(weights >= method.threshold)  # [K] target, [K] source
        links = zip(cols.tolist(), rows.tolist(), strict=True)
    return sorted(links, key=_target_order)


def _target_order(link: Link) -> Link:
    return link[1], link[0]


# -- symmetrisation -----------------------------------------------------------------------------

_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1))
_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def symmetrise(
    forward: Iterable[Link],
    reverse: Iterable[Link],
    method: str,
    src_len: int | None = None,
    tgt_len: int | None = None,
) -> set[Link]:
    """Combine two directional alignments of one sentence pair.

    Both are sets of ``(i, j)`` links in the same orientation (source index first):
    ``forward`` from the source→target model, ``reverse`` from the target→source model with
    its links swapped back. ``intersection`` and ``union`` are what they say. The grow
    heuristics (Koehn, Och & Marcu 2003) start from the intersection and repeatedly add
    union links that neighbour an accepted link (horizontally, vertically or diagonally) and
    touch a source or target word still unaligned, scanning source positions, then target
    positions, until nothing changes. ``-final`` then adds remaining links of the forward,
    then of the reverse alignment that touch a word still unaligned; ``-final-and`` only
    those whose source and target words are both unaligned.
    """
    forward, reverse = set(forward), set(reverse)
    if method == "intersection":
        return forward & reverse
    if method == "union":
        return forward | reverse
    if method not in SYMMETRISATIONS:
        raise UsageError(
            f"unknown symmetrisation {method!r}; choose from {', '.join(SYMMETRISATIONS)}"
        )
    union = forward | reverse
    if src_len is None:
        src_len = 1 + max((i for i, _ in union), default=-1)
    if tgt_len is None:
        tgt_len = 1 + max((j for _, j in union), default=-1)
    aligned = forward & reverse
    src_count = [0] * src_len  # links per source word
    tgt_count = [0] * tgt_len
    for i, j in aligned:
        src_count[i] += 1
        tgt_count[j] += 1

    def add(i: int, j: int) -> None:
        aligned.add((i, j))
        src_count[i] += 1
        tgt_count[j] += 1

    neighbours = _NEIGHBOURS + _DIAGONALS
    added = True
    while added:  # grow-diag
        added = False
        for i in range(src_len):
            for j in range(tgt_len):
                if (i, j) not in aligned:
                    continue
                for di, dj in neighbours:
                    ni, nj = i + di, j + dj
                    if (
                        0 <= ni < src_len
                        and 0 <= nj < tgt_len
                        and (src_count[ni] == 0 or tgt_count[nj] == 0)
                        and (ni, nj) in union
                        and (ni, nj) not in aligned
                    ):
                        add(ni, nj)
                        added = True
    if method == "grow-diag":
        return aligned
    both_unaligned = method == "grow-diag-final-and"
    for direction in (forward, reverse):
        for i in range(src_len):
            for j in range(tgt_len):
                if (i, j) not in direction or (i, j) in aligned:
                    continue
                if both_unaligned:
                    ok = src_count[i] == 0 and tgt_count[j] == 0
                else:
                    ok = src_count[i] == 0 or tgt_count[j] == 0
                if ok:
                    add(i, j)
    return aligned


# -- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCounts:
    """The four counts behind precision, recall and AER; add them up over a corpus.

    predicted = |A|, sure = |S|, hit_sure = |A∩S|, hit_possible = |A∩P| with P ⊇ S.
    """

    predicted: int = 0
    sure: int = 0
    hit_sure: int = 0
    hit_possible: int = 0

    def __add__(self, other: LinkCounts) -> LinkCounts:
        return LinkCounts(
            self.predicted + other.predicted,
            self.sure + other.sure,
            self.hit_sure + other.hit_sure,
            self.hit_possible + other.hit_possible,
        )

    @property
    def precision(self) -> float:
        """|A∩P| / |A|; 1.0 when nothing is predicted (nothing predicted wrongly)."""
        return self.hit_possible / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """|A∩S| / |S|; 1.0 when the gold has no sure link."""
        return self.hit_sure / self.sure if self.sure else 1.0

    @property
    def aer(self) -> float:
        """1 - (|A∩S| + |A∩P|) / (|A| + |S|); 0.0 when both are empty."""
        total = self.predicted + self.sure
        return 1.0 - (self.hit_sure + self.hit_possible) / total if total else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "aer": self.aer,
            "f1": self.f1,
            "links": self.predicted,
            "sure": self.sure,
        }


def count_links(predicted: Iterable[Link], gold: Gold) -> LinkCounts:
    """Counts of one sentence (``gold.possible`` contains the sure links)."""
    predicted = set(predicted)
    return LinkCounts(
        predicted=len(predicted),
        sure=len(gold.sure),
        hit_sure=len(predicted & gold.sure),
        hit_possible=len(predicted & gold.possible),
    )


def aer(
    predicted: Iterable[Iterable[Link]],
    sure: Iterable[Iterable[Link]],
    possible: Iterable[Iterable[Link]],
) -> float:
    """Corpus-level AER with every count summed over sentences (not a mean of sentences)."""
    predicted, sure, possible = list(predicted), list(sure), list(possible)
    if not len(predicted) == len(sure) == len(possible):
        raise ValueError(
            f"aer needs one predicted, sure and possible set per sentence; got "
            f"{len(predicted)}, {len(sure)} and {len(possible)}"
        )
    total = LinkCounts()
    for links, s, p in zip(predicted, sure, possible, strict=True):
        total += count_links(links, Gold(frozenset(s), frozenset(p)))
    return total.aer


def check_gold_fits(gold: Gold, src_len: int, tgt_len: int, where: str) -> None:
    """Raise InputError when a gold link points past the words of the sentence."""
    for i, j in gold.possible:
        if i >= src_len or j >= tgt_len:
            raise InputError(
                f"{where}: gold link {i}-{j} does not fit a sentence of {src_len} source and "
                f"{tgt_len} target words (token counts differ; is the gold 1-indexed "
                "(--one-indexed) or target-source (--reverse)?)"
            )


# -- diagnostics --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Attention quality signals of one hypothesis that need no gold.

    entropy: mean entropy (nats) of the target tokens' attention rows.
    cdp, ap_out, ap_in: coverage deviation and absentmindedness penalties (Rikters & Fishel
    2017), all <= 0, 0 best; ``confidence`` is their sum.
    eos_weight: mean weight that real target tokens put on the source ``</s>``.
    crossings: fraction of pairs of argmax links that cross (0 = monotone).
    unattended / overattended: real source tokens (0-based, ``</s>`` not counted) whose total
    weight over all target tokens is below 0.5 / above 2.
    """

    entropy: float
    cdp: float
    ap_out: float
    ap_in: float
    eos_weight: float
    crossings: float
    unattended: tuple[int, ...] = ()
    overattended: tuple[int, ...] = ()

    @property
    def confidence(self) -> float:
        return self.cdp + self.ap_out + self.ap_in

    def to_dict(self) -> dict[str, Any]:
        return {
            "entropy": self.entropy,
            "cdp": self.cdp,
            "ap_out": self.ap_out,
            "ap_in": self.ap_in,
            "confidence": self.confidence,
            "eos_weight": self.eos_weight,
            "crossings": self.crossings,
            "unattended": list(self.unattended),
            "overattended": list(self.overattended),
        }

    def summary(self, src_words: list[str] | None = None) -> str:
        """One line for a terminal, e.g. under the heatmap table (words are not escaped)."""

        def names(indices: tuple[int, ...]) -> str:
            if not indices:
                return "none"
            if src_words is None:
                return ", ".join(str(i) for i in indices)
            return ", ".join(src_words[i] for i in indices)

        return (
            f"entropy {self.entropy:.3f} · CDP {self.cdp:.3f} · APout {self.ap_out:.3f} · "
            f"APin {self.ap_in:.3f} · </s> {self.eos_weight:.3f} · "
            f"crossings {self.crossings:.3f} · unattended: {names(self.unattended)} · "
            f"over-attended: {names(self.overattended)}"
        )


@dataclass(frozen=True, slots=True)
class AttentionView:
    """One hypothesis as the diagnostics see it.

    weights: [T, S]; src_real [S] / tgt_real [T]: which columns / rows are real tokens (not
    ``</s>``); eos [S]: the columns of the source ``</s>``; links: argmax links over the real
    tokens, or None to compute them.
    """

    weights: np.ndarray
    src_real: list[bool]
    tgt_real: list[bool]
    eos: list[bool]
    links: list[Link] | None = None

    @classmethod
    def from_tokens(
        cls,
        weights: np.ndarray,
        src_tokens: list[str],
        tgt_tokens: list[str],
        links: list[Link] | None = None,
    ) -> AttentionView:
        from attnviz.alignment import NON_WORDS

        return cls(
            weights=np.asarray(weights),
            src_real=[token not in NON_WORDS for token in src_tokens],
            tgt_real=[token not in NON_WORDS for token in tgt_tokens],
            eos=[token == "</s>" for token in src_tokens],
            links=links,
        )


def diagnose(
    weights: np.ndarray,
    src_tokens: list[str],
    tgt_tokens: list[str],
    *,
    links: list[Link] | None = None,
) -> Diagnostics:
    """Diagnostics of one [T, S] attention matrix (float64 arithmetic).

    As in Rikters & Fishel's own code (SoftAlignments), the penalties see every token,
    ``</s>`` included; CDP squares the deviation as published (that code defaults to a 6th
    power). α_ji is the weight of target token j on source token i:

    * CDP = -(1/S) Σ_i log(1 + (1 - Σ_j α_ji)²): each source token should receive a total
      weight of about 1;
    * APout = -(1/T) Σ_j H(α_j·): each target token's attention should be sharp;
    * APin = -(1/S) Σ_i H(α_·i / Σ_j α_ji): each source token should be attended by few
      target tokens;

    with H the entropy in nats. ``links`` are the argmax links over real tokens when known.
    """
    return diagnose_many([AttentionView.from_tokens(weights, src_tokens, tgt_tokens, links)])[0]


_BATCH_CELLS = 1 << 19  # padded cells in one batch of diagnostics (4 MiB of float64)


def diagnose_many(views: list[AttentionView]) -> list[Diagnostics]:
    """Diagnostics of many hypotheses, computed on padded [B, T, S] stacks.

    Hypotheses are stacked in order of shape, so that little of a stack is padding.
    """
    from attnviz.alignment import shape_batches

    out: list[Diagnostics | None] = [None] * len(views)
    shapes = [view.weights.shape for view in views]
    for batch in shape_batches(shapes, _BATCH_CELLS):
        n_tgt = max(shapes[k][0] for k in batch)
        n_src = max(shapes[k][1] for k in batch)
        results = _diagnose_batch([views[k] for k in batch], n_tgt, n_src)
        for k, result in zip(batch, results, strict=True):
            out[k] = result
    return out  # type: ignore[return-value]


_TINY = np.finfo(np.float64).tiny


def _entropies(totals: np.ndarray, xlogx: np.ndarray) -> np.ndarray:
    """Entropies of distributions w / t from t = Σ w and Σ w log w (0 where t = 0).

    H = -Σ (w/t) log(w/t) = log t - (Σ w log w) / t, so one pass of w log w over a stack
    gives the entropies of its rows and of its columns alike.
    """
    safe = np.maximum(totals, _TINY)
    return np.where(totals > 0, np.log(safe) - xlogx / safe, 0.0)


def _ragged(values: list[list], lengths: np.ndarray, width: int, dtype: type) -> np.ndarray:
    """[B, width] array of per-row lists of the given lengths, zero padded."""
    out = np.zeros((len(lengths), width), dtype)
    flat = np.fromiter(itertools.chain.from_iterable(values), dtype, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(lengths)), lengths)
    columns = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, columns] = flat
    return out


def _diagnose_batch(views: list[AttentionView], n_tgt: int, n_src: int) -> list[Diagnostics]:
    size = len(views)
    stack = np.zeros((size, n_tgt, n_src))  # [B, T, S], zero padded
    for b, view in enumerate(views):
        t, s = view.weights.shape
        stack[b, :t, :s] = view.weights
    shapes = np.array([view.weights.shape for view in views], np.int64).reshape(size, 2)
    src_real = _ragged([v.src_real for v in views], shapes[:, 1], n_src, bool)  # [B, S]
    tgt_real = _ragged([v.tgt_real for v in views], shapes[:, 0], n_tgt, float)  # [B, T]
    eos = _ragged([v.eos for v in views], shapes[:, 1], n_src, float)  # [B, S]
    all_links = [view.links for view in views]
    for b, view in enumerate(views):
        if all_links[b] is None:
            rows, cols = np.flatnonzero(view.tgt_real), np.flatnonzero(view.src_real)
            all_links[b] = extract_links(view.weights[np.ix_(rows, cols)])
    rows = np.maximum(shapes[:, 0], 1)  # [B]
    columns = np.maximum(shapes[:, 1], 1)
    src_valid = np.arange(n_src) < shapes[:, 1:]  # [B, S]
    coverage = stack.sum(axis=1)  # [B, S] total weight per source token
    xlogx = stack * np.log(np.maximum(stack, _TINY))  # [B, T, S]; 0 for 0 weights
    entropy = _entropies(stack.sum(axis=2), xlogx.sum(axis=2)).sum(axis=1) / rows
    # penalties as 0 - x: no negative zeros for empty hypotheses
    ap_in = 0.0 - _entropies(coverage, xlogx.sum(axis=1)).sum(axis=1) / columns
    cdp = 0.0 - (np.log1p((1.0 - coverage) ** 2) * src_valid).sum(axis=1) / columns
    real_targets = np.maximum(tgt_real.sum(axis=1), 1)
    eos_weight = np.einsum("bts,bt,bs->b", stack, tgt_real, eos) / real_targets
    crossings = _crossing_fractions(all_links)
    rank = np.cumsum(src_real, axis=1) - 1  # [B, S] index among real source tokens
    under = _indices_per_row((coverage < UNATTENDED_BELOW) & src_real, rank)
    over = _indices_per_row((coverage > OVERATTENDED_ABOVE) & src_real, rank)
    return [
        Diagnostics(e, c, 0.0 - e, a, w, x, u, o)
        for e, c, a, w, x, u, o in zip(
            entropy.tolist(),
            cdp.tolist(),
            ap_in.tolist(),
            eos_weight.tolist(),
            crossings,
            under,
            over,
            strict=True,
        )
    ]


def _indices_per_row(mask: np.ndarray, rank: np.ndarray) -> list[tuple[int, ...]]:
    """For each row of a [B, S] mask, the ranks of its true cells, as a tuple."""
    rows, cols = np.nonzero(mask)
    counts = np.bincount(rows, minlength=len(mask))
    values = rank[rows, cols].tolist()
    out, start = [], 0
    for count in counts.tolist():
        out.append(tuple(values[start : start + count]))
        start += count
    return out


def _crossing_fractions(all_links: list[list[Link]]) -> list[float]:
    """Fraction of crossing link pairs per hypothesis (see :func:`crossing_fraction`)."""
    counts = np.array([len(links) for links in all_links], np.int64)  # [B]
    longest = int(counts.max(initial=0))
    if longest < 2:
        return [0.0] * len(all_links)
    src = _ragged([[i for i, _ in links] for links in all_links], counts, longest, np.int64)
    tgt = _ragged([[j for _, j in links] for links in all_links], counts, longest, np.int64)
    valid = np.arange(longest) < counts[:, None]  # [B, L]
    cross = (src[:, :, None] - src[:, None, :]) * (tgt[:, :, None] - tgt[:, None, :]) < 0
    cross &= valid[:, :, None] & valid[:, None, :]  # [B, L, L]
    pairs = counts * (counts - 1) // 2
    return (cross.sum(axis=(1, 2)) / 2 / np.maximum(pairs, 1)).tolist()


def crossing_fraction(links: Iterable[Link]) -> float:
    """Fraction of link pairs (i, j), (i', j') with (i - i')(j - j') < 0; 0 for < 2 links."""
    return _crossing_fractions([list(links)])[0]


# -- corpus evaluation --------------------------------------------------------------------------

SORT_KEYS = ("aer", "recall", "precision", "f1", "cdp", "ap_out", "ap_in", "confidence")
SORT_KEYS += ("entropy", "eos_weight", "crossings", "unattended", "overattended")
# for these a higher value is worse; for the others (recall, penalties) a lower value is
_HIGHER_IS_WORSE = {"aer", "entropy", "eos_weight", "crossings", "unattended", "overattended"}


@dataclass(slots=True)
class SentenceResult:
    """Scores of one sentence: gold counts (None without gold) and diagnostics.

    ``alignment`` is the hypothesis as read (pieces or words); ``links`` are word-level.
    """

    index: int
    alignment: Alignment
    links: list[Link]
    diagnostics: Diagnostics
    counts: LinkCounts | None = None

    @property
    def words(self) -> Alignment:
        return word_level(self.alignment)

    def value(self, key: str) -> float:
        if key in ("aer", "precision", "recall", "f1"):
            if self.counts is None:
                raise UsageError(f"sorting by {key} needs gold alignments (--gold)")
            return float(getattr(self.counts, key))
        if key in ("unattended", "overattended"):
            return float(len(getattr(self.diagnostics, key)))
        if key == "confidence":
            return self.diagnostics.confidence
        return float(getattr(self.diagnostics, key))

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.index,
            "source": self.alignment.source,
            "translation": self.alignment.translation,
            "alignment": " ".join(f"{i}-{j}" for i, j in sorted(self.links)),
        }
        if self.counts is not None:
            record.update(self.counts.to_dict())
        record.update(self.diagnostics.to_dict())
        return record


def badness(result: SentenceResult, key: str) -> float:
    """A number that grows as the sentence gets worse by ``key``."""
    if key not in SORT_KEYS:
        raise UsageError(f"unknown sort key {key!r}; choose from {', '.join(SORT_KEYS)}")
    value = result.value(key)
    return value if key in _HIGHER_IS_WORSE else -value


_MEAN_KEYS = ("entropy", "cdp", "ap_out", "ap_in", "eos_weight", "crossings")


class CorpusScorer:
    """Streaming accumulation: add sentences one by one, keep totals and the worst N.

    Memory does not grow with the corpus: only sums and a bounded heap are kept.
    """

    def __init__(self, *, worst: int = 0, sort: str = "aer") -> None:
        if sort not in SORT_KEYS:
            raise UsageError(f"unknown sort key {sort!r}; choose from {', '.join(SORT_KEYS)}")
        if worst < 0:
            raise UsageError(f"--worst must be at least 0, not {worst}")
        self.worst_n = worst
        self.sort = sort
        self.sentences = 0
        self.scored = 0  # sentences with gold
        self.failed = 0  # lines that could not be translated: not scored
        self.counts = LinkCounts()
        self._sums = dict.fromkeys((*_MEAN_KEYS, "unattended", "overattended"), 0.0)
        self._heap: list[tuple[float, int, SentenceResult]] = []

    def add(self, result: SentenceResult) -> None:
        self.sentences += 1
        if result.counts is not None:
            self.counts += result.counts
            self.scored += 1
        values, sums = result.diagnostics, self._sums
        for key in _MEAN_KEYS:
            sums[key] += getattr(values, key)
        sums["unattended"] += len(values.unattended)
        sums["overattended"] += len(values.overattended)
        if self.worst_n:
            item = (badness(result, self.sort), -result.index, result)
            if len(self._heap) < self.worst_n:
                heapq.heappush(self._heap, item)
            elif item[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, item)

    def worst(self) -> list[SentenceResult]:
        """The worst sentences by the sort key, worst first (ties: earlier line first)."""
        return [item[2] for item in sorted(self._heap, key=lambda x: x[:2], reverse=True)]

    def summary(self) -> dict[str, Any]:
        """Corpus metrics (counts summed, Och & Ney) and mean diagnostics per sentence."""
        out: dict[str, Any] = {"sentences": self.sentences, "failed": self.failed}
        if self.scored:
            out.update(self.counts.to_dict())
        n = max(self.sentences, 1)
        means = {key: total / n for key, total in self._sums.items()}
        means["confidence"] = means["cdp"] + means["ap_out"] + means["ap_in"]
        out.update(means)
        return out


def word_level(alignment: Alignment) -> Alignment:
    return alignment if alignment.level == "words" else alignment.to_words()


@dataclass(slots=True)
class _WordMatrix:
    """Word-level attention of a hypothesis and its real (non-``</s>``) words."""

    weights: np.ndarray  # [T_words, S_words]
    src_real: list[bool]
    tgt_real: list[bool]
    eos: list[bool]
    real: np.ndarray  # [T_real, S_real]

    @property
    def shape(self) -> tuple[int, int]:
        return sum(self.src_real), sum(self.tgt_real)


def _word_matrices(alignments: list[Alignment]) -> list[_WordMatrix]:
    """Word-level weights of many hypotheses, merged together as :meth:`Alignment.to_words`
    merges one (bit for bit), without building word-level Alignments."""
    from attnviz.alignment import NON_WORDS, merge_word_weights_many, word_starts

    firsts: list[tuple[list[str], list[str]]] = []
    to_merge: list[tuple[np.ndarray, list[int], list[int]]] = []
    for alignment in alignments:
        src_tokens, tgt_tokens = alignment.src_tokens, alignment.tgt_tokens
        if alignment.level == "words" or not src_tokens or not tgt_tokens:
            firsts.append((src_tokens, tgt_tokens))
            continue
        src_rule, tgt_rule = alignment.word_rules
        src_starts, tgt_starts = (
            word_starts(src_tokens, src_rule),
            word_starts(tgt_tokens, tgt_rule),
        )
        to_merge.append((alignment.weights, src_starts, tgt_starts))
        # a special token is a word alone: a word's first piece says whether it is one
        firsts.append(([src_tokens[k] for k in src_starts], [tgt_tokens[k] for k in tgt_starts]))
    merged = iter(merge_word_weights_many(to_merge))
    out = []
    for alignment, (src_first, tgt_first) in zip(alignments, firsts, strict=True):
        if not src_first or not tgt_first:
            empty = np.zeros((0, 0), np.float32)
            out.append(_WordMatrix(empty, [], [], [], empty))
            continue
        weights = alignment.weights if alignment.level == "words" else next(merged)
        src_real = [token not in NON_WORDS for token in src_first]
        tgt_real = [token not in NON_WORDS for token in tgt_first]
        eos = [token == "</s>" for token in src_first]
        if src_real[-1] or tgt_real[-1] or src_real.count(False) > 1 or tgt_real.count(False) > 1:
            real = weights[np.ix_(np.flatnonzero(tgt_real), np.flatnonzero(src_real))]
        else:
            real = weights[:-1, :-1]  # the usual case: only a final </s> on each side
        out.append(_WordMatrix(weights, src_real, tgt_real, eos, real))
    return out


def _score(
    matrix: _WordMatrix,
    gold: Gold | None,
    method: LinkMethod,
    back: _WordMatrix | None,
    sym: str | None,
    where: str,
) -> tuple[AttentionView, list[Link], LinkCounts | None]:
    n_src, n_tgt = matrix.shape
    predicted = extract_links(matrix.real, method)
    view = AttentionView(
        matrix.weights,
        matrix.src_real,
        matrix.tgt_real,
        matrix.eos,
        predicted if method.name == "argmax" else None,
    )
    if back is not None:
        if sym is None:
            raise UsageError("a reverse direction needs a symmetrisation method (--sym)")
        back_src, back_tgt = back.shape
        if back_src != n_tgt or back_tgt != n_src:
            raise InputError(
                f"{where}: the reverse direction has {back_src}×{back_tgt} words, expected "
                f"{n_tgt}×{n_src} (target × source of the forward direction); are both runs "
                "of the same pairs, decoded on the references?"
            )
        backward = [(j, i) for i, j in extract_links(back.real, method)]
        predicted = sorted(symmetrise(predicted, backward, sym, n_src, n_tgt), key=_target_order)
    counts = None
    if gold is not None:
        check_gold_fits(gold, n_src, n_tgt, where)
        counts = count_links(predicted, gold)
    return view, predicted, counts


def score_alignment(
    alignment: Alignment,
    *,
    index: int = 0,
    gold: Gold | None = None,
    links: str | LinkMethod = "argmax",
    reverse: Alignment | None = None,
    sym: str | None = None,
    where: str | None = None,
) -> SentenceResult:
    """Score one hypothesis at word level (pieces are merged as :meth:`Alignment.to_words`).

    ``reverse`` is the same sentence pair decoded by the target→source model (its source is
    this alignment's translation); ``sym`` symmetrises the two directions. ``where`` names
    the sentence in error messages (default: ``line index+1``).
    """
    method = parse_link_method(links)
    matrices = _word_matrices([alignment] if reverse is None else [alignment, reverse])
    back = matrices[1] if reverse is not None else None
    view, predicted, counts = _score(
        matrices[0], gold, method, back, sym, where or f"line {index + 1}"
    )
    return SentenceResult(index, alignment, predicted, diagnose_many([view])[0], counts)


# -- reading exported alignments ----------------------------------------------------------------


def records_path(path: str | Path) -> Path:
    """The JSONL file of an export folder (``alignments.jsonl``), or the file itself."""
    path = Path(path)
    if str(path) == "-":
        return path  # stdin
    if path.is_dir():
        jsonl = path / "alignments.jsonl"
        if not jsonl.is_file():
            raise InputError(f"{path}: no alignments.jsonl in this folder (an attnviz export?)")
        return jsonl
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    return path


def read_records(path: str | Path) -> Iterator[tuple[int, Alignment | None]]:
    """Stream ``(line index, best hypothesis)`` from exported or ``translate --json`` JSONL.

    Other n-best hypotheses (``rank`` > 0) are skipped; the record of a line that failed
    (it has ``error``) gives ``None``; raw scores are not read (eval does not use them). A
    malformed line raises InputError naming it.
    """
    from attnviz.alignment import Alignment
    from attnviz.export.formats import JSONL_MAX_LINE_BYTES

    jsonl = records_path(path)
    position = 0
    for number, line in enumerate(_lines(jsonl, JSONL_MAX_LINE_BYTES), 1):
        if not line or line.isspace():
            continue
        where = f"{jsonl}:{number}"
        try:
            record = _loads(_without_scores(line))
        except ValueError:
            raise InputError(f"{where}: not a JSON alignment record") from None
        except RecursionError:
            raise InputError(f"{where}: not a JSON alignment record (nested too deeply)") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: not a JSON alignment record")
        if record.get("rank") not in (0, None):
            continue
        index = record.get("id", position)
        position += 1
        if isinstance(index, bool) or not isinstance(index, int):
            raise InputError(f"{where}: bad alignment record: 'id' must be a whole number")
        if "error" in record:
            yield index, None
            continue
        try:
            yield index, Alignment.from_dict(record)
        except (ValueError, TypeError) as err:
            raise InputError(f"{where}: bad alignment record: {err}") from None


def decode_pairs(
    translator: Any,
    path: str | Path,
    *,
    reverse: bool = False,
    batch_size: int | None = None,
    chunk: int = 1024,
) -> Iterator[tuple[int, Alignment | None]]:
    """Force-decode the pairs of a ``source<TAB>reference`` file with ``translator`` (an
    :class:`attnviz.translator.Translator`), ``chunk`` lines at a time.

    ``reverse`` decodes each reference into its source (for a target→source model). Yields
    ``(line index, alignment)``: None for a line the model cannot handle, an empty alignment
    for a blank line; a line without a tab is an InputError naming it.
    """
    from attnviz.alignment import Alignment
    from attnviz.options import DecodeOptions

    options = DecodeOptions() if batch_size is None else DecodeOptions(batch_size=batch_size)
    lines = _lines(path)
    first = 0
    while block := list(itertools.islice(lines, chunk)):
        sources, refs = [], []
        for number, line in enumerate(block, first + 1):
            if not line.strip():
                sources.append("")
                refs.append("")
                continue
            if "\t" not in line:
                raise InputError(f"{path}:{number}: no tab between source and reference")
            source, reference = line.split("\t", 1)
            sources.append(reference if reverse else source)
            refs.append(source if reverse else reference)
        todo = [k for k, source in enumerate(sources) if source.strip()]
        groups = translator.translate_grouped(
            [sources[k] for k in todo],
            refs=[refs[k] for k in todo],
            options=options,
        )
        results: list[Alignment | None] = [Alignment.empty(text) for text in sources]
        for k, group in zip(todo, groups, strict=True):
            results[k] = group[0] if isinstance(group, list) and group else None
        yield from enumerate(results, first)
        first += len(block)


_SCORES_KEYS = ((', "scores": ', ', "'), (',"scores":', ',"'))  # json.dumps, compact JSON


def _loads(text: str) -> Any:
    """JSON ``text`` decoded by orjson (about 3x faster), or by the standard library where
    orjson refuses what it accepts (NaN and Infinity, lone surrogate escapes). orjson reads
    an integer past 64 bits as a float, so such an ``id`` is refused as not whole."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _without_scores(line: str) -> str:
    """The record with its raw scores cut out before decoding: eval never uses them, and
    they are half the numbers of a line. Only a whole value without strings or objects is
    cut (balanced brackets, no quote or brace), so the rest decodes as before."""
    found = [(line.find(key), key, after) for key, after in _SCORES_KEYS]
    start, key, after = max(found)  # the one that is there (-1: neither)
    if start < 0:
        return line
    end = line.find(after, start + len(key))
    value = line[start + len(key) : end]
    if end < 0 or '"' in value or "{" in value or value.count("[") != value.count("]"):
        return line
    return line[:start] + line[end:]


_CHUNK = 256  # sentences scored together (diagnostics run on a stack of them)

Hypotheses = Iterable[tuple[int, "Alignment | None"]]


@dataclass(frozen=True, slots=True)
class Item:
    """One sentence of the inputs, taken in step: hypothesis, reverse direction and gold."""

    count: int  # 1-based position in the inputs
    index: int  # the hypothesis' line index (its ``id``)
    forward: Alignment | None
    reverse: Alignment | None = None
    gold: Gold | None = None


def zip_inputs(
    hypotheses: Hypotheses,
    *,
    gold: Iterable[Gold] | None = None,
    reverse: Hypotheses | None = None,
) -> Iterator[Item]:
    """Walk hypotheses, gold and a reverse direction in step, one :class:`Item` per sentence.

    Either running out early, or gold links left over at the end (blank gold lines are
    fine), is an InputError.
    """
    gold_iter = iter(gold) if gold is not None else None
    reverse_iter = iter(reverse) if reverse is not None else None
    count = 0
    for index, alignment in hypotheses:
        count += 1
        sentence_gold = back = None
        if gold_iter is not None:
            sentence_gold = next(gold_iter, None)
            if sentence_gold is None:
                raise InputError(f"the gold alignments end before hypothesis {count}")
        if reverse_iter is not None:
            other = next(reverse_iter, None)
            if other is None:
                raise InputError(f"the reverse direction ends before hypothesis {count}")
            back = other[1]
        yield Item(count, index, alignment, back, sentence_gold)
    if gold_iter is not None and any(g.possible for g in gold_iter):
        raise InputError(f"the gold alignments have more sentences than the {count} hypotheses")
    if reverse_iter is not None and next(reverse_iter, None) is not None:
        raise InputError(f"the reverse direction has more sentences than the {count} hypotheses")


USES = ("forward", "reverse", "both")


class RowScorer:
    """One way of scoring a stream of :class:`Item`: a row of the summary table.

    ``use``: ``forward`` scores the hypotheses, ``reverse`` the reverse direction alone
    (against the reversed gold), ``both`` the two symmetrised by ``sym``. Results come back
    from :meth:`feed` and :meth:`finish` a chunk at a time, in input order; ``scorer`` holds
    the totals and the worst sentences.
    """

    def __init__(
        self,
        label: str = "",
        *,
        links: str | LinkMethod = "argmax",
        use: str = "forward",
        sym: str | None = None,
        worst: int = 0,
        sort: str = "aer",
    ) -> None:
        if use not in USES:
            raise UsageError(f"use must be one of {', '.join(USES)}, not {use!r}")
        if (use == "both") != (sym is not None):
            raise UsageError("symmetrisation (--sym) needs both directions, and only then")
        if sym is not None and sym not in SYMMETRISATIONS:
            raise UsageError(
                f"unknown symmetrisation {sym!r}; choose from {', '.join(SYMMETRISATIONS)}"
            )
        self.label = label
        self.method = parse_link_method(links)
        self.use = use
        self.sym = sym
        self.scorer = CorpusScorer(worst=worst, sort=sort)
        self._pending: list[tuple[Item, Alignment | None, Alignment | None, Gold | None]] = []

    def feed(self, item: Item) -> list[SentenceResult | None]:
        alignment, back, gold = item.forward, item.reverse, item.gold
        if self.use == "reverse":
            alignment, back, gold = back, None, gold.reversed() if gold is not None else None
        elif self.use == "forward":
            back = None
        if self.use == "both" and back is None:
            alignment = None  # the pair failed one way: it cannot be symmetrised
        self._pending.append((item, alignment, back, gold))
        return self.flush() if len(self._pending) >= _CHUNK else []

    def flush(self) -> list[SentenceResult | None]:
        """Score what was fed so far: word merging and diagnostics run on the whole chunk."""
        scored = [entry for entry in self._pending if entry[1] is not None]
        hypotheses = [alignment for _, alignment, _, _ in scored]
        backs = [back for _, _, back, _ in scored if back is not None]
        matrices = _word_matrices(hypotheses + backs)
        back_matrices = iter(matrices[len(hypotheses) :])
        prepared = []
        for (item, _, back, gold), matrix in zip(scored, matrices, strict=False):
            where = f"sentence {item.count} (line {item.index + 1})"
            back_matrix = next(back_matrices) if back is not None else None
            prepared.append(_score(matrix, gold, self.method, back_matrix, self.sym, where))
        diagnostics = diagnose_many([view for view, _, _ in prepared])
        done = iter(zip(prepared, diagnostics, strict=True))
        results: list[SentenceResult | None] = []
        for item, alignment, _, _ in self._pending:
            if alignment is None:
                self.scorer.failed += 1
                results.append(None)
                continue
            (_, predicted, counts), diagnosis = next(done)
            result = SentenceResult(item.index, alignment, predicted, diagnosis, counts)
            self.scorer.add(result)
            results.append(result)
        self._pending.clear()
        return results

    finish = flush


def evaluate(
    hypotheses: Hypotheses,
    scorer: CorpusScorer,
    *,
    gold: Iterable[Gold] | None = None,
    reverse: Hypotheses | None = None,
    links: str | LinkMethod = "argmax",
    sym: str | None = None,
) -> Iterator[SentenceResult | None]:
    """Score hypotheses into ``scorer``, in order; yields each result (None: a failed line).

    With ``reverse`` and ``sym`` the two directions are symmetrised. Streams in chunks of a
    few hundred sentences; see :func:`zip_inputs` for the checks on the inputs.
    """
    if reverse is not None and sym is None:
        raise UsageError("a reverse direction needs a symmetrisation method (--sym)")
    row = RowScorer(links=links, use="forward" if reverse is None else "both", sym=sym)
    row.scorer = scorer
    for item in zip_inputs(hypotheses, gold=gold, reverse=reverse):
        yield from row.feed(item)
    yield from row.finish()
