"""Greedy decoding: the most likely allowed token at every step, the whole batch at once."""

from __future__ import annotations

import numpy as np
import torch

from attnviz.decoding.batch import Recorder, Rows, start, worth_dropping
from attnviz.decoding.hypothesis import Hypothesis, one_each
from attnviz.decoding.rules import (
    ATTNVIZ_RULES,
    SearchRules,
    check_prefixes,
    length_limits,
    restrict,
)
from attnviz.families.base import Seq2SeqModel
from attnviz.options import DEFAULT_LENGTH_PENALTY


@torch.inference_mode()
def greedy_decode(
    model: Seq2SeqModel,
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
    check_prefixes(prefixes, src.size(0))
    limits = length_limits(lengths, max_length, rules, prefixes)
    record = _search(model, src, lengths, limits, rules, prefixes, topk)

    # rows that left early keep EOS/zeros after their end, which is cut off below
    eos = model.config.eos_id
    tokens = record.ids(0, eos)  # [B, T]
    weights = record.floats(1)  # [B, T, L, H, N]
    scores = record.floats(2)
    logprobs = record.floats(3)  # [B, T]
    topk_logprobs, topk_ids = (record.floats(4), record.ids(5)) if topk else (None, None)
    stops = _stops(tokens, eos, np.asarray(limits))
    kept = [tokens[b, : int(stop)].tolist() for b, stop in enumerate(stops)]
    return one_each(
        kept, weights, scores, logprobs, topk_ids, topk_logprobs, lengths, length_penalty, rules
    )


def _search(
    model: Seq2SeqModel,
    src: torch.Tensor,
    lengths: torch.Tensor,
    limits: list[int],
    rules: SearchRules,
    prefixes: list[list[int]] | None,
    topk: int,
) -> Recorder:
    """The decoding loop. Records per step: token, weights, scores and log-prob of each row
    (and with ``topk`` the top-k log-probs and ids); a finished row stops being recorded."""
    config = model.config
    eos = config.eos_id
    batch = src.size(0)
    device = src.device
    step, state, rows = start(model, src, lengths, limits, prefixes)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    record = Recorder(batch, device)
    shrunk = False
    for t in range(max(limits)):
        logits, state, weights, scores = step(prev, state, rows.memory)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [R, V]
        best, best_logprob = _choose(logprobs, rules, t, eos, rows)
        extra = logprobs.topk(min(topk, logprobs.size(-1)), dim=-1) if topk else ()
        record.add(rows.sentences if shrunk else None, best, weights, scores, best_logprob, *extra)
        finished = finished | (best == eos) | (rows.limits <= t + 1)
        prev = best
        done = int(finished.sum())  # the one read-back per step
        if done == finished.numel():
            break
        if worth_dropping(done, finished.numel()):
            going = (~finished).nonzero().squeeze(1)
            prev, finished = prev[going], finished[going]
            rows.keep(going, going)
            state = state.index_select(going)
            shrunk = True
    return record


def _choose(
    logprobs: torch.Tensor, rules: SearchRules, t: int, eos: int, rows: Rows
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``t``'s token of every row and its log-prob ``[R]``: the prefix's token while a
    sentence is inside its prefix, else the most likely one the rules allow."""
    allowed = restrict(logprobs, rules, t, eos)
    forced = rows.forced
    if allowed is logprobs and forced is None:
        best_logprob, best = logprobs.max(dim=-1)  # [R]
        return best, best_logprob
    best = allowed.argmax(dim=-1)  # [R]
    if forced is not None and t < forced.size(1):
        best = torch.where(t < rows.forced_lengths, forced[:, t], best)
    return best, logprobs.gather(1, best.unsqueeze(1)).squeeze(1)  # [R]


def _stops(tokens: np.ndarray, eos: int, limits: np.ndarray) -> np.ndarray:
    """Per row of ``tokens [B, T]``: tokens kept, up to the first EOS (included) or the limit."""
    is_eos = tokens == eos
    first = np.where(is_eos.any(axis=1), is_eos.argmax(axis=1) + 1, tokens.shape[1])
    return np.minimum(first, limits)
