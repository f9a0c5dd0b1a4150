"""JoeyNMT's beam search as first written (slot histories carried along, Python per step):
the reference the batched version in attnviz.decoding is tested against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnviz.decoding import Hypothesis, SearchRules
from attnviz.decoding.rules import restrict
from attnviz.families.rnn.model import RNNModel


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


def reference_beam_joeynmt(
    model: RNNModel,
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
        totals = restrict(logprobs, rules, step, eos) + beam_logprobs.view(-1, 1)  # [b*K, V]
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
                                alive.weights[row, :, None, None, :length].float().cpu().numpy(),
                                alive.scores[row, :, None, None, :length].float().cpu().numpy(),
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
