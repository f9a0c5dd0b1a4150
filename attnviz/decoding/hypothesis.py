"""What decoding returns: per sentence a list of :class:`Hypothesis`, best first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnviz.decoding.rules import SearchRules, normalized_score


@dataclass
class Hypothesis:
    tokens: list[int]  # target ids, EOS included when emitted
    weights: np.ndarray  # [T, L, H, S] cross-attention of every layer and head
    scores: np.ndarray  # [T, L, H, S] raw energies
    token_logprobs: np.ndarray  # [T]
    score: float  # sum of log-probs / T ** length_penalty
    rank: int = 0
    topk_ids: np.ndarray | None = None  # [T, K] the K most likely next tokens at each step
    topk_logprobs: np.ndarray | None = None  # [T, K] their log-probabilities, best first


def one_each(
    tokens: list[list[int]],
    weights: np.ndarray,
    scores: np.ndarray,
    logprobs: np.ndarray,
    topk_ids: np.ndarray | None,
    topk_logprobs: np.ndarray | None,
    lengths: torch.Tensor,
    length_penalty: float,
    rules: SearchRules,
) -> list[list[Hypothesis]]:
    """One hypothesis per sentence (greedy and forced decoding): sentence b's ``tokens[b]``
    with the first ``len(tokens[b])`` rows and ``lengths[b]`` source positions of
    ``weights``/``scores [B, T, L, H, N]``, ``logprobs [B, T]`` and ``topk_* [B, T, K]``."""
    results = []
    for b, length in enumerate(lengths.tolist()):
        size = len(tokens[b])
        lp = logprobs[b, :size]
        results.append(
            [
                Hypothesis(
                    tokens=tokens[b],
                    weights=weights[b, :size, ..., :length],
                    scores=scores[b, :size, ..., :length],
                    token_logprobs=lp,
                    score=normalized_score(float(lp.sum()), size, length_penalty, rules),
                    topk_ids=None if topk_ids is None else topk_ids[b, :size],
                    topk_logprobs=None if topk_logprobs is None else topk_logprobs[b, :size],
                )
            ]
        )
    return results
