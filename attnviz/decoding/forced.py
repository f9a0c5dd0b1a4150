"""Forced decoding: each reference fed to the decoder token by token (teacher forcing)."""

from __future__ import annotations

import torch

from attnviz.decoding.batch import Recorder, start
from attnviz.decoding.hypothesis import Hypothesis, one_each
from attnviz.decoding.rules import ATTNVIZ_RULES, SearchRules
from attnviz.families.base import Seq2SeqModel, pad_batch
from attnviz.options import DEFAULT_LENGTH_PENALTY


@torch.inference_mode()
def forced_decode(
    model: Seq2SeqModel,
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
    step, state, rows = start(model, src, lengths)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=src.device)
    record = Recorder(batch, src.device)
    for t in range(padded.size(1)):
        logits, state, weights, scores = step(prev, state, rows.memory)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        chosen = logprobs.gather(1, padded[:, t : t + 1]).squeeze(1)  # [B]
        extra = logprobs.topk(min(topk, logprobs.size(-1)), dim=-1) if topk else ()
        record.add(None, weights, scores, chosen, *extra)
        prev = padded[:, t]
    weights = record.floats(0)  # [B, T, L, H, N]
    scores = record.floats(1)
    logprobs = record.floats(2)  # [B, T]
    topk_logprobs, topk_ids = (record.floats(3), record.ids(4)) if topk else (None, None)
    return one_each(
        targets, weights, scores, logprobs, topk_ids, topk_logprobs, lengths, length_penalty, rules
    )
