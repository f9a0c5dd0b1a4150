"""JoeyNMT 2's beam search (``beam_stop="all_slots_ended"``), batched, attention kept."""

from __future__ import annotations

import torch

from attnviz.decoding.batch import start
from attnviz.decoding.beam_record import BeamRecord
from attnviz.decoding.hypothesis import Hypothesis
from attnviz.decoding.rules import SearchRules, restrict
from attnviz.families.base import Seq2SeqModel


def beam_decode_joeynmt(
    model: Seq2SeqModel,
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
    Like :func:`beam_decode`, the loop reads back one number per step and rebuilds the
    collected hypotheses from back-pointers at the end.
    """
    config = model.config
    eos = config.eos_id
    batch = src.size(0)
    device = src.device
    step_function, state, rows = start(model, src, lengths, limits, beam_size=k)
    beam_logprobs = torch.zeros(batch, k, device=device)  # [b, K] cumulative
    beam_logprobs[:, 1:] = float("-inf")  # only the first slot is alive at the start
    marked = torch.zeros(batch, k, dtype=torch.bool, device=device)
    eos_count = torch.zeros(batch, k, dtype=torch.long, device=device)  # EOS in each history
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)
    record = BeamRecord(k)

    for step in range(max(limits)):
        remaining = rows.sentences.size(0)
        logits, state, weights, scores = step_function(prev, state, rows.memory)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [b*K, V]
        top, beam_logprobs = _best_extensions(
            logprobs, beam_logprobs, rules, step, eos, length_penalty
        )
        _, top_beam, top_token, top_logprob = top
        at_limit = (rows.limits <= step + 1).unsqueeze(1)  # [b, 1]
        marked, eos_count, collect = _mark_slots(top, marked, eos_count, at_limit, eos)
        ended = marked.all(dim=-1)  # [b]
        choice = (top_beam, top_token, top_logprob)
        record.step(rows.sentences, (weights, scores), choice, collect, top)
        going_count = remaining - int(ended.sum())  # the one read-back per step
        if going_count == 0:
            break
        parents = (top_beam + torch.arange(remaining, device=device).unsqueeze(1) * k).view(-1)
        prev = top_token.view(-1)
        if going_count < remaining:
            going = (~ended).nonzero().squeeze(1)  # [b']
            going_rows = (going.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            parents, prev = parents.view(remaining, k)[going].view(-1), prev[going_rows]
            beam_logprobs, marked, eos_count = beam_logprobs[going], marked[going], eos_count[going]
            rows.keep(going, going if step_function.grouped else going_rows)
        state = state.index_select(parents)
    return record.hypotheses(lengths.tolist(), nbest, length_penalty, rules, final_scores=True)


def _best_extensions(
    logprobs: torch.Tensor,
    beam_logprobs: torch.Tensor,
    rules: SearchRules,
    step: int,
    eos: int,
    length_penalty: float,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """The K best extensions of each sentence's slots (``beam_logprobs [b, K]`` totals,
    ``logprobs [b*K, V]``), ranked by length-penalised total as JoeyNMT ranks them.

    Returns their (score, parent slot, token, log-prob) ``[b, K]`` and the new slot totals.
    """
    remaining, k = beam_logprobs.shape
    vocab = logprobs.size(-1)
    totals = restrict(logprobs, rules, step, eos) + beam_logprobs.view(-1, 1)  # [b*K, V]
    if length_penalty > 0:
        penalty = ((5.0 + (step + 1)) / 6.0) ** length_penalty
        top_scores, top_index = (totals / penalty).view(remaining, k * vocab).topk(k, dim=-1)
        beam_logprobs = top_scores * penalty  # as JoeyNMT recovers them
    else:
        top_scores, top_index = totals.view(remaining, k * vocab).topk(k, dim=-1)
        beam_logprobs = top_scores
    top_beam = top_index // vocab  # [b, K] parent slot
    top_token = top_index % vocab
    top_logprob = logprobs.view(remaining, k * vocab).gather(1, top_index)
    return (top_scores, top_beam, top_token, top_logprob), beam_logprobs


def _mark_slots(
    top: tuple[torch.Tensor, ...],
    marked: torch.Tensor,
    eos_count: torch.Tensor,
    at_limit: torch.Tensor,
    eos: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The slots marked ended ``[b, K]``, the EOS count of each slot's new history, and the
    hypotheses collected now: in a marked slot, ending with their first EOS, or at the length
    limit (``at_limit [b, 1]``) without one."""
    top_scores, top_beam, top_token, _ = top
    is_eos = top_token == eos
    eos_count = eos_count.gather(1, top_beam) + is_eos.long()
    # marks stay with the slot position (not with the hypothesis that moves into it)
    marked = marked | is_eos | (top_scores == float("-inf")) | at_limit
    collect = marked & (((eos_count == 1) & is_eos) | ((eos_count == 0) & at_limit))
    return marked, eos_count, collect
