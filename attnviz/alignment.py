"""The Alignment value type: what one decoded hypothesis attended to.

numpy only: renderers and exporters work from this type and never import torch.

Shapes: ``T`` target tokens (rows), ``S`` source tokens (columns).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import RecordError, UsageError
from attnviz.options import DEFAULT_VIEW, HeadSelection

if TYPE_CHECKING:
    from attnviz.eval import Diagnostics

WORD_START = "\u2581"  # SentencePiece's "▁": a piece that starts a new word
BPE_JOINER = "@@"  # subword-nmt: a piece ending in "@@" continues into the next one
NON_WORDS = frozenset({"</s>", "<s>", "<pad>"})  # left out of hard links; <unk> is a word
LEVELS = ("pieces", "words")
#: How pieces group into words: ``sentencepiece`` (a piece starting with ▁ opens a word),
#: ``bpe`` (a piece ending in @@ joins the next one), ``whitespace`` (every token is a word).
WORD_RULES = ("sentencepiece", "bpe", "whitespace")
DEFAULT_WORD_RULES = ("sentencepiece", "sentencepiece")


def word_starts(tokens: list[str], rule: str = "sentencepiece") -> list[int]:
    """Index of the first piece of each word under ``rule`` (see :func:`word_groups`).

    >>> word_starts(["▁the", "▁hou", "se", "▁caf", "<unk>", "</s>"])
    [0, 1, 3, 5]
    """
    if rule not in WORD_RULES:
        raise ValueError(f"word rule must be one of {', '.join(WORD_RULES)}, not {rule!r}")
    if rule == "whitespace":
        return list(range(len(tokens)))
    # a special token, and the token after one, always open a word; so does the first
    starts = []
    previous = None
    for index, token in enumerate(tokens):
        if (
            previous is None
            or token in NON_WORDS
            or previous in NON_WORDS
            or (
                token[:1] == WORD_START
                if rule == "sentencepiece"
                else not previous.endswith(BPE_JOINER)
            )
        ):
            starts.append(index)
        previous = token
    return starts


def word_groups(tokens: list[str], rule: str = "sentencepiece") -> list[list[int]]:
    """Group piece indices into words by ``rule`` (see WORD_RULES); ``</s>`` stands alone.

    ``<unk>`` continues the current word, as the piece it replaces would have.

    >>> word_groups(["▁the", "▁hou", "se", "▁caf", "<unk>", "</s>"])
    [[0], [1, 2], [3, 4], [5]]
    >>> word_groups(["the", "hou@@", "se", "caf@@", "<unk>", "</s>"], "bpe")
    [[0], [1, 2], [3, 4], [5]]
    """
    starts = word_starts(tokens, rule)
    return [list(range(a, b)) for a, b in zip(starts, [*starts[1:], len(tokens)], strict=True)]


# numpy sums fewer than this many items one after the other (pairwise summation beyond)
_SEQUENTIAL_SUM = 8


def _group_sums(matrix: np.ndarray, starts: list[int], n: int, axis: int) -> np.ndarray:
    """Sum each group of consecutive columns (axis=1) or rows (axis=0) of a 2-D matrix.

    Groups start at ``starts`` and end where the next begins (the last at ``n``). Columns
    come out bit-identical to ``matrix[:, group].sum(axis=1)`` per group, rows to
    ``matrix[group].sum(axis=0)`` (for input without negative zeros, such as the column sums),
    only vectorised: items are added in order, as numpy does, with groups padded by an exact
    0.0 to the longest; column groups numpy would sum pairwise (8 items or more) are left to
    numpy.
    """
    lengths = [end - begin for begin, end in zip(starts, [*starts[1:], n], strict=True)]
    longest = max(lengths, default=1)
    # index[o, g]: item o of group g, or n (a zero row/column) past the group's end
    index = np.array(
        [[b + o if o < size else n for b, size in zip(starts, lengths, strict=True)]
         for o in range(longest)],
        np.intp,
    )  # fmt: skip
    if axis == 1:
        padded = np.concatenate([matrix, np.zeros((matrix.shape[0], 1), matrix.dtype)], axis=1)
        items = np.take(padded, index, axis=1)  # [R, L, G]
        out = np.zeros((matrix.shape[0], len(starts)), matrix.dtype)  # numpy sums from 0 too
        for offset in range(longest):
            out += items[:, offset]
        for group, size in enumerate(lengths):
            if size >= _SEQUENTIAL_SUM:
                columns = list(range(starts[group], starts[group] + size))
                out[:, group] = matrix[:, columns].sum(axis=1)
        return out
    padded = np.concatenate([matrix, np.zeros((1, matrix.shape[1]), matrix.dtype)], axis=0)
    items = np.take(padded, index, axis=0)  # [L, G, C]
    out = items[0].copy()  # numpy adds rows in order, starting from the first
    for offset in range(1, longest):
        out += items[offset]
    return out


def merge_word_weights(
    weights: np.ndarray, src_starts: list[int], tgt_starts: list[int]
) -> np.ndarray:
    """[T, S] piece attention -> [T_words, S_words]: source pieces summed, target pieces
    averaged, rows renormalised (the weights of :meth:`Alignment.to_words`).

    ``src_starts`` / ``tgt_starts``: the first piece of each word (:func:`word_starts`).
    """
    return merge_word_weights_many([(weights, src_starts, tgt_starts)])[0]


_STACK_CELLS = 1 << 19  # padded cells per stack of matrices merged together


def merge_word_weights_many(
    items: list[tuple[np.ndarray, list[int], list[int]]],
) -> list[np.ndarray]:
    """:func:`merge_word_weights` of many matrices, bit for bit the same, computed on padded
    stacks of similar shapes (a few numpy calls per stack instead of per matrix).

    Sums run in numpy's order: source pieces one after the other from 0 (numpy's own order
    below 8 items; a word of 8 pieces or more is summed by numpy itself), target rows one
    after the other; the padding adds exact zeros. Row totals are numpy's, per matrix.
    """
    out: list[np.ndarray | None] = [None] * len(items)
    shapes = [weights.shape for weights, _, _ in items]
    for batch in shape_batches(shapes, _STACK_CELLS):
        merged = _merge_stack([items[k] for k in batch])
        for k, matrix in zip(batch, merged, strict=True):
            out[k] = matrix
    return out  # type: ignore[return-value]


def shape_batches(shapes: list[tuple[int, int]], cells: int) -> list[list[int]]:
    """Indices grouped so that each group, padded to its largest shape, stays under ``cells``
    (a group of one may exceed it); similar shapes go together."""
    order = sorted(range(len(shapes)), key=lambda k: shapes[k])
    batches: list[list[int]] = []
    rows = columns = 0
    for k in order:
        t, s = shapes[k]
        if batches and (len(batches[-1]) + 1) * max(rows, t) * max(columns, s) <= cells:
            batches[-1].append(k)
            rows, columns = max(rows, t), max(columns, s)
        else:
            batches.append([k])
            rows, columns = t, s
    return batches


def _lengths(starts: list[int], n: int) -> list[int]:
    return [end - begin for begin, end in zip(starts, [*starts[1:], n], strict=True)]


def _padded_index(
    starts: list[list[int]], lengths: list[list[int]], width: int, depth: int, pad: int
) -> np.ndarray:
    """[B, depth, width] index: item o of word g of matrix b, ``pad`` past the word's end or
    past the last word."""
    size = len(starts)
    index = np.full((size, depth, width), pad, np.intp)
    counts = [len(row) for row in starts]
    first = np.fromiter(itertools.chain.from_iterable(starts), np.intp)  # [G_all]
    length = np.fromiter(itertools.chain.from_iterable(lengths), np.intp)
    matrix = np.repeat(np.arange(size), counts)  # [G_all] which matrix
    word = np.arange(len(first)) - np.repeat(np.cumsum(counts) - counts, counts)
    for offset in range(depth):
        inside = length > offset
        index[matrix[inside], offset, word[inside]] = first[inside] + offset
    return index


def _merge_stack(items: list[tuple[np.ndarray, list[int], list[int]]]) -> list[np.ndarray]:
    size = len(items)
    dtype = np.result_type(*(weights.dtype for weights, _, _ in items))
    shapes = [weights.shape for weights, _, _ in items]
    n_tgt = max(t for t, _ in shapes)
    n_src = max(s for _, s in shapes)
    src_lengths = [_lengths(src, s) for (_, src, _), (_, s) in zip(items, shapes, strict=True)]
    tgt_lengths = [_lengths(tgt, t) for (_, _, tgt), (t, _) in zip(items, shapes, strict=True)]
    src_words = max(len(lengths) for lengths in src_lengths)
    tgt_words = max(len(lengths) for lengths in tgt_lengths)
    src_depth = max(max(lengths) for lengths in src_lengths)
    tgt_depth = max(max(lengths) for lengths in tgt_lengths)
    # one zero row and one zero column past the largest matrix: what padding points at
    stack = np.zeros((size, n_tgt + 1, n_src + 1), dtype)  # [B, T+1, S+1]
    for b, (weights, _, _) in enumerate(items):
        stack[b, : shapes[b][0], : shapes[b][1]] = weights
    src_starts = [src for _, src, _ in items]
    src_index = _padded_index(src_starts, src_lengths, src_words, src_depth, n_src)
    words = np.zeros((size, n_tgt + 1, src_words), dtype)  # [B, T+1, S_words]; sums from 0
    for offset in range(src_depth):
        words += np.take_along_axis(stack, src_index[:, offset, None, :], axis=2)
    for b, lengths in enumerate(src_lengths):
        for g, length in enumerate(lengths):
            if length >= _SEQUENTIAL_SUM:  # numpy sums these pairwise: let it
                weights, src, _ = items[b]
                columns = list(range(src[g], src[g] + length))
                words[b, : shapes[b][0], g] = weights[:, columns].sum(axis=1)
    tgt_starts = [tgt for _, _, tgt in items]
    tgt_index = _padded_index(tgt_starts, tgt_lengths, tgt_words, tgt_depth, n_tgt)
    merged = np.take_along_axis(words, tgt_index[:, 0, :, None], axis=1)  # [B, T_words, S_words]
    for offset in range(1, tgt_depth):  # numpy adds rows in order, from the first
        merged += np.take_along_axis(words, tgt_index[:, offset, :, None], axis=1)
    counts = [lengths + [1] * (tgt_words - len(lengths)) for lengths in tgt_lengths]
    merged /= np.array(counts, dtype)[:, :, None]
    # row totals as numpy sums each row alone: pairwise from 8 words on, so a row is summed
    # over exactly its own words, never over padding
    totals = np.zeros((size, tgt_words, 1), dtype)
    widths = [len(lengths) for lengths in src_lengths]
    for width in set(widths):
        chosen = [b for b, w in enumerate(widths) if w == width]
        totals[chosen, :, 0] = np.add.reduce(merged[chosen, :, :width], axis=2)
    merged = np.divide(merged, totals, out=np.zeros_like(merged), where=totals > 0)
    return [
        merged[b, : len(tgt_lengths[b]), : widths[b]]  # [T_words, S_words]
        for b in range(size)
    ]


def _join_pieces(tokens: list[str], rule: str = "sentencepiece") -> str:
    if rule == "bpe":
        return "".join(t[: -len(BPE_JOINER)] if t.endswith(BPE_JOINER) else t for t in tokens)
    if rule == "whitespace":
        return " ".join(tokens)
    return "".join(tokens).replace(WORD_START, "")


def select_view(stack: np.ndarray, view: HeadSelection) -> np.ndarray:
    """The ``[T, S]`` matrix that ``view`` picks from an ``[L, H, T, S]`` stack: one head, or
    the float32 mean over the chosen layer's heads (one head: that head itself)."""
    layer, head = view.resolve(stack.shape[0], stack.shape[1])
    if head is not None:
        return stack[layer, head]
    if stack.shape[1] == 1:
        return stack[layer, 0]
    return stack[layer].mean(axis=0, dtype=np.float32)  # [H, T, S] -> [T, S]


