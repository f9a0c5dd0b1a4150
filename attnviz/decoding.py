"""Batched greedy, beam and forced decoding that keep every hypothesis's attention.

Inputs are padded id tensors ``src [B, N]`` with ``lengths [B]``. Each function returns, per
sentence, a list of :class:`Hypothesis` (best first) whose ``weights``/``scores`` are
``[T, length]``: one row per emitted target token, real source positions only.

A sentence's result never depends on the other sentences of its batch: the encoder packs
padding away, attention masks it, and the output length limit is per sentence.

How hypotheses are searched and scored follows the model's :class:`SearchRules` (attnviz's
own by default; an imported model's toolkit's otherwise).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attnviz.errors import ConfigError, UsageError
from attnviz.model import Seq2Seq, pad_batch
from attnviz.options import DEFAULT_LENGTH_PENALTY

BEAM_STOPS = ("beam_full", "all_slots_ended", "best_ended")
LENGTH_NORMS = ("average", "gnmt")


@dataclass(frozen=True)
class SearchRules:
    """How a model searches and scores hypotheses; stored with the model, not chosen per call.

    attnviz's own models use the defaults. An imported model carries its toolkit's rules, so
    that its greedy and beam translations are exactly the toolkit's.

    - Output limit (target tokens, ``</s>`` included) for a source of N encoder tokens:
      ``min(max_length_cap, int(max_length_ratio * N + max_length_offset))``, at least 1
      (ratio 0 makes it a fixed limit).
    - ``min_length``: ``</s>`` is not allowed before this many tokens; ``forbidden``: token
      ids never generated.
    - A hypothesis of T tokens scores, with ``length_norm`` ``"average"``,
      ``sum(log-probs) / (T + length_offset) ** penalty``; with ``"gnmt"``,
      ``sum(log-probs) / ((5 + T) / 6) ** penalty`` (the plain sum when penalty is 0).
      ``length_penalty`` is the penalty used when DecodeOptions leaves it unset.
    - ``beam_stop``, with beam size K: ``beam_full``: each step looks at the 2K best
      candidates; ended ones leave the beam until K have ended, which stops the sentence
      (attnviz); ``all_slots_ended``: each step keeps the K best candidates, ended ones
      included (they keep their slot and are extended further); a slot that has once held
      an ended hypothesis stays marked, and the sentence stops when all K are (JoeyNMT 2);
      ``best_ended``: each step looks at the K best candidates; every ended one is set
      aside (no cap on their number) and its slot is dead; the sentence stops once the best
      candidate of a step has ended and at least ``nbest`` have, so asking for more
      hypotheses can change the best one (OpenNMT-py).
    """

    max_length_ratio: float = 2.0
    max_length_offset: float = 10.0
    max_length_cap: int | None = None
    length_offset: int = 0
    beam_stop: str = "beam_full"
    min_length: int = 0
    forbidden: tuple[int, ...] = ()
    length_norm: str = "average"
    length_penalty: float = DEFAULT_LENGTH_PENALTY

    def __post_init__(self) -> None:
        if self.beam_stop not in BEAM_STOPS:
            raise ConfigError(
                f"unknown beam_stop {self.beam_stop!r}; valid: {', '.join(BEAM_STOPS)}"
            )
        if self.length_norm not in LENGTH_NORMS:
            raise ConfigError(
                f"unknown length_norm {self.length_norm!r}; valid: {', '.join(LENGTH_NORMS)}"
            )
        for name in ("max_length_ratio", "max_length_offset", "length_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be at least 0, not {value}")
        for name in ("length_offset", "min_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, not {value!r}")
        cap = self.max_length_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"max_length_cap must be a whole number >= 1, not {cap!r}")
        forbidden = self.forbidden
        if not isinstance(forbidden, tuple | list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in forbidden
        ):
            raise ConfigError("forbidden must be a list of token ids")
        object.__setattr__(self, "forbidden", tuple(forbidden))

    def max_output_length(self, source_length: int) -> int:
        """Most target tokens (EOS included) for a source of ``source_length`` tokens."""
        limit = max(1, int(self.max_length_ratio * source_length + self.max_length_offset))
        return limit if self.max_length_cap is None else min(limit, self.max_length_cap)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["forbidden"] = list(self.forbidden)
        return values

    @classmethod
    def from_dict(cls, values: Any) -> SearchRules:
        """Rebuild stored rules; unknown or bad fields are a ConfigError."""
        if not isinstance(values, dict):
            raise ConfigError("search rules must be a dict")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise ConfigError(f"unknown search rules: {', '.join(unknown)}")
        return cls(**values)


ATTNVIZ_RULES = SearchRules()


def max_output_length(source_length: int) -> int:
    """Upper bound on target tokens (EOS included) under attnviz's own rules."""
    return ATTNVIZ_RULES.max_output_length(source_length)


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


