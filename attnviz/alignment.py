"""The Alignment value type: what one decoded hypothesis attended to.

numpy only: renderers and exporters work from this type and never import torch.

Shapes: ``T`` target tokens (rows), ``S`` source tokens (columns).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WORD_START = "\u2581"  # SentencePiece's "▁": a piece that starts a new word
NON_WORDS = frozenset({"</s>", "<s>", "<pad>"})  # left out of hard links; <unk> is a word
LEVELS = ("pieces", "words")
#: How tokens group into words: ``sentencepiece`` (a piece starting with ▁ opens a word),
#: ``whitespace`` (every token is a word: a word vocabulary).
WORD_RULES = ("sentencepiece", "whitespace")
DEFAULT_WORD_RULES = ("sentencepiece", "sentencepiece")


def word_groups(tokens: list[str], rule: str = "sentencepiece") -> list[list[int]]:
    """Group piece indices into words: a piece starting with ▁ opens one; ``</s>`` stands alone.

    ``<unk>`` continues the current word, as the piece it replaces would have. With the
    ``whitespace`` rule every token is its own word.

    >>> word_groups(["▁the", "▁hou", "se", "▁caf", "<unk>", "</s>"])
    [[0], [1, 2], [3, 4], [5]]
    """
    if rule == "whitespace":
        return [[index] for index in range(len(tokens))]
    if rule != "sentencepiece":
        raise ValueError(f"unknown word rule {rule!r}; valid: {', '.join(WORD_RULES)}")
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        opens = token.startswith(WORD_START) or token in NON_WORDS
        after_special = bool(groups) and tokens[groups[-1][-1]] in NON_WORDS
        if opens or not groups or after_special:
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups


def _join_pieces(tokens: list[str]) -> str:
    return "".join(tokens).replace(WORD_START, "")


@dataclass(frozen=True, eq=False)
class Alignment:
    """One hypothesis with its attention.

    weights: [T, S] attention weights, each row sums to 1 over real source tokens.
    scores: [T, S] raw pre-softmax energies.
    token_logprobs: [T] log-probability of each target token.
    word_rules: how source and target tokens group into words (see :data:`WORD_RULES`).
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
        rules = tuple(self.word_rules)
        if len(rules) != 2 or any(rule not in WORD_RULES for rule in rules):
            raise ValueError(
                f"word_rules must be two of {', '.join(WORD_RULES)}, not {self.word_rules!r:.80}"
            )
        object.__setattr__(self, "word_rules", rules)
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
            and self.word_rules == other.word_rules
        )

    __hash__ = None  # type: ignore[assignment]

    # -- hard links -------------------------------------------------------------------------

    def hard_links(self) -> list[tuple[int, int]]:
        """Argmax link per target token as (source index, target index), Pharaoh order.

        Special tokens (``</s>``) are left out on both sides, so indices count the real
        tokens of the source and of the translation, 0-based.
        """
        src_real = [i for i, tok in enumerate(self.src_tokens) if tok not in NON_WORDS]
        tgt_real = [j for j, tok in enumerate(self.tgt_tokens) if tok not in NON_WORDS]
        if not src_real:
            return []
        src_pos = {i: n for n, i in enumerate(src_real)}
        links = []
        for n, j in enumerate(tgt_real):
            row = self.weights[j, src_real]
            best = src_real[int(np.argmax(row))]
            links.append((src_pos[best], n))
        return links

    def pharaoh(self) -> str:
        """Hard links as a Pharaoh line: ``i-j`` pairs, source index first, sorted."""
        return " ".join(f"{i}-{j}" for i, j in sorted(self.hard_links()))

    # -- word level -------------------------------------------------------------------------

    def to_words(self) -> Alignment:
        """Merge pieces into words, each side by its word rule.

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
        src_groups = word_groups(self.src_tokens, self.word_rules[0])
        tgt_groups = word_groups(self.tgt_tokens, self.word_rules[1])
        weights = np.stack(
            [self.weights[:, g].sum(axis=1) for g in src_groups], axis=1
        )  # [T, S_words]
        weights = np.stack([weights[g].mean(axis=0) for g in tgt_groups])  # [T_words, S_words]
        totals = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
        scores = np.stack([self.scores[:, g].mean(axis=1) for g in src_groups], axis=1)
        scores = np.stack([scores[g].mean(axis=0) for g in tgt_groups])
        logprobs = np.array([self.token_logprobs[g].sum() for g in tgt_groups], np.float32)
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
            word_rules=self.word_rules,
        )

    # -- serialisation ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict. Float32 values go through Python floats, which is lossless."""
        record: dict[str, Any] = {
            "source": self.source,
            "translation": self.translation,
            "src_tokens": list(self.src_tokens),
            "tgt_tokens": list(self.tgt_tokens),
            "attention": self.weights.tolist(),
            "scores": self.scores.tolist(),
            "token_logprobs": self.token_logprobs.tolist(),
            "alignment": self.pharaoh(),
            "score": _json_float(self.score),
            "rank": self.rank,
            "level": self.level,
        }
        if self.word_rules != DEFAULT_WORD_RULES:
            record["word_rules"] = list(self.word_rules)
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
                np.asarray(logprobs, np.float32)
                if logprobs is not None
                else np.zeros(shape[0], np.float32)
            ),
            score=_from_json_float(record.get("score", 0.0)),
            rank=int(record.get("rank", 0)),
            level=str(record.get("level", "pieces")),
            meta={k: v for k, v in record.items() if k not in known},
            word_rules=_word_rules(record.get("word_rules", DEFAULT_WORD_RULES)),
        )

    def to_json(self) -> str:
        """One JSON line; hidden characters (controls, bidi overrides) as ``\\u`` escapes."""
        from attnviz.text import json_safe

        return json_safe(json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False))

    @classmethod
    def from_json(cls, line: str) -> Alignment:
        return cls.from_dict(json.loads(line))


def _word_rules(value: Any) -> tuple[str, str]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"word_rules must be a list of two rules, not {value!r:.80}")
    return (str(value[0]), str(value[1]))


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


@dataclass(frozen=True)
class SentenceError:
    """A sentence that could not be decoded: its 0-based position, its text and why."""

    index: int
    source: str
    message: str