def _stack(values: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """An ``[L, H, T, S]`` float32 stack whose last two axes are ``shape``."""
    stack = np.asarray(values, dtype=np.float32)
    if stack.ndim != 4 or stack.shape[2:] != shape or 0 in stack.shape[:2]:
        raise ValueError(
            f"{name} {stack.shape} must be [L, H, T, S] with [T, S] = {shape} and L, H >= 1"
        )
    return stack


@dataclass(frozen=True, eq=False)
class Alignment:
    """One hypothesis with its attention.

    weights: [T, S] attention weights of the selected view, each row sums to 1 over real
    source tokens.
    scores: [T, S] raw pre-softmax energies of the same view.
    token_logprobs: [T] log-probability of each target token.
    word_rules: how source and target pieces group into words (see WORD_RULES), from the
    model's tokenizers.
    cross_attention, cross_scores: [L, H, T, S] weights and raw scores of every decoder layer
    and head (bottom layer first), or None for a model with one matrix (every RNN): then
    ``weights``/``scores`` are the whole stack. ``view``: which of them ``weights`` and
    ``scores`` show (see :meth:`from_stack` and :meth:`with_view`).
    """

    source: str
    translation: str
    src_tokens: list[str]
    tgt_tokens: list[str]
    weights: np.ndarray
    scores: np.ndarray
    token_logprobs: np.ndarray
    score: float
    rank: int = 0
    level: str = "pieces"
    meta: dict[str, Any] = field(default_factory=dict)
    word_rules: tuple[str, str] = DEFAULT_WORD_RULES
    cross_attention: np.ndarray | None = None
    cross_scores: np.ndarray | None = None
    view: HeadSelection = DEFAULT_VIEW

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float32)
        scores = np.asarray(self.scores, dtype=np.float32)
        logprobs = np.asarray(self.token_logprobs, dtype=np.float32)
        shape = (len(self.tgt_tokens), len(self.src_tokens))
        if weights.shape != shape or scores.shape != shape:
            raise ValueError(
                f"weights {weights.shape} and scores {scores.shape} must both be "
                f"[T, S] = {shape} for {shape[0]} target and {shape[1]} source tokens"
            )
        if not isinstance(self.view, HeadSelection):
            raise ValueError(f"view must be a HeadSelection, not {type(self.view).__name__}")
        stacks = {}
        if (self.cross_attention is None) != (self.cross_scores is None):
            raise ValueError("cross_attention and cross_scores come together, or neither")
        if self.cross_attention is not None:
            stacks["cross_attention"] = _stack(self.cross_attention, shape, "cross_attention")
            stacks["cross_scores"] = _stack(self.cross_scores, shape, "cross_scores")
            if stacks["cross_scores"].shape != stacks["cross_attention"].shape:
                raise ValueError("cross_attention and cross_scores must have the same shape")
        self.view.resolve(*self.stack_shape_of(stacks.get("cross_attention")))
        if logprobs.shape != (shape[0],):
            raise ValueError(f"token_logprobs {logprobs.shape} must be [T] = ({shape[0]},)")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        rules = tuple(self.word_rules)
        if len(rules) != 2 or any(rule not in WORD_RULES for rule in rules):
            raise ValueError(
                f"word_rules must be two of {', '.join(WORD_RULES)}, not {self.word_rules!r}"
            )
        object.__setattr__(self, "word_rules", rules)
        # read-only views: links and Pharaoh text are cached, so the values must not change
        # under them (the caller's own arrays stay writable)
        arrays = {"weights": weights, "scores": scores, "token_logprobs": logprobs, **stacks}
        for name, array in arrays.items():
            view = array.view()
            view.flags.writeable = False
            object.__setattr__(self, name, view)

    @staticmethod
    def stack_shape_of(cross_attention: np.ndarray | None) -> tuple[int, int]:
        return (1, 1) if cross_attention is None else cross_attention.shape[:2]

    @classmethod
    def from_stack(
        cls,
        cross_attention: np.ndarray,
        cross_scores: np.ndarray,
        *,
        view: HeadSelection = DEFAULT_VIEW,
        **fields: Any,
    ) -> Alignment:
        """An alignment from the ``[L, H, T, S]`` weights and scores of every layer and head;
        ``weights``/``scores`` become the matrices ``view`` picks. A stack of one matrix is
        kept as ``weights``/``scores`` alone (cross_attention None)."""
        shape = (len(fields["tgt_tokens"]), len(fields["src_tokens"]))
        weights = _stack(cross_attention, shape, "cross_attention")
        scores = _stack(cross_scores, shape, "cross_scores")
        if weights.shape[:2] == (1, 1):
            view.resolve(1, 1)
            return cls(weights=weights[0, 0], scores=scores[0, 0], view=view, **fields)
        return cls(
            weights=select_view(weights, view),
            scores=select_view(scores, view),
            cross_attention=weights,
            cross_scores=scores,
            view=view,
            **fields,
        )

    @property
    def stack_shape(self) -> tuple[int, int]:
        """(L, H): decoder layers and heads per layer of the attention stack."""
        return self.stack_shape_of(self.cross_attention)

    @property
    def attention_stack(self) -> np.ndarray:
        """[L, H, T, S]: the weights of every layer and head ([1, 1, T, S] for an RNN)."""
        if self.cross_attention is None:
            return self.weights[None, None]
        return self.cross_attention

    @property
    def score_stack(self) -> np.ndarray:
        """[L, H, T, S]: the raw scores of every layer and head."""
        if self.cross_scores is None:
            return self.scores[None, None]
        return self.cross_scores

    def with_view(self, view: HeadSelection) -> Alignment:
        """The same hypothesis with ``weights``/``scores`` showing ``view``."""
        if view == self.view:
            return self
        if self.cross_attention is None:
            view.resolve(1, 1)
            return dataclasses.replace(self, view=view)
        return dataclasses.replace(
            self,
            weights=select_view(self.cross_attention, view),
            scores=select_view(self.cross_scores, view),
            view=view,
        )

    @classmethod
    def empty(
        cls, source: str, translation: str = "", *, score: float = 0.0, **fields: Any
    ) -> Alignment:
        """An alignment with no tokens, e.g. for a blank input line."""
        return cls(
            source=source,
            translation=translation,
            src_tokens=[],
            tgt_tokens=[],
            weights=np.zeros((0, 0), np.float32),
            scores=np.zeros((0, 0), np.float32),
            token_logprobs=np.zeros(0, np.float32),
            score=score,
            **fields,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(T, S)."""
        return self.weights.shape  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alignment):
            return NotImplemented
        return (
            self.source == other.source
            and self.translation == other.translation
            and self.src_tokens == other.src_tokens
            and self.tgt_tokens == other.tgt_tokens
            and np.array_equal(self.weights, other.weights)
            and np.array_equal(self.scores, other.scores)
            and np.array_equal(self.token_logprobs, other.token_logprobs)
            and (self.score == other.score or (math.isnan(self.score) and math.isnan(other.score)))
            and self.rank == other.rank
            and self.level == other.level
            and self.meta == other.meta
            and self.word_rules == other.word_rules
            and self.view == other.view
            and _same_stack(self.cross_attention, other.cross_attention)
            and _same_stack(self.cross_scores, other.cross_scores)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- hard links -------------------------------------------------------------------------

    def hard_links(self, method: str = "argmax") -> list[tuple[int, int]]:
        """Hard links as (source index, target index), Pharaoh order.

        ``method`` (see :func:`attnviz.eval.extract_links`): ``argmax`` over the source for
        each target token (the default, in target order), ``argmax-target``, ``both`` or
        ``threshold:X``. Special tokens (``</s>``) are left out on both sides, so indices
        count the real tokens of the source and of the translation, 0-based.
        """
        if method == "argmax":
            return [(i, j) for j, i in enumerate(self._argmax.tolist())]
        from attnviz.eval import extract_links

        return extract_links(self._real_weights, method)

    @cached_property
    def _real_weights(self) -> np.ndarray:
        """[T real, S real]: the weights among tokens that are not special."""
        return self.weights[_real(self.tgt_tokens)][:, _real(self.src_tokens)]

    @cached_property
    def _argmax(self) -> np.ndarray:
        """[T real]: the real source token each real target token links to, computed once."""
        rows = self._real_weights
        if 0 in rows.shape:
            return np.zeros(0, np.int64)
        return rows.argmax(axis=1)

    def pharaoh(self, method: str = "argmax") -> str:
        """Hard links as a Pharaoh line: ``i-j`` pairs, source index first, sorted."""
        if method == "argmax":
            return self._pharaoh
        return " ".join(f"{i}-{j}" for i, j in sorted(self.hard_links(method)))

    @cached_property
    def _pharaoh(self) -> str:
        source = self._argmax
        target = np.argsort(source, kind="stable")  # by source index, then target index
        pairs = zip(source[target].tolist(), target.tolist(), strict=True)
        return " ".join(f"{i}-{j}" for i, j in pairs)

    def diagnostics(self) -> Diagnostics:
        """Attention diagnostics at this alignment's level; see :func:`attnviz.eval.diagnose`."""
        from attnviz.eval import diagnose

        return diagnose(self.weights, self.src_tokens, self.tgt_tokens)

    # -- word level -------------------------------------------------------------------------

    def to_words(self) -> Alignment:
        """Merge subword pieces into words, by each side's word rule.

        Source pieces of a word are summed (weights) and target pieces averaged, then rows
        renormalised; raw scores are averaged on both sides. Log-probs of a target word's
        pieces are added.
        """
        if self.level == "words":
            return self
        if not self.src_tokens or not self.tgt_tokens:
            return Alignment.empty(
                self.source,
                self.translation,
                score=self.score,
                rank=self.rank,
                level="words",
                meta=dict(self.meta),
                word_rules=self.word_rules,
            )
        src_rule, tgt_rule = self.word_rules
        src_starts = word_starts(self.src_tokens, src_rule)
        tgt_starts = word_starts(self.tgt_tokens, tgt_rule)
        n_tgt = self.shape[0]
        stacks: dict[str, np.ndarray] = {}
        if self.cross_attention is None:
            weights = merge_word_weights(self.weights, src_starts, tgt_starts)  # [Tw, Sw]
            scores = _word_scores(self.scores, src_starts, tgt_starts)
        else:  # every layer and head merged, then the view taken of the merged stack
            stacks = _word_stacks(self.cross_attention, self.cross_scores, src_starts, tgt_starts)
            weights = select_view(stacks["cross_attention"], self.view)
            scores = select_view(stacks["cross_scores"], self.view)
        logprobs = _group_sums(self.token_logprobs[None, :], tgt_starts, n_tgt, axis=1)[0]
        src_groups = word_groups(self.src_tokens, src_rule)
        tgt_groups = word_groups(self.tgt_tokens, tgt_rule)
        meta = dict(self.meta)
        if "topk" in meta:
            meta["topk"] = _word_topk(meta["topk"], self.tgt_tokens, tgt_groups)
        return Alignment(
            source=self.source,
            translation=self.translation,
            src_tokens=[
                _join_pieces([self.src_tokens[i] for i in g], src_rule) for g in src_groups
            ],
            tgt_tokens=[
                _join_pieces([self.tgt_tokens[i] for i in g], tgt_rule) for g in tgt_groups
            ],
            weights=weights,
            scores=scores,
            token_logprobs=logprobs,
            score=self.score,
            rank=self.rank,
            level="words",
            meta=meta,
            word_rules=self.word_rules,
            view=self.view,
            **stacks,
        )

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self, *, links: str = "argmax", diagnostics: bool = False) -> dict[str, Any]:
        """A JSON-ready dict. Float32 values go through Python floats, which is lossless.

        ``alignment`` holds the hard links by ``links`` (see :meth:`hard_links`); with
        ``diagnostics`` the record also carries :meth:`diagnostics` (ignored when read back).
        ``word_rules`` is written only when it is not SentencePiece's on both sides.
        """
        return self.json_record(arrays=False, links=links, diagnostics=diagnostics)

    def json_record(
        self, arrays: bool = True, *, links: str = "argmax", diagnostics: bool = False
    ) -> dict[str, Any]:
        """The record of :meth:`to_dict`; with ``arrays`` the matrices stay numpy float32
        arrays, for :func:`json_bytes`, which writes each value in its shortest float32 form."""
        convert = np.ascontiguousarray if arrays else np.ndarray.tolist
        record: dict[str, Any] = {
            "source": self.source,
            "translation": self.translation,
            "src_tokens": list(self.src_tokens),
            "tgt_tokens": list(self.tgt_tokens),
            "attention": convert(self.weights),
            "scores": convert(self.scores),
            "token_logprobs": convert(self.token_logprobs),
            "alignment": self.pharaoh(links),
            "score": _json_float(self.score),
            "rank": self.rank,
            "level": self.level,
        }
        if diagnostics:
            record["diagnostics"] = self.diagnostics().to_dict()
        if self.word_rules != DEFAULT_WORD_RULES:
            record["word_rules"] = list(self.word_rules)
        for key, value in self.meta.items():
            record.setdefault(key, value)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Alignment:
        """Inverse of :meth:`to_dict`. Raises RecordError (a ValueError) naming what is missing
        or wrong, UsageError for a record that is not a dict."""
        if not isinstance(record, dict):
            raise UsageError(f"an alignment record must be a dict, not {type(record).__name__}")
        try:
            return cls._from_record(record)
        except RecordError:
            raise
        except (ValueError, TypeError, OverflowError) as err:
            raise RecordError(str(err)) from err

    @classmethod
    def _from_record(cls, record: dict[str, Any]) -> Alignment:
        known = {
            "source",
            "translation",
            "src_tokens",
            "tgt_tokens",
            "attention",
            "scores",
            "token_logprobs",
            "alignment",
            "score",
            "rank",
            "level",
            "diagnostics",
            "word_rules",
        }
        required = ["source", "translation", "src_tokens", "tgt_tokens", "attention"]
        missing = [key for key in required if key not in record]
        if missing:
            raise ValueError(f"alignment record lacks {', '.join(missing)}")
        src_tokens = [str(t) for t in record["src_tokens"]]
        tgt_tokens = [str(t) for t in record["tgt_tokens"]]
        shape = (len(tgt_tokens), len(src_tokens))
        weights = _matrix(record["attention"], shape, "attention")
        scores = (
            _matrix(record["scores"], shape, "scores")
            if record.get("scores") is not None
            else np.zeros(shape, np.float32)
        )
        logprobs = record.get("token_logprobs")
        return cls(
            source=str(record["source"]),
            translation=str(record["translation"]),
            src_tokens=src_tokens,
            tgt_tokens=tgt_tokens,
            weights=weights,
            scores=scores,
            token_logprobs=(
                _vector(logprobs, "token_logprobs")
                if logprobs is not None
                else np.zeros(shape[0], np.float32)
            ),
            score=_from_json_float(record.get("score", 0.0)),
            rank=_rank(record.get("rank", 0)),
            level=str(record.get("level", "pieces")),
            meta={k: v for k, v in record.items() if k not in known},
            word_rules=_word_rules(record.get("word_rules", DEFAULT_WORD_RULES)),
        )

    def to_json(self, *, links: str = "argmax", diagnostics: bool = False) -> str:
        """One JSON line; hidden characters (controls, bidi overrides) as ``\\u`` escapes."""
        from attnviz.text import json_safe

        record = self.json_record(links=links, diagnostics=diagnostics)
        return json_safe(json_bytes(record).decode("utf-8"))

    @classmethod
    def from_json(cls, line: str) -> Alignment:
        """Inverse of :meth:`to_json`; errors as for :meth:`from_dict`."""
        if not isinstance(line, str | bytes | bytearray):
            raise UsageError(f"an alignment record must be text (JSON), not {type(line).__name__}")
        try:
            record = json.loads(line)
        except RecursionError:
            raise RecordError("not a JSON alignment record (nested too deeply)") from None
        except ValueError as err:  # JSONDecodeError, or an integer too long to convert
            reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err).split(":")[0]
            raise RecordError(f"not JSON ({reason})") from err
        if not isinstance(record, dict):
            kind = type(record).__name__
            raise RecordError(f"an alignment record must be a dict (a JSON object), not {kind}")
        return cls.from_dict(record)