def normalized_score(
    logprob_sum: float, length: int, length_penalty: float, rules: SearchRules | None = None
) -> float:
    """The score of a hypothesis of ``length`` tokens, as ``rules.length_norm`` says."""
    rules = rules or ATTNVIZ_RULES
    if rules.length_norm == "gnmt":
        if length_penalty <= 0:
            return logprob_sum
        return logprob_sum / ((5.0 + length) / 6.0) ** length_penalty
    return logprob_sum / max(length + rules.length_offset, 1) ** length_penalty


def _length_limits(
    lengths: torch.Tensor,
    max_length: int | None,
    rules: SearchRules,
    prefixes: list[list[int]] | None = None,
) -> list[int]:
    """Per sentence, the most target tokens; a forced prefix always fits, plus one free step."""
    limits = [rules.max_output_length(int(n)) for n in lengths.tolist()]
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


def _restrict(logprobs: torch.Tensor, rules: SearchRules, step: int, eos_id: int) -> torch.Tensor:
    """Log-probs [*, V] with the tokens the rules do not allow at ``step`` set to -inf."""
    banned = [i for i in rules.forbidden if i < logprobs.size(-1)]
    if step < rules.min_length:
        banned.append(eos_id)
    if not banned:
        return logprobs
    restricted = logprobs.clone()
    restricted[:, banned] = float("-inf")
    return restricted


