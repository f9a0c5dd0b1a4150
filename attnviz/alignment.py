"""The Alignment value type: what one decoded hypothesis attended to.

numpy only: renderers and exporters work from this type and never import torch.

Shapes: ``T`` target tokens (rows), ``S`` source tokens (columns).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from attnviz.eval import Diagnostics

WORD_START = "\u2581"  # SentencePiece's "▁": a piece that starts a new word
NON_WORDS = frozenset({"</s>", "<s>", "<pad>"})  # left out of hard links; <unk> is a word
LEVELS = ("pieces", "words")


def word_starts(tokens: list[str]) -> list[int]:
    """Index of the first piece of each word (see :func:`word_groups`).

    >>> word_starts(["▁the", "▁hou", "se", "▁caf", "<unk>", "</s>"])
    [0, 1, 3, 5]
    """
    special = [token in NON_WORDS for token in tokens]
    return [
        index
        for index, token in enumerate(tokens)
        if index == 0 or special[index] or special[index - 1] or token.startswith(WORD_START)
    ]


def word_groups(tokens: list[str]) -> list[list[int]]:
    """Group piece indices into words: a piece starting with ▁ opens one; ``</s>`` stands alone.

    ``<unk>`` continues the current word, as the piece it replaces would have.

    >>> word_groups(["▁the", "▁hou", "se", "▁caf", "<unk>", "</s>"])
    [[0], [1, 2], [3, 4], [5]]
    """
    starts = word_starts(tokens)
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
    averaged, rows renormalised (the weights of :meth:`Alignment.to_words`)."""
    n_tgt, n_src = weights.shape
    merged = _group_sums(weights, src_starts, n_src, axis=1)  # [T, S_words]
    ends = [*tgt_starts[1:], n_tgt]
    counts = np.array([[b - a] for a, b in zip(tgt_starts, ends, strict=True)], weights.dtype)
    merged = _group_sums(merged, tgt_starts, n_tgt, axis=0) / counts  # [T_words, S_words]
    totals = np.add.reduce(merged, axis=1)[:, None]  # [T_words, 1], as merged.sum(axis=1)
    if (totals > 0).all():
        return merged / totals
    return np.divide(merged, totals, out=np.zeros_like(merged), where=totals > 0)


def _join_pieces(tokens: list[str]) -> str:
    return "".join(tokens).replace(WORD_START, "")


@dataclass(frozen=True, eq=False)
class Alignment:
    """One hypothesis with its attention.

    weights: [T, S] attention weights, each row sums to 1 over real source tokens.
    scores: [T, S] raw pre-softmax energies.
    token_logprobs: [T] log-probability of each target token.
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
        if logprobs.shape != (shape[0],):
            raise ValueError(f"token_logprobs {logprobs.shape} must be [T] = ({shape[0]},)")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "token_logprobs", logprobs)

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
        from attnviz.eval import extract_links

        src_real = [i for i, tok in enumerate(self.src_tokens) if tok not in NON_WORDS]
        tgt_real = [j for j, tok in enumerate(self.tgt_tokens) if tok not in NON_WORDS]
        return extract_links(self.weights[np.ix_(tgt_real, src_real)], method)

    def pharaoh(self, method: str = "argmax") -> str:
        """Hard links as a Pharaoh line: ``i-j`` pairs, source index first, sorted."""
        return " ".join(f"{i}-{j}" for i, j in sorted(self.hard_links(method)))

    def diagnostics(self) -> Diagnostics:
        """Attention diagnostics at this alignment's level; see :func:`attnviz.eval.diagnose`."""
        from attnviz.eval import diagnose

        return diagnose(self.weights, self.src_tokens, self.tgt_tokens)

    # -- word level -------------------------------------------------------------------------

    def to_words(self) -> Alignment:
        """Merge SentencePiece pieces into words.

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
            )
        src_starts, tgt_starts = word_starts(self.src_tokens), word_starts(self.tgt_tokens)
        n_tgt, n_src = self.shape
        weights = merge_word_weights(self.weights, src_starts, tgt_starts)  # [Tw, Sw]
        src_counts = np.diff(np.asarray(src_starts), append=n_src).astype(np.float32)
        tgt_counts = np.diff(np.asarray(tgt_starts), append=n_tgt).astype(np.float32)
        scores = _group_sums(self.scores, src_starts, n_src, axis=1) / src_counts  # [T, Sw]
        scores = _group_sums(scores, tgt_starts, n_tgt, axis=0) / tgt_counts[:, None]
        logprobs = _group_sums(self.token_logprobs[None, :], tgt_starts, n_tgt, axis=1)[0]
        src_groups = word_groups(self.src_tokens)
        tgt_groups = word_groups(self.tgt_tokens)
        return Alignment(
            source=self.source,
            translation=self.translation,
            src_tokens=[_join_pieces([self.src_tokens[i] for i in g]) for g in src_groups],
            tgt_tokens=[_join_pieces([self.tgt_tokens[i] for i in g]) for g in tgt_groups],
            weights=weights,
            scores=scores,
            token_logprobs=logprobs,
            score=self.score,
            rank=self.rank,
            level="words",
            meta=dict(self.meta),
        )

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self, *, links: str = "argmax", diagnostics: bool = False) -> dict[str, Any]:
        """A JSON-ready dict. Float32 values go through Python floats, which is lossless.

        ``alignment`` holds the hard links by ``links`` (see :meth:`hard_links`); with
        ``diagnostics`` the record also carries :meth:`diagnostics` (ignored when read back).
        """
        record: dict[str, Any] = {
            "source": self.source,
            "translation": self.translation,
            "src_tokens": list(self.src_tokens),
            "tgt_tokens": list(self.tgt_tokens),
            "attention": self.weights.tolist(),
            "scores": self.scores.tolist(),
            "token_logprobs": self.token_logprobs.tolist(),
            "alignment": self.pharaoh(links),
            "score": _json_float(self.score),
            "rank": self.rank,
            "level": self.level,
        }
        if diagnostics:
            record["diagnostics"] = self.diagnostics().to_dict()
        for key, value in self.meta.items():
            record.setdefault(key, value)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Alignment:
        """Inverse of :meth:`to_dict`. Raises ValueError naming what is missing or wrong."""
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
                np.asarray(logprobs, np.float32)
                if logprobs is not None
                else np.zeros(shape[0], np.float32)
            ),
            score=_from_json_float(record.get("score", 0.0)),
            rank=int(record.get("rank", 0)),
            level=str(record.get("level", "pieces")),
            meta={k: v for k, v in record.items() if k not in known},
        )

    def to_json(self, *, links: str = "argmax", diagnostics: bool = False) -> str:
        record = self.to_dict(links=links, diagnostics=diagnostics)
        return json.dumps(record, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Alignment:
        return cls.from_dict(json.loads(line))


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _matrix(rows: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, np.float32)
    try:
        matrix = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} is not a numeric T×S matrix") from err
    if matrix.shape != shape:
        raise ValueError(f"{name} has shape {matrix.shape}, expected {shape} from the tokens")
    return matrix
