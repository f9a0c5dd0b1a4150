"""Batched greedy, beam and forced decoding that keep every hypothesis's attention.

Inputs are padded id tensors ``src [B, N]`` with ``lengths [B]``. Each function returns, per
sentence, a list of :class:`Hypothesis` (best first) whose ``weights``/``scores`` are
``[T, length]``: one row per emitted target token, real source positions only.

A sentence's result never depends on the other sentences of its batch: the encoder packs
padding away, attention masks it, and the output length limit is per sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnviz.model import Seq2Seq, pad_batch
from attnviz.options import DEFAULT_LENGTH_PENALTY


def max_output_length(source_length: int) -> int:
    """Upper bound on target tokens (EOS included): scales with the source."""
    return 2 * source_length + 10


@dataclass
class Hypothesis:
    tokens: list[int]  # target ids, EOS included when emitted
    weights: np.ndarray  # [T, S]
    scores: np.ndarray  # [T, S] raw energies
    token_logprobs: np.ndarray  # [T]
    score: float  # sum of log-probs / T ** length_penalty
    rank: int = 0
    topk_ids: np.ndarray | None = None  # [T, K] the K most likely next tokens at each step
    topk_logprobs: np.ndarray | None = None  # [T, K] their log-probabilities, best first


def normalized_score(logprob_sum: float, length: int, length_penalty: float) -> float:
    return logprob_sum / max(length, 1) ** length_penalty


def _length_limits(
    lengths: torch.Tensor, max_length: int | None, prefixes: list[list[int]] | None = None
) -> list[int]:
    """Per sentence, the most target tokens; a forced prefix always fits, plus one free step."""
    limits = [max_output_length(int(n)) for n in lengths.tolist()]
    if max_length is not None:
        limits = [min(limit, max_length) for limit in limits]
    if prefixes is not None:
        limits = [max(limit, len(p) + 1) for limit, p in zip(limits, prefixes, strict=True)]
    return limits


def _check_prefixes(prefixes: list[list[int]] | None, batch: int) -> None:
    if prefixes is not None and len(prefixes) != batch:
        raise ValueError(f"{len(prefixes)} prefixes for {batch} sentences")


class _TopK:
    """The ``k`` most likely next tokens of every row at every step (nothing when k = 0)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.ids: list[np.ndarray] = []  # per step [rows, K]
        self.logprobs: list[np.ndarray] = []

    def record(self, logprobs: torch.Tensor) -> None:
        if self.k:
            values, ids = logprobs.topk(min(self.k, logprobs.size(-1)), dim=-1)  # [rows, K]
            self.ids.append(ids.cpu().numpy())
            self.logprobs.append(values.float().cpu().numpy())

    def rows(self, row: int, stop: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Steps 0..stop-1 of one row (rows stay put: greedy and forced decoding)."""
        if not self.k:
            return None, None
        ids = np.stack([step[row] for step in self.ids[:stop]])  # [T, K]
        return ids, np.stack([step[row] for step in self.logprobs[:stop]])

    def path(self, slots: list[int]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """One beam hypothesis: the slot it held at each step."""
        if not self.k:
            return None, None
        ids = np.stack([self.ids[t][slot] for t, slot in enumerate(slots)])  # [T, K]
        return ids, np.stack([self.logprobs[t][slot] for t, slot in enumerate(slots)])


@torch.inference_mode()
def greedy_decode(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    *,
    max_length: int | None = None,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    prefixes: list[list[int]] | None = None,
    topk: int = 0,
) -> list[list[Hypothesis]]:
    """Argmax at every step, the whole batch at once.

    ``prefixes`` (target ids, one list per sentence) are forced first; ``topk`` records the
    ``topk`` most likely next tokens at every step.
    """
    config = model.config
    batch = src.size(0)
    _check_prefixes(prefixes, batch)
    keys, projected, mask, state = model.encode(src, lengths)
    limits = _length_limits(lengths, max_length, prefixes)
    limit_tensor = torch.tensor(limits, device=src.device)
    if prefixes is not None:
        forced, forced_lengths = pad_batch(prefixes, config.pad_id, src.device)  # [B, P]
        forced_lengths = forced_lengths.to(src.device)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    tokens, weights, scores, logprobs = [], [], [], []
    alternatives = _TopK(topk)
    for t in range(max(limits)):
        logits, state, step_weights, step_scores = model.decoder.step(
            prev, state, keys, projected, mask
        )
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)  # [B, V]
        best_logprob, best = step_logprobs.max(dim=-1)  # [B]
        if prefixes is not None and t < forced.size(1):
            best = torch.where(t < forced_lengths, forced[:, t], best)
            best_logprob = step_logprobs.gather(1, best.unsqueeze(1)).squeeze(1)  # [B]
        alternatives.record(step_logprobs)
        tokens.append(best)
        weights.append(step_weights)
        scores.append(step_scores)
        logprobs.append(best_logprob)
        finished |= (best == config.eos_id) | (limit_tensor <= t + 1)
        prev = best
        if bool(finished.all()):
            break
    all_tokens = torch.stack(tokens, dim=1).cpu().numpy()  # [B, T]
    all_weights = torch.stack(weights, dim=1).float().cpu().numpy()  # [B, T, N]
    all_scores = torch.stack(scores, dim=1).float().cpu().numpy()  # [B, T, N]
    all_logprobs = torch.stack(logprobs, dim=1).float().cpu().numpy()  # [B, T]
    results = []
    for b, length in enumerate(lengths.tolist()):
        row = all_tokens[b].tolist()
        stop = row.index(config.eos_id) + 1 if config.eos_id in row else len(row)
        stop = min(stop, limits[b])
        lp = all_logprobs[b, :stop]
        topk_ids, topk_logprobs = alternatives.rows(b, stop)
        results.append(
            [
                Hypothesis(
                    tokens=row[:stop],
                    weights=all_weights[b, :stop, :length].copy(),
                    scores=all_scores[b, :stop, :length].copy(),
                    token_logprobs=lp.copy(),
                    score=normalized_score(float(lp.sum()), stop, length_penalty),
                    topk_ids=topk_ids,
                    topk_logprobs=topk_logprobs,
                )
            ]
        )
    return results


def _force_prefix(candidates: torch.Tensor, prefixes: list[list[int]], t: int) -> None:
    """In place on ``candidates [B, K, V]``: a sentence still inside its prefix may only
    extend it with the prefix's next token."""
    rows = [b for b, prefix in enumerate(prefixes) if t < len(prefix)]
    if not rows:
        return
    index = torch.tensor(rows, device=candidates.device)  # [F]
    tokens = torch.tensor([prefixes[b][t] for b in rows], device=candidates.device)  # [F]
    kept = candidates[index, :, tokens]  # [F, K]: each beam's total with the forced token
    candidates[index] = float("-inf")
    candidates[index, :, tokens] = kept


@dataclass
class _Finished:
    score: float
    step: int
    slot: int
    token: int
    logprob: float


@torch.inference_mode()
def beam_decode(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    *,
    beam_size: int,
    nbest: int = 1,
    max_length: int | None = None,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    prefixes: list[list[int]] | None = None,
    topk: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search over the batch; each hypothesis's attention is rebuilt by back-pointers.

    A sentence stops once it holds ``beam_size`` finished hypotheses or reaches its length
    limit; the ``nbest`` best by length-normalised score are returned. While a sentence is
    inside its ``prefixes`` entry, its beam may only extend the prefix; then search is free.
    ``topk`` records the most likely next tokens of every hypothesis at every step.
    """
    if not 1 <= nbest <= beam_size:  # DecodeOptions checks this for users
        raise ValueError(f"need 1 <= nbest ({nbest}) <= beam_size ({beam_size})")
    config = model.config
    k = beam_size
    batch = src.size(0)
    device = src.device
    _check_prefixes(prefixes, batch)
    keys, projected, mask, state = model.encode(src, lengths)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    keys, projected, mask = keys[expand], projected[expand], mask[expand]
    state = state.index_select(expand)
    limits = _length_limits(lengths, max_length, prefixes)
    alternatives = _TopK(topk)

    cumulative = torch.full((batch, k), float("-inf"), device=device)
    cumulative[:, 0] = 0.0  # only the first beam is alive at the start
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)
    finished: list[list[_Finished]] = [[] for _ in range(batch)]
    done = [False] * batch
    # per step: attention rows of the slots alive at that step, and for the slots of the
    # next step their parent slot, token and token log-prob
    step_weights: list[torch.Tensor] = []
    step_scores: list[torch.Tensor] = []
    parents: list[list[int]] = []
    emitted: list[list[int]] = []
    emitted_logprobs: list[list[float]] = []

    for t in range(max(limits)):
        logits, state, weights, scores = model.decoder.step(prev, state, keys, projected, mask)
        step_weights.append(weights)
        step_scores.append(scores)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [B*K, V]
        alternatives.record(logprobs)
        vocab = logprobs.size(-1)
        candidates = cumulative.view(-1, 1) + logprobs  # [B*K, V]
        if prefixes is not None:
            _force_prefix(candidates.view(batch, k, vocab), prefixes, t)
        top_scores, top_index = candidates.view(batch, k * vocab).topk(
            min(2 * k, k * vocab), dim=1
        )  # [B, 2K]
        top_scores_list = top_scores.tolist()
        top_beam = (top_index // vocab).tolist()
        top_token = (top_index % vocab).tolist()
        top_logprob = logprobs.view(batch, k * vocab).gather(1, top_index).tolist()

        new_parent = list(range(batch * k))
        new_token = [config.eos_id] * (batch * k)
        new_logprob = [0.0] * (batch * k)
        new_cumulative = [[float("-inf")] * k for _ in range(batch)]
        for b in range(batch):
            if done[b]:
                continue
            at_limit = t + 1 >= limits[b]
            chosen = 0
            for c, total in enumerate(top_scores_list[b]):
                if total == float("-inf"):
                    break
                slot = b * k + top_beam[b][c]
                token = top_token[b][c]
                if token == config.eos_id or at_limit:
                    if len(finished[b]) < k:
                        finished[b].append(
                            _Finished(
                                score=normalized_score(total, t + 1, length_penalty),
                                step=t,
                                slot=slot,
                                token=token,
                                logprob=top_logprob[b][c],
                            )
                        )
                    continue
                target = b * k + chosen
                new_parent[target] = slot
                new_token[target] = token
                new_logprob[target] = top_logprob[b][c]
                new_cumulative[b][chosen] = total
                chosen += 1
                if chosen == k:
                    break
            if len(finished[b]) >= k or at_limit or chosen == 0:
                done[b] = True
                new_cumulative[b] = [float("-inf")] * k
        parents.append(new_parent)
        emitted.append(new_token)
        emitted_logprobs.append(new_logprob)
        if all(done):
            break
        parent_index = torch.tensor(new_parent, device=device)
        state = state.index_select(parent_index)
        prev = torch.tensor(new_token, dtype=torch.long, device=device)
        cumulative = torch.tensor(new_cumulative, device=device)

    weights_np = [w.float().cpu().numpy() for w in step_weights]  # each [B*K, N]
    scores_np = [s.float().cpu().numpy() for s in step_scores]
    results = []
    for b, length in enumerate(lengths.tolist()):
        ranked = sorted(finished[b], key=lambda f: (-f.score, f.step))[:nbest]
        hypotheses = []
        for rank, end in enumerate(ranked):
            rows_w, rows_s, toks, lps, slots = [], [], [], [], []
            slot, token, logprob = end.slot, end.token, end.logprob
            for t in range(end.step, -1, -1):
                rows_w.append(weights_np[t][slot, :length])
                rows_s.append(scores_np[t][slot, :length])
                toks.append(token)
                lps.append(logprob)
                slots.append(slot)
                if t > 0:  # the slot alive at step t came from parents[t-1][slot]
                    token = emitted[t - 1][slot]
                    logprob = emitted_logprobs[t - 1][slot]
                    slot = parents[t - 1][slot]
            topk_ids, topk_logprobs = alternatives.path(slots[::-1])
            hypotheses.append(
                Hypothesis(
                    tokens=toks[::-1],
                    weights=np.stack(rows_w[::-1]),
                    scores=np.stack(rows_s[::-1]),
                    token_logprobs=np.asarray(lps[::-1], np.float32),
                    score=end.score,
                    rank=rank,
                    topk_ids=topk_ids,
                    topk_logprobs=topk_logprobs,
                )
            )
        results.append(hypotheses)
    return results


@torch.inference_mode()
def forced_decode(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    references: list[list[int]],
    *,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    topk: int = 0,
) -> list[list[Hypothesis]]:
    """Teacher-force each reference (ids, EOS appended here) and record the attention
    (and, with ``topk``, the most likely next tokens at each step)."""
    config = model.config
    batch = src.size(0)
    if len(references) != batch:
        raise ValueError(f"{len(references)} references for {batch} sentences")
    targets = [[*ref, config.eos_id] for ref in references]
    padded, _ = pad_batch(targets, config.pad_id, src.device)  # [B, T]
    steps = padded.size(1)
    keys, projected, mask, state = model.encode(src, lengths)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=src.device)
    weights, scores, logprobs = [], [], []
    alternatives = _TopK(topk)
    for t in range(steps):
        logits, state, step_weights, step_scores = model.decoder.step(
            prev, state, keys, projected, mask
        )
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)
        alternatives.record(step_logprobs)
        logprobs.append(step_logprobs.gather(1, padded[:, t : t + 1]).squeeze(1))  # [B]
        weights.append(step_weights)
        scores.append(step_scores)
        prev = padded[:, t]
    all_weights = torch.stack(weights, dim=1).float().cpu().numpy()  # [B, T, N]
    all_scores = torch.stack(scores, dim=1).float().cpu().numpy()
    all_logprobs = torch.stack(logprobs, dim=1).float().cpu().numpy()  # [B, T]
    results = []
    for b, length in enumerate(lengths.tolist()):
        size = len(targets[b])
        lp = all_logprobs[b, :size].copy()
        topk_ids, topk_logprobs = alternatives.rows(b, size)
        results.append(
            [
                Hypothesis(
                    tokens=targets[b],
                    weights=all_weights[b, :size, :length].copy(),
                    scores=all_scores[b, :size, :length].copy(),
                    token_logprobs=lp,
                    score=normalized_score(float(lp.sum()), size, length_penalty),
                    topk_ids=topk_ids,
                    topk_logprobs=topk_logprobs,
                )
            ]
        )
    return results