@torch.inference_mode()
def greedy_decode(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    *,
    max_length: int | None = None,
    length_penalty: float = DEFAULT_LENGTH_PENALTY,
    rules: SearchRules = ATTNVIZ_RULES,
    prefixes: list[list[int]] | None = None,
    topk: int = 0,
) -> list[list[Hypothesis]]:
    """Argmax at every step (over the tokens the rules allow), the whole batch at once.

    ``prefixes`` (target ids, one list per sentence) are forced first; ``topk`` records the
    ``topk`` most likely next tokens at every step.
    """
    config = model.config
    batch = src.size(0)
    _check_prefixes(prefixes, batch)
    keys, projected, mask, state = model.encode(src, lengths)
    limits = _length_limits(lengths, max_length, rules, prefixes)
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
        best = _restrict(step_logprobs, rules, t, config.eos_id).argmax(dim=-1)  # [B]
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
                    score=normalized_score(float(lp.sum()), stop, length_penalty, rules),
                    topk_ids=topk_ids,
                    topk_logprobs=topk_logprobs,
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
    prefixes: list[list[int]] | None = None,
    topk: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search over the batch; each hypothesis's attention is rebuilt by back-pointers.

    A sentence stops once it holds ``beam_size`` finished hypotheses (or as ``rules.beam_stop``
    says) or reaches its length limit; the ``nbest`` best by length-normalised score are
    returned. Models whose rules name another toolkit's beam are searched as that toolkit does
    (without prefixes or top-k). While a sentence is inside its ``prefixes`` entry, its beam
    may only extend the prefix; then search is free. ``topk`` records the most likely next
    tokens of every hypothesis at every step.
    """
    if not 1 <= nbest <= beam_size:  # DecodeOptions checks this for users
        raise ValueError(f"need 1 <= nbest ({nbest}) <= beam_size ({beam_size})")
    _check_prefixes(prefixes, src.size(0))
    limits = _length_limits(lengths, max_length, rules, prefixes)
    if rules.beam_stop == "all_slots_ended":
        if prefixes is not None or topk:
            raise UsageError(
                "a target prefix or top-k needs attnviz's beam search; this model searches "
                "as its toolkit does: use greedy decoding (beam 1) for them"
            )
        return _beam_decode_joeynmt(
            model, src, lengths, beam_size, nbest, limits, length_penalty, rules
        )
    config = model.config
    k = beam_size
    best_ended = rules.beam_stop == "best_ended"
    width = k if best_ended else 2 * k  # candidates looked at per step
    batch = src.size(0)
    device = src.device
    keys, projected, mask, state = model.encode(src, lengths)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    keys, projected, mask = keys[expand], projected[expand], mask[expand]
    state = state.index_select(expand)
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
        allowed = _restrict(logprobs, rules, t, config.eos_id)
        candidates = cumulative.view(-1, 1) + allowed  # [B*K, V]
        if prefixes is not None:
            _force_prefix(candidates.view(batch, k, vocab), prefixes, t)
        top_scores, top_index = candidates.view(batch, k * vocab).topk(
            min(width, k * vocab), dim=1
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
    rules: SearchRules = ATTNVIZ_RULES,
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
                    score=normalized_score(float(lp.sum()), size, length_penalty, rules),
                    topk_ids=topk_ids,
                    topk_logprobs=topk_logprobs,
                )
            ]
        )
    return results


@dataclass
class _Alive:
    """The hypotheses in the beam slots: one row per slot, ``[rows, T, ...]``."""

    tokens: torch.Tensor  # [R, T] long
    logprobs: torch.Tensor  # [R, T]
    weights: torch.Tensor  # [R, T, N]
    scores: torch.Tensor  # [R, T, N]

    def extend(
        self,
        parents: torch.Tensor,
        tokens: torch.Tensor,
        logprobs: torch.Tensor,
        weights: torch.Tensor,
        scores: torch.Tensor,
    ) -> _Alive:
        """Each new slot: its parent's rows followed by this step's token and attention."""
        return _Alive(
            torch.cat([self.tokens[parents], tokens.unsqueeze(1)], dim=1),
            torch.cat([self.logprobs[parents], logprobs.unsqueeze(1)], dim=1),
            torch.cat([self.weights[parents], weights[parents].unsqueeze(1)], dim=1),
            torch.cat([self.scores[parents], scores[parents].unsqueeze(1)], dim=1),
        )

    def keep(self, sentences: torch.Tensor, k: int) -> _Alive:
        """Only the slots of the given sentences (rows grouped K by K)."""

        def pick(tensor: torch.Tensor) -> torch.Tensor:
            grouped = tensor.view(-1, k, *tensor.shape[1:])  # [B, K, ...]
            return grouped.index_select(0, sentences).flatten(0, 1)

        return _Alive(pick(self.tokens), pick(self.logprobs), pick(self.weights), pick(self.scores))


def _beam_decode_joeynmt(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    k: int,
    nbest: int,
    limits: list[int],
    length_penalty: float,
    rules: SearchRules,
) -> list[list[Hypothesis]]:
    """JoeyNMT 2's beam search, with attention carried along.

    Per step the K best of the K x V extensions survive, finished ones included: a slot
    whose hypothesis ended keeps being extended, and its continuations compete for the K
    slots. A slot that has once held a finished hypothesis stays marked, and a sentence ends
    when all K slots are marked or at its length limit. A hypothesis is collected when it
    ends with its first EOS (or reaches the limit without one). With ``length_penalty`` > 0
    scores are divided by ((5 + T) / 6) ** penalty before ranking, as JoeyNMT's alpha does.
    """
    config = model.config
    eos = config.eos_id
    batch = src.size(0)
    device = src.device
    keys, projected, mask, state = model.encode(src, lengths)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    keys, projected, mask = keys[expand], projected[expand], mask[expand]
    state = state.index_select(expand)
    n_src = keys.size(1)
    dtype = keys.dtype
    alive = _Alive(
        torch.zeros(batch * k, 0, dtype=torch.long, device=device),
        torch.zeros(batch * k, 0, device=device),
        torch.zeros(batch * k, 0, n_src, dtype=dtype, device=device),
        torch.zeros(batch * k, 0, n_src, dtype=dtype, device=device),
    )
    beam_logprobs = torch.zeros(batch, k, device=device)  # [b, K] cumulative
    beam_logprobs[:, 1:] = float("-inf")  # only the first slot is alive at the start
    marked = torch.zeros(batch, k, dtype=torch.bool, device=device)
    sentences = torch.arange(batch, device=device)  # sentence of each remaining row group
    collected: list[list[tuple[float, list[int], np.ndarray, np.ndarray, np.ndarray]]] = [
        [] for _ in range(batch)
    ]
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)

    for step in range(max(limits)):
        remaining = sentences.size(0)
        logits, state, weights, scores = model.decoder.step(prev, state, keys, projected, mask)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [b*K, V]
        vocab = logprobs.size(-1)
        totals = _restrict(logprobs, rules, step, eos) + beam_logprobs.view(-1, 1)  # [b*K, V]
        if length_penalty > 0:
            penalty = ((5.0 + (step + 1)) / 6.0) ** length_penalty
            top_scores, top_index = (totals / penalty).view(remaining, k * vocab).topk(k, dim=-1)
            beam_logprobs = top_scores * penalty  # as JoeyNMT recovers them
        else:
            top_scores, top_index = totals.view(remaining, k * vocab).topk(k, dim=-1)
            beam_logprobs = top_scores.clone()
        top_token = top_index.fmod(vocab)  # [b, K]
        parents = (
            top_index // vocab + torch.arange(remaining, device=device).unsqueeze(1) * k
        ).view(-1)
        token_logprobs = logprobs[parents, top_token.view(-1)]  # [b*K]
        alive = alive.extend(parents, top_token.view(-1), token_logprobs, weights, scores)

        at_limit = torch.tensor(
            [step + 1 >= limits[int(i)] for i in sentences.tolist()], device=device
        )
        marked = marked | top_token.eq(eos) | top_scores.eq(float("-inf")) | at_limit.unsqueeze(1)
        ended = marked.all(dim=-1)  # [b]
        if bool(marked.any()):
            tokens_np = alive.tokens.cpu().numpy()
            for i in range(remaining):
                sentence = int(sentences[i])
                for j in marked[i].nonzero().view(-1).tolist():
                    row = i * k + j
                    hyp = tokens_np[row]
                    eos_count = int((hyp == eos).sum())
                    if eos_count > 1:
                        continue  # ended at an earlier step and already collected
                    if (eos_count == 0 and bool(at_limit[i])) or (
                        eos_count == 1 and hyp[-1] == eos
                    ):
                        length = int(lengths[sentence])
                        collected[sentence].append(
                            (
                                float(top_scores[i, j]),
                                hyp.tolist(),
                                alive.weights[row, :, :length].float().cpu().numpy(),
                                alive.scores[row, :, :length].float().cpu().numpy(),
                                alive.logprobs[row].float().cpu().numpy(),
                            )
                        )
                if bool(ended[i]):
                    best = sorted(collected[sentence], key=lambda c: c[0], reverse=True)
                    results[sentence] = [
                        Hypothesis(
                            tokens=toks, weights=w, scores=s, token_logprobs=lp, score=score, rank=r
                        )
                        for r, (score, toks, w, s, lp) in enumerate(best[:nbest])
                    ]
            going = (~ended).nonzero().view(-1)
            if going.numel() == 0:
                break
            parents = parents.view(remaining, k).index_select(0, going).view(-1)
            beam_logprobs = beam_logprobs.index_select(0, going)
            marked = marked.index_select(0, going)
            sentences = sentences.index_select(0, going)
            alive = alive.keep(going, k)
        keys, projected, mask = keys[parents], projected[parents], mask[parents]
        state = state.index_select(parents)
        prev = alive.tokens[:, -1]
    return results
