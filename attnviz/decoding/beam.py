"""Beam search over the batch (attnviz's, and OpenNMT-py's ``best_ended`` variant); models
whose rules name JoeyNMT's beam are handed to :mod:`attnviz.decoding.joeynmt_beam`."""

from __future__ import annotations

import torch

from attnviz.decoding.batch import Rows, start, worth_dropping
from attnviz.decoding.beam_record import BeamRecord
from attnviz.decoding.hypothesis import Hypothesis
from attnviz.decoding.joeynmt_beam import beam_decode_joeynmt
from attnviz.decoding.rules import (
    ATTNVIZ_RULES,
    SearchRules,
    check_prefixes,
    length_limits,
    restrict,
)
from attnviz.errors import UsageError
from attnviz.families.base import Seq2SeqModel
from attnviz.options import DEFAULT_LENGTH_PENALTY

#: A step's best candidates of each sentence, best first, each [R, C]: total log-prob, parent
#: beam, token and the token's log-prob.
_Candidates = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.inference_mode()
def beam_decode(
    model: Seq2SeqModel,
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

    Each step reads the best extensions of a sentence's K beams in order (2K of them; K with
    ``best_ended``): one that ends (EOS, or the length limit) is set aside, the others fill
    the K beams of the next step. A sentence stops once it holds ``beam_size`` finished
    hypotheses (or as ``rules.beam_stop`` says) or reaches its length limit; the ``nbest``
    best by length-normalised score are returned. Models whose rules name another toolkit's
    beam are searched as that toolkit does (without prefixes or top-k). While a sentence is
    inside its ``prefixes`` entry, its beam may only extend the prefix; then search is free.
    ``topk`` records the most likely next tokens of every hypothesis at every step.
    """
    if not 1 <= nbest <= beam_size:  # DecodeOptions checks this for users
        raise ValueError(f"need 1 <= nbest ({nbest}) <= beam_size ({beam_size})")
    check_prefixes(prefixes, src.size(0))
    limits = length_limits(lengths, max_length, rules, prefixes)
    if rules.beam_stop == "all_slots_ended":
        if prefixes is not None or topk:
            raise UsageError(
                "a target prefix or top-k needs attnviz's beam search; this model searches "
                "as its toolkit does: use greedy decoding (beam 1) for them"
            )
        return beam_decode_joeynmt(
            model, src, lengths, beam_size, nbest, limits, length_penalty, rules
        )
    record = _search(model, src, lengths, beam_size, nbest, limits, rules, prefixes, topk)
    return record.hypotheses(lengths.tolist(), nbest, length_penalty, rules)


def _search(
    model: Seq2SeqModel,
    src: torch.Tensor,
    lengths: torch.Tensor,
    k: int,
    nbest: int,
    limits: list[int],
    rules: SearchRules,
    prefixes: list[list[int]] | None,
    topk: int,
) -> BeamRecord:
    """The beam loop, K beams per sentence, rows ``[R*K]``; returns what it recorded."""
    config = model.config
    eos = config.eos_id
    best_ended = rules.beam_stop == "best_ended"
    width = k if best_ended else 2 * k  # candidates read per step
    batch = src.size(0)
    device = src.device
    step, state, rows = start(model, src, lengths, limits, prefixes, beam_size=k)
    cumulative = torch.full((batch, k), float("-inf"), device=device)  # [B, K]
    cumulative[:, 0] = 0.0  # only the first beam is alive at the start
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.long, device=device)  # finished hypotheses so far
    beams = torch.arange(k, device=device)
    record = BeamRecord(k)

    for t in range(max(limits)):
        count = rows.sentences.numel()
        logits, state, weights, scores = step(prev, state, rows.memory)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [R*K, V]
        top = _best_candidates(logprobs, cumulative, rules, t, eos, rows, width)
        at_limit = (rows.limits <= t + 1).unsqueeze(1)  # [R, 1]
        extends, before, kept, ended, done = _read_candidates(
            top, at_limit, ended, eos, k, nbest, best_ended
        )
        new_beam, new_token, new_logprob, cumulative = _next_beams(
            top, extends, before, done, beams, eos
        )
        record.step(
            rows.sentences,
            (weights, scores),
            (new_beam, new_token, new_logprob),
            kept,
            top,
            logprobs.topk(min(topk, logprobs.size(-1)), dim=-1) if topk else None,
        )
        remaining = count - int(done.sum())  # the one read-back per step
        if remaining == 0:
            break
        parents = (new_beam + torch.arange(count, device=device).unsqueeze(1) * k).view(-1)
        prev = new_token.view(-1)
        if worth_dropping(count - remaining, count):
            going = (~done).nonzero().squeeze(1)  # [R']
            going_rows = (going.unsqueeze(1) * k + beams).view(-1)  # [R'*K]
            parents, prev = parents.view(count, k)[going].view(-1), prev[going_rows]
            cumulative, ended = cumulative[going], ended[going]
            rows.keep(going, going if step.grouped else going_rows)
        state = state.index_select(parents)
    return record


def _best_candidates(
    logprobs: torch.Tensor,
    cumulative: torch.Tensor,
    rules: SearchRules,
    t: int,
    eos: int,
    rows: Rows,
    width: int,
) -> _Candidates:
    """The ``width`` best extensions of each sentence's beams (``cumulative [R, K]`` totals,
    ``logprobs [R*K, V]`` of step ``t``) among the tokens the rules and prefixes allow."""
    count, k = cumulative.shape
    vocab = logprobs.size(-1)
    candidates = cumulative.view(-1, 1) + restrict(logprobs, rules, t, eos)  # [R*K, V]
    forced = rows.forced
    if forced is not None and t < forced.size(1):
        candidates = _force_prefix(candidates.view(count, k, vocab), forced, rows.forced_lengths, t)
    top_scores, top_index = candidates.view(count, k * vocab).topk(
        min(width, k * vocab), dim=1
    )  # [R, C], best first
    top_beam = top_index // vocab
    top_token = top_index % vocab
    top_logprob = logprobs.view(count, k * vocab).gather(1, top_index)
    return top_scores, top_beam, top_token, top_logprob


def _read_candidates(
    top: _Candidates,
    at_limit: torch.Tensor,
    ended: torch.Tensor,
    eos: int,
    k: int,
    nbest: int,
    best_ended: bool,
) -> tuple[torch.Tensor, ...]:
    """Read each sentence's candidates in order until K have extended a beam.

    ``at_limit [R, 1]``: the sentence reached its length limit; ``ended [R]``: finished
    hypotheses before this step. Returns, ``[R, C]``: the candidates that extend a beam, how
    many extensions come before each, the ended candidates kept as finished hypotheses; and,
    ``[R]``: finished hypotheses now, the sentences that are done.
    """
    top_scores, _, top_token, _ = top
    alive = top_scores > float("-inf")
    ends = alive & ((top_token == eos) | at_limit)
    extends = alive & ~ends
    before = extends.long().cumsum(1) - extends.long()  # extensions ahead of each
    read = before < k
    ends &= read
    extends &= read
    if best_ended:  # every ended candidate is kept
        kept = ends
    else:  # ended candidates are kept while fewer than K have ended
        position = ended.unsqueeze(1) + ends.long().cumsum(1) - 1  # place among the ended
        kept = ends & (position < k)
    ended = ended + kept.long().sum(1)
    chosen = extends.long().sum(1)
    # best_ended: the step's best candidate has ended and nbest have; else K have ended
    stop = ends[:, 0] & (ended >= nbest) if best_ended else ended >= k
    done = stop | at_limit.squeeze(1) | (chosen == 0)  # [R]
    return extends, before, kept, ended, done


def _next_beams(
    top: _Candidates,
    extends: torch.Tensor,
    before: torch.Tensor,
    done: torch.Tensor,
    beams: torch.Tensor,
    eos: int,
) -> tuple[torch.Tensor, ...]:
    """The next step's beams ``[R, K]``: the extending candidates fill beams 0, 1, ... of their
    sentence. Returns each beam's parent beam, token, log-prob and total (-inf: no beam, or
    the sentence is done)."""
    top_scores, top_beam, top_token, top_logprob = top
    count, k = top_beam.size(0), beams.size(0)
    target = torch.where(extends, before, k)  # column k collects the rest
    new_beam = _fill(beams.expand(count, k), target, top_beam)
    new_token = _fill(torch.full_like(top_beam[:, :k], eos), target, top_token)
    new_logprob = _fill(torch.zeros_like(top_scores[:, :k]), target, top_logprob)
    cumulative = _fill(torch.full_like(top_scores[:, :k], float("-inf")), target, top_scores)
    cumulative = cumulative.masked_fill(done.unsqueeze(1), float("-inf"))
    return new_beam, new_token, new_logprob, cumulative


def _force_prefix(
    candidates: torch.Tensor, forced: torch.Tensor, forced_lengths: torch.Tensor, t: int
) -> torch.Tensor:
    """``candidates [R, K, V]`` where a sentence still inside its prefix (``forced [R, P]``,
    ``forced_lengths [R]``) may only extend it with the prefix's next token -> [R*K, V]."""
    rows, k, vocab = candidates.shape
    token = forced[:, t].view(rows, 1, 1).expand(rows, k, 1)  # [R, K, 1]
    only = torch.full_like(candidates, float("-inf")).scatter(2, token, candidates.gather(2, token))
    inside = (t < forced_lengths).view(rows, 1, 1)
    return torch.where(inside, only, candidates).view(rows * k, vocab)


def _fill(base: torch.Tensor, target: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``base [R, K]`` with ``values[r, c]`` written at column ``target[r, c]`` (K: dropped)."""
    wide = torch.cat([base, base[:, :1]], dim=1)  # [R, K+1]
    return wide.scatter(1, target, values)[:, :-1].contiguous()
