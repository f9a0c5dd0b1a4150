"""What the beam loops record per step on the device, and how the finished hypotheses are
rebuilt from it on the host at the end, following back-pointers."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from attnviz.decoding.hypothesis import Hypothesis
from attnviz.decoding.rules import SearchRules, normalized_scores


class BeamRecord:
    """What the beam loop keeps per step, on the device, to rebuild hypotheses at the end.

    Each step's rows are in that step's layout: one group of K rows per sentence still in the
    batch, ``groups`` naming the sentences, so that every row maps back to (sentence, beam).
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.groups: list[torch.Tensor] = []  # per step: sentence of each row group [R]
        self.weights: list[torch.Tensor] = []  # per step: [R*K, L, H, N], the rows that ran
        self.scores: list[torch.Tensor] = []
        self.beam: list[torch.Tensor] = []  # per step: parent beam of each next beam [R, K]
        self.token: list[torch.Tensor] = []  # token and log-prob that extended it [R, K]
        self.logprob: list[torch.Tensor] = []
        self.kept: list[torch.Tensor] = []  # candidates set aside as finished [R, C]
        self.top: list[tuple[torch.Tensor, ...]] = []  # (score, beam, token, log-prob) [R, C]
        self.alternatives: list[tuple[torch.Tensor, torch.Tensor]] = []  # top-k [R*K, k]

    def step(
        self,
        sentences: torch.Tensor,
        attention: tuple[torch.Tensor, torch.Tensor],
        choice: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        kept: torch.Tensor,
        top: tuple[torch.Tensor, ...],
        alternatives: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """sentences [R]; attention: weights, scores [R*K, L, H, N]; choice: parent beam, token and
        log-prob of each next beam [R, K]; kept [R, C]; top: candidates' (total, beam, token,
        log-prob) [R, C]; alternatives: the top-k (values, ids) of every row [R*K, k]."""
        self.groups.append(sentences)
        self.weights.append(attention[0])
        self.scores.append(attention[1])
        self.beam.append(choice[0])
        self.token.append(choice[1])
        self.logprob.append(choice[2])
        self.kept.append(kept)
        self.top.append(top)
        if alternatives is not None:
            self.alternatives.append(alternatives)

    def hypotheses(
        self,
        lengths: list[int],
        nbest: int,
        length_penalty: float,
        rules: SearchRules,
        final_scores: bool = False,
    ) -> list[list[Hypothesis]]:
        """Per sentence its ``nbest`` finished hypotheses, best first; ``final_scores``: the
        recorded totals are the scores already (else they are normalised here)."""
        host = self._on_host()
        finished = _finished(host, length_penalty, rules, final_scores)
        picked = _best_finished(finished, len(lengths), nbest)
        flat = [index for chosen in picked for index in chosen]  # the picked, sentence by sentence
        tokens, logprobs, rows = _backtrack(host, finished, flat, self.k, len(lengths))
        if flat:
            weights, scores = host.weights[rows], host.scores[rows]  # [count, T, L, H, N]
        else:
            weights = scores = np.zeros((0, 0, *host.weights.shape[1:]), np.float32)
        topk = host.alternatives is not None
        if topk:  # the top-k of the rows each hypothesis went through
            topk_logprobs, topk_ids = host.alternatives[0][rows], host.alternatives[1][rows]

        results: list[list[Hypothesis]] = []
        cursor = 0  # position in flat
        for b, length in enumerate(lengths):
            hypotheses = []
            for rank, index in enumerate(picked[b]):
                size = int(finished.step[index]) + 1
                hypotheses.append(
                    Hypothesis(
                        tokens=tokens[cursor, :size].tolist(),
                        weights=weights[cursor, :size, ..., :length],
                        scores=scores[cursor, :size, ..., :length],
                        token_logprobs=logprobs[cursor, :size],
                        score=float(finished.score[index]),
                        rank=rank,
                        topk_ids=topk_ids[cursor, :size] if topk else None,
                        topk_logprobs=topk_logprobs[cursor, :size] if topk else None,
                    )
                )
                cursor += 1
            results.append(hypotheses)
        return results

    def _on_host(self) -> _HostRecord:
        """Everything recorded, steps concatenated, one transfer per kind of record."""
        alternatives = None
        if self.alternatives:
            alternatives = (
                _to_numpy(torch.cat([a[0] for a in self.alternatives]).float()),  # [sum R*K, k]
                _to_numpy(torch.cat([a[1] for a in self.alternatives])),
            )
        sizes = [int(g.numel()) for g in self.groups]
        return _HostRecord(
            sizes=sizes,
            offsets=np.concatenate([[0], np.cumsum(sizes)]),
            groups=_to_numpy(torch.cat(self.groups)),
            weights=_to_numpy(torch.cat(self.weights).float()),  # [sum R*K, L, H, N]
            scores=_to_numpy(torch.cat(self.scores).float()),
            beam=_to_numpy(torch.cat(self.beam)),  # [sum R, K]
            token=_to_numpy(torch.cat(self.token)),
            logprob=_to_numpy(torch.cat(self.logprob)),
            kept=_to_numpy(torch.cat(self.kept)),  # [sum R, C]
            top=[_to_numpy(torch.cat([entry[i] for entry in self.top])) for i in range(4)],
            alternatives=alternatives,
        )


class _HostRecord(NamedTuple):
    """A :class:`BeamRecord` on the host; step t's rows are ``offsets[t]:offsets[t + 1]``
    (row groups: ``* K`` for weights, scores and alternatives)."""

    sizes: list[int]  # per step: sentences in the batch, R
    offsets: np.ndarray  # [steps + 1]
    groups: np.ndarray  # [sum R] sentence of each row group
    weights: np.ndarray  # [sum R*K, L, H, N]
    scores: np.ndarray  # [sum R*K, L, H, N]
    beam: np.ndarray  # [sum R, K] parent beam of each next beam
    token: np.ndarray  # [sum R, K] the token that extended it
    logprob: np.ndarray  # [sum R, K] and its log-prob
    kept: np.ndarray  # [sum R, C] candidates set aside as finished
    top: list[np.ndarray]  # score, beam, token, log-prob of the candidates, each [sum R, C]
    alternatives: tuple[np.ndarray, np.ndarray] | None  # top-k values, ids [sum R*K, k]


class _Finished(NamedTuple):
    """The finished hypotheses, in the order the loop set them aside; each [F]."""

    sentence: np.ndarray
    step: np.ndarray  # the step that ended it: its length - 1
    beam: np.ndarray  # the beam it extended at that step
    token: np.ndarray  # its last token
    logprob: np.ndarray  # and that token's log-prob
    score: np.ndarray  # float64


def _finished(
    host: _HostRecord, length_penalty: float, rules: SearchRules, final_scores: bool
) -> _Finished:
    """The hypotheses set aside as finished, with their scores (``final_scores``: the recorded
    totals are the scores already; else they are length-normalised here)."""
    row, column = np.nonzero(host.kept)  # row-major: by step, sentence, candidate
    step_of_row = np.repeat(np.arange(len(host.sizes)), host.sizes)
    step = step_of_row[row]
    total = host.top[0][row, column].astype(np.float64)
    if final_scores:
        score = total.astype(np.float64)
    else:
        score = normalized_scores(total, step + 1, length_penalty, rules)
    return _Finished(
        sentence=host.groups[row],
        step=step,
        beam=host.top[1][row, column],
        token=host.top[2][row, column],
        logprob=host.top[3][row, column],
        score=score,
    )


def _best_finished(finished: _Finished, batch: int, nbest: int) -> list[list[int]]:
    """Per sentence, the indices of its ``nbest`` best finished hypotheses, best first (ties:
    the shorter, then the one set aside first)."""
    order = np.lexsort(
        (np.arange(finished.step.size), finished.step, -finished.score, finished.sentence)
    )
    picked: list[list[int]] = [[] for _ in range(batch)]
    for index in order:
        chosen = picked[finished.sentence[index]]
        if len(chosen) < nbest:
            chosen.append(int(index))
    return picked


def _backtrack(
    host: _HostRecord, finished: _Finished, flat: list[int], k: int, batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens, log-probs and rows of the recorded weights of the finished hypotheses ``flat``,
    each ``[H, T]`` (zeros after a hypothesis's end), followed back from their last step."""
    sizes, offsets = host.sizes, host.offsets
    steps = len(sizes)
    # where sentence s's beam b sits in each step's rows (-1: gone)
    place = np.full((steps, batch), -1, dtype=np.int64)
    for t in range(steps):
        place[t, host.groups[offsets[t] : offsets[t + 1]]] = np.arange(sizes[t])

    count = len(flat)
    longest = int(finished.step[flat].max()) + 1 if count else 0
    out_tokens = np.zeros((count, longest), dtype=np.int64)
    out_logprobs = np.zeros((count, longest), dtype=np.float32)
    out_rows = np.zeros((count, longest), dtype=np.int64)  # rows of weights/scores
    if not count:
        return out_tokens, out_logprobs, out_rows
    sentence = finished.sentence[flat]
    last = finished.step[flat]
    cur_beam = finished.beam[flat].astype(np.int64)
    cur_token = finished.token[flat].astype(np.int64)
    cur_logprob = finished.logprob[flat].astype(np.float32)
    for t in range(longest - 1, -1, -1):
        active = last >= t
        group = place[t, sentence[active]]  # the sentence's group at step t
        out_rows[active, t] = offsets[t] * k + group * k + cur_beam[active]
        out_tokens[active, t] = cur_token[active]
        out_logprobs[active, t] = cur_logprob[active]
        if t > 0:  # the beam alive at step t came from step t-1's choice
            previous = offsets[t - 1] + place[t - 1, sentence[active]]
            from_beam = cur_beam[active]
            cur_token[active] = host.token[previous, from_beam]
            cur_logprob[active] = host.logprob[previous, from_beam]
            cur_beam[active] = host.beam[previous, from_beam]
    return out_tokens, out_logprobs, out_rows


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()