def _word_scores(scores: np.ndarray, src_starts: list[int], tgt_starts: list[int]) -> np.ndarray:
    """[T, S] piece scores -> [T_words, S_words]: averaged over each word's pieces, both sides."""
    n_tgt, n_src = scores.shape
    src_counts = np.diff(np.asarray(src_starts), append=n_src).astype(np.float32)
    tgt_counts = np.diff(np.asarray(tgt_starts), append=n_tgt).astype(np.float32)
    scores = _group_sums(scores, src_starts, n_src, axis=1) / src_counts  # [T, Sw]
    return _group_sums(scores, tgt_starts, n_tgt, axis=0) / tgt_counts[:, None]  # [Tw, Sw]


def _word_stacks(
    weights: np.ndarray, scores: np.ndarray, src_starts: list[int], tgt_starts: list[int]
) -> dict[str, np.ndarray]:
    """[L, H, T, S] piece stacks -> word stacks [L, H, T_words, S_words], each matrix merged
    as :meth:`Alignment.to_words` merges one."""
    layers, heads = weights.shape[:2]
    flat = weights.reshape(layers * heads, *weights.shape[2:])  # [L*H, T, S]
    merged = merge_word_weights_many([(matrix, src_starts, tgt_starts) for matrix in flat])
    merged_scores = [
        _word_scores(matrix, src_starts, tgt_starts) for matrix in scores.reshape(flat.shape)
    ]
    shape = (layers, heads, *merged[0].shape)
    return {
        "cross_attention": np.stack(merged).reshape(shape),
        "cross_scores": np.stack(merged_scores).reshape(shape),
    }


