"""Batched greedy, beam and forced decoding that keep every hypothesis's attention.

Inputs are padded id tensors ``src [B, N]`` with ``lengths [B]``. Each function returns, per
sentence, a list of :class:`Hypothesis` (best first) whose ``weights``/``scores`` are
``[T, length]``: one row per emitted target token, real source positions only.

A sentence's result never depends on the other sentences of its batch: the encoder packs
padding away, attention masks it, and the output length limit is per sentence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attnviz.errors import ConfigError
from attnviz.model import Seq2Seq, pad_batch
from attnviz.options import DEFAULT_LENGTH_PENALTY

BEAM_STOPS = ("beam_full", "best_ended")


@dataclass(frozen=True)
class SearchRules:
    """The conventions of a search that toolkits differ on; attnviz's own by default.

    - Output limit (target tokens, ``</s>`` included) for a source of ``N`` encoder tokens:
      ``min(max_length_cap, int(max_length_ratio * N + max_length_offset))``.
    - A hypothesis of ``T`` tokens scores ``sum(log-probs) / (T + length_offset) ** penalty``.
    - ``beam_stop``, with beam size ``K``:
      ``beam_full``: each step looks at the 2K best candidates; ended ones are set aside until
      K have ended, which stops the sentence (attnviz);
      ``best_ended``: each step looks at the K best candidates; every ended one is set aside;
      the sentence stops once the best candidate of a step has ended and at least ``nbest``
      have (OpenNMT-py), so asking for more hypotheses can change the best one.
    """

    max_length_ratio: float = 2.0
    max_length_offset: float = 10.0
    max_length_cap: int | None = None
    length_offset: int = 0
    beam_stop: str = "beam_full"

    def __post_init__(self) -> None:
        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        def whole(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not (number(self.max_length_ratio) and number(self.max_length_offset)):
            raise ConfigError("max_length_ratio and max_length_offset must be numbers")
        if not (
            whole(self.length_offset)
            and (self.max_length_cap is None or whole(self.max_length_cap))
        ):
            raise ConfigError("length_offset and max_length_cap must be whole numbers")
        if not isinstance(self.beam_stop, str) or self.beam_stop not in BEAM_STOPS:
            raise ConfigError(
                f"unknown beam_stop {self.beam_stop!r}; valid: {', '.join(BEAM_STOPS)}"
            )
        if not 0 <= self.max_length_ratio <= 100 or not 0 <= self.max_length_offset <= 10_000:
            raise ConfigError(
                "max_length_ratio must be in [0, 100] and max_length_offset in [0, 10000]"
            )
        if self.max_length_cap is not None and self.max_length_cap < 1:
            raise ConfigError(f"max_length_cap must be at least 1, not {self.max_length_cap}")
        if self.length_offset < 0:
            raise ConfigError(f"length_offset must be at least 0, not {self.length_offset}")

    def max_output_length(self, source_length: int) -> int:
        limit = max(1, int(self.max_length_ratio * source_length + self.max_length_offset))
        return limit if self.max_length_cap is None else min(limit, self.max_length_cap)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchRules:
        if not isinstance(values, dict):
            raise ConfigError(f"search rules must be a dict, not {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown search rules: {', '.join(str(u)[:40] for u in unknown)}")
        return cls(**values)


ATTNVIZ_RULES = SearchRules()


def max_output_length(source_length: int) -> int:
    """Upper bound on target tokens (EOS included): scales with the source."""
    return ATTNVIZ_RULES.max_output_length(source_length)


@dataclass
class Hypothesis:
    tokens: list[int]  # target ids, EOS included when emitted
    weights: np.ndarray  # [T, S]
    scores: np.ndarray  # [T, S] raw energies
    token_logprobs: np.ndarray  # [T]
    score: float  # sum of log-probs / T ** length_penalty
    rank: int = 0


def normalized_score(
    logprob_sum: float, length: int, length_penalty: float, rules: SearchRules = ATTNVIZ_RULES
) -> float:
    return logprob_sum / max(length + rules.length_offset, 1) ** length_penalty


def _length_limits(lengths: torch.Tensor, max_length: int | None, rules: SearchRules) -> list[int]:
    limits = [rules.max_output_length(int(n)) for n in lengths.tolist()]
    if max_length is not None:
        limits = [min(limit, max_length) for limit in limits]
    return limits


@torch.inference_mode()
def greedy_decode(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    *,
    max_length: int | None = None,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    rules: SearchRules = ATTNVIZ_RULES,
) -> list[list[Hypothesis]]:
    """Argmax at every step, the whole batch at once."""
    config = model.config
    keys, projected, mask, state = model.encode(src, lengths)
    batch = src.size(0)
    limits = _length_limits(lengths, max_length, rules)
    limit_tensor = torch.tensor(limits, device=src.device)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    tokens, weights, scores, logprobs = [], [], [], []
    for t in range(max(limits)):
        logits, state, step_weights, step_scores = model.decoder.step(
            prev, state, keys, projected, mask
        )
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)  # [B, V]
        best_logprob, best = step_logprobs.max(dim=-1)  # [B]
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
        results.append(
            [
                Hypothesis(
                    tokens=row[:stop],
                    weights=all_weights[b, :stop, :length].copy(),
                    scores=all_scores[b, :stop, :length].copy(),
                    token_logprobs=lp.copy(),
                    score=normalized_score(float(lp.sum()), stop, length_penalty, rules),
                )
            ]
        )
    return results


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
    rules: SearchRules = ATTNVIZ_RULES,
) -> list[list[Hypothesis]]:
    """Beam search over the batch; each hypothesis's attention is rebuilt by back-pointers.

    A sentence stops as ``rules.beam_stop`` says or at its length limit; the ``nbest`` best
    by length-normalised score are returned.
    """
    if not 1 <= nbest <= beam_size:  # DecodeOptions checks this for users
        raise ValueError(f"need 1 <= nbest ({nbest}) <= beam_size ({beam_size})")
    config = model.config
    k = beam_size
    batch = src.size(0)
    device = src.device
    keys, projected, mask, state = model.encode(src, lengths)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    keys, projected, mask = keys[expand], projected[expand], mask[expand]
    state = state.index_select(expand)
    limits = _length_limits(lengths, max_length, rules)
    best_ended = rules.beam_stop == "best_ended"
    candidates = k if best_ended else 2 * k

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
        vocab = logprobs.size(-1)
        totals = cumulative.view(-1, 1) + logprobs  # [B*K, V]
        top_scores, top_index = totals.view(batch, k * vocab).topk(
            min(candidates, k * vocab), dim=1
        )  # [B, 2K] or [B, K]
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
            best_has_ended = False
            for c, total in enumerate(top_scores_list[b]):
                if total == float("-inf"):
                    break
                slot = b * k + top_beam[b][c]
                token = top_token[b][c]
                if token == config.eos_id or at_limit:
                    best_has_ended = best_has_ended or c == 0
                    if best_ended or len(finished[b]) < k:
                        finished[b].append(
                            _Finished(
                                score=normalized_score(total, t + 1, length_penalty, rules),
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
            if best_ended:
                stop = best_has_ended and len(finished[b]) >= nbest
            else:
                stop = len(finished[b]) >= k
            if stop or at_limit or chosen == 0:
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
            rows_w, rows_s, toks, lps = [], [], [], []
            slot, token, logprob = end.slot, end.token, end.logprob
            for t in range(end.step, -1, -1):
                rows_w.append(weights_np[t][slot, :length])
                rows_s.append(scores_np[t][slot, :length])
                toks.append(token)
                lps.append(logprob)
                if t > 0:  # the slot alive at step t came from parents[t-1][slot]
                    token = emitted[t - 1][slot]
                    logprob = emitted_logprobs[t - 1][slot]
                    slot = parents[t - 1][slot]
            hypotheses.append(
                Hypothesis(
                    tokens=toks[::-1],
                    weights=np.stack(rows_w[::-1]),
                    scores=np.stack(rows_s[::-1]),
                    token_logprobs=np.asarray(lps[::-1], np.float32),
                    score=end.score,
                    rank=rank,
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
    rules: SearchRules = ATTNVIZ_RULES,
) -> list[list[Hypothesis]]:
    """Teacher-force each reference (ids, EOS appended here) and record the attention."""
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
    for t in range(steps):
        logits, state, step_weights, step_scores = model.decoder.step(
            prev, state, keys, projected, mask
        )
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)
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
        results.append(
            [
                Hypothesis(
                    tokens=targets[b],
                    weights=all_weights[b, :size, :length].copy(),
                    scores=all_scores[b, :size, :length].copy(),
                    token_logprobs=lp,
                    score=normalized_score(float(lp.sum()), size, length_penalty, rules),
                )
            ]
        )
    return results