def _same_stack(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(a, b)


def _word_rules(value: Any) -> tuple[str, str]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError("word_rules must be a list of two word rules")
    return (str(value[0]), str(value[1]))


def json_bytes(value: Any) -> bytes:
    """UTF-8 JSON of ``value``, which may hold numpy arrays: float32 values are written in
    their shortest form that reads back to the same float32 (``0.1``, not
    ``0.10000000149011612``), non-finite values as ``null`` (read back as NaN)."""
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:  # e.g. text orjson refuses (lone surrogates)
        # escaped, so that the file stays valid UTF-8; non-finite numbers as null, as above
        return json.dumps(_finite(value), ensure_ascii=True, allow_nan=False).encode("ascii")


def _finite(value: Any) -> Any:
    """``value`` as plain JSON data with every non-finite number replaced by None."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _real(tokens: list[str]) -> slice | np.ndarray:
    """The positions of tokens that are not special: a slice when those are at the end."""
    special = [index for index, token in enumerate(tokens) if token in NON_WORDS]
    count = len(tokens)
    if special == list(range(count - len(special), count)):
        return slice(0, count - len(special))
    keep = np.ones(count, dtype=bool)
    keep[special] = False
    return keep


def _word_topk(topk: Any, tokens: list[str], groups: list[list[int]]) -> Any:
    """Per word, the alternatives its first piece beat (the emitted piece left out).

    ``topk`` holds, per piece, ``[token, probability]`` pairs; anything else is kept as is.
    """
    well_formed = isinstance(topk, list) and len(topk) == len(tokens)
    well_formed = well_formed and all(
        isinstance(step, list)
        and all(isinstance(pair, list | tuple) and len(pair) == 2 for pair in step)
        for step in topk
    )
    if not well_formed:
        return topk
    return [[pair for pair in topk[g[0]] if pair[0] != tokens[g[0]]] for g in groups]


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _rank(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecordError(f"rank must be a whole number from 0, not {value!r:.40}")
    return value


def _vector(values: Any, name: str) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float32)
    except TypeError:  # null entries: values that were not finite when written
        return _with_nan(values, name)


def _with_nan(rows: Any, name: str) -> np.ndarray:
    try:
        values = np.array(rows, dtype=object)
        with np.errstate(over="ignore"):
            return np.where(values == None, np.nan, values).astype(np.float32)  # noqa: E711
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} is not a numeric T×S matrix") from err


def _matrix(rows: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, np.float32)
    try:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, shown as such
            matrix = np.asarray(rows, dtype=np.float32)
    except TypeError:  # null cells: values that were not finite when written
        matrix = _with_nan(rows, name)
    except ValueError as err:
        raise ValueError(f"{name} is not a numeric T×S matrix") from err
    if matrix.shape != shape:
        raise ValueError(f"{name} has shape {matrix.shape}, expected {shape} from the tokens")
    return matrix


@dataclass(frozen=True)
class SentenceError:
    """A sentence that could not be decoded: its 0-based position, its text and why."""

    index: int
    source: str
    message: str
