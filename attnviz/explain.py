"""One decoder step laid out with the model's real numbers.

:func:`explain_steps` runs the real model step by step (its own ``decoder.step``), forced along
given target tokens or greedy, and reads at each step the query the attention module received
and its output; the intermediates (``W q``, ``U h_j``, ``tanh(W q + U h_j)``, ``W_a h_j``) come
from the attention module's own layers. The result is a :class:`StepExplanation` of numpy
arrays per step: no torch downstream.

Shapes follow the course notes: ``B`` batch (1 here), ``N`` source tokens, ``H`` encoder output
size, ``Q`` decoder state size (the query), ``D`` attention size, ``V`` target vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import InputError, UsageError

if TYPE_CHECKING:
    import torch

    from attnviz.families.rnn.model import RNNModel
    from attnviz.translator import Translator

DEFAULT_TOPK = 5

# per scorer: the intermediates drawn for each source position, in order
PER_SOURCE = {
    "additive": ("projected_keys", "hidden"),
    "dot": ("keys",),
    "general": ("projected_keys",),
}
SCORE_FORMULAS = {
    "additive": "score_j = vᵀ tanh(W q + U h_j)",
    "dot": "score_j = qᵀ h_j",
    "general": "score_j = qᵀ W_a h_j",
}


@dataclass(frozen=True, eq=False)
class StepExplanation:
    """What happened inside one decoder step. Arrays are numpy, batch dimension dropped.

    query [Q]; keys [N, H]; projected_query [D] (additive: W q); projected_keys [N, D]
    (additive: U h_j) or [N, Q] (general: W_a h_j); hidden [N, D] (additive: tanh(W q + U h_j));
    v [D] (additive); scores, weights [N]; context [H]; attentional [Q]; ``topk`` the most
    likely next tokens as (token, probability), most likely first.
    """

    scorer: str
    step: int  # 0-based: the row of the Alignment this step produced
    src_tokens: list[str]
    prefix_tokens: list[str]  # target tokens fed before this step (BOS left out)
    target_token: str  # the token emitted (or forced) at this step
    target_logprob: float
    forced: bool  # whether target_token was forced rather than chosen greedily
    query: np.ndarray
    keys: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    context: np.ndarray
    attentional: np.ndarray
    topk: list[tuple[str, float]]
    vocab_size: int
    attentional_formula: str
    projected_query: np.ndarray | None = None
    projected_keys: np.ndarray | None = None
    hidden: np.ndarray | None = None
    v: np.ndarray | None = None

    # -- sizes and labels ------------------------------------------------------------------

    @property
    def sizes(self) -> dict[str, int]:
        sizes = {
            "N": len(self.src_tokens),
            "H": int(self.keys.shape[1]),
            "Q": int(self.query.shape[0]),
            "V": self.vocab_size,
        }
        if self.projected_query is not None:
            sizes["D"] = int(self.projected_query.shape[0])
        return sizes

    @property
    def score_formula(self) -> str:
        return SCORE_FORMULAS[self.scorer]

    @property
    def per_source(self) -> tuple[str, ...]:
        return PER_SOURCE[self.scorer]

    def labels(self) -> dict[str, dict[str, str]]:
        """Per intermediate: its ``name`` (formula), ``shape`` in course-notes letters,
        ``size`` in numbers, and ``width`` (the letter of its last dimension)."""
        n, h, q = self.sizes["N"], self.sizes["H"], self.sizes["Q"]
        labels = {
            "query": ("q, the decoder state after the RNN", "[B,1,Q]", f"[1,1,{q}]", "Q"),
            "keys": ("h_j, encoder output", "[B,N,H]", f"[1,{n},{h}]", "H"),
            "scores": (self.score_formula, "[B,N]", f"[1,{n}]", "N"),
            "weights": ("α_j = softmax_j(score)", "[B,N]", f"[1,{n}]", "N"),
            "context": ("c = Σ_j α_j h_j", "[B,1,N]·[B,N,H]→[B,H]", f"[1,{h}]", "H"),
            "attentional": (self.attentional_formula, "[B,H+Q]→[B,Q]", f"[1,{q}]", "Q"),
            "topk": (
                "next token: softmax(W_o h̃ + b_o), most likely first",
                "[B,Q]→[B,V]",
                f"[1,{self.vocab_size}]",
                "V",
            ),
        }
        if self.scorer == "additive":
            d = self.sizes["D"]
            labels["projected_query"] = ("W q", "[B,1,Q]→[B,1,D]", f"[1,1,{d}]", "D")
            labels["projected_keys"] = ("U h_j", "[B,N,H]→[B,N,D]", f"[1,{n},{d}]", "D")
            labels["hidden"] = ("tanh(W q + U h_j)", "[B,N,D]", f"[1,{n},{d}]", "D")
            labels["v"] = ("v", "[D]", f"[{d}]", "D")
        elif self.scorer == "general":
            labels["projected_keys"] = ("W_a h_j", "[B,N,H]→[B,N,Q]", f"[1,{n},{q}]", "Q")
        return {
            key: {"name": name, "shape": shape, "size": size, "width": width}
            for key, (name, shape, size, width) in labels.items()
        }

    # -- serialisation ---------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """Every intermediate that this scorer has, by name."""
        names = ["query", "keys", "projected_query", "projected_keys", "hidden", "v"]
        names += ["scores", "weights", "context", "attentional"]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def to_dict(self, dims: int | None = None, decimals: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict; with ``dims``, vectors keep only their first ``dims`` values
        (scores and weights are always whole); with ``decimals``, numbers are rounded."""
        record: dict[str, Any] = {
            "scorer": self.scorer,
            "step": self.step,
            "src": list(self.src_tokens),
            "prefix": list(self.prefix_tokens),
            "target": self.target_token,
            "logprob": float(self.target_logprob),
            "forced": self.forced,
            "formula": self.score_formula,
            "per_source": list(self.per_source),
            "sizes": self.sizes,
            "labels": self.labels(),
            "dims": dims,
            "topk": [
                [token, round(float(p), decimals) if decimals is not None else float(p)]
                for token, p in self.topk
            ],
        }
        for name, array in self.arrays().items():
            if dims is not None and name not in ("scores", "weights"):
                array = array[..., :dims]
            array = array.astype(np.float64)
            record[name] = (np.round(array, decimals) if decimals is not None else array).tolist()
        return record

    def to_json(self) -> str:
        """Every intermediate in full, as one JSON object."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False)


def _attentional_formula(config: Any) -> str:
    inner = "[c; q]" if config.attn_concat_order == "context_first" else "[q; c]"
    inner = f"W_c {inner}" + (" + b_c" if config.attn_out_bias else "")
    return f"h̃ = tanh({inner})" if config.attn_out_tanh else f"h̃ = {inner}"


def _vector(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().double().cpu().numpy().copy()


def _scorer_parts(scorer: str, attention: Any, query: Any, projected: Any) -> dict[str, Any]:
    """The scorer's own intermediates for one step: query [1, Q], projected keys [1, N, *]."""
    import torch

    if scorer == "additive":
        projected_query = attention.W(query)  # [1, Q] -> [1, D]
        hidden = torch.tanh(projected_query.unsqueeze(1) + projected)  # [1, 1, D] + [1, N, D]
        return {
            "projected_query": _vector(projected_query[0]),
            "projected_keys": _vector(projected[0]),  # U h_j, [N, D]
            "hidden": _vector(hidden[0]),  # [N, D]
            "v": _vector(attention.v),
        }
    if scorer == "general":
        return {"projected_keys": _vector(projected[0])}  # W_a h_j, [N, Q]
    return {}


def explain_ids(
    model: RNNModel,
    source_ids: Sequence[int],
    *,
    forced: Sequence[int] = (),
    steps: int | None = None,
    topk: int = DEFAULT_TOPK,
    piece: Callable[[int], str] = str,
    src_tokens: Sequence[str] | None = None,
    max_steps: int | None = None,
) -> list[StepExplanation]:
    """Run ``model`` on one sentence and explain each decoder step.

    The first ``len(forced)`` target tokens are forced, then decoding is greedy until EOS (or
    ``max_steps``); with ``steps`` only that many steps are run. ``piece`` names a target id.
    """
    import torch

    from attnviz.decoding import max_output_length

    if topk < 1:
        raise UsageError(f"top-k must be at least 1, not {topk}")
    config = model.config
    attention = model.decoder.attention
    device = next(model.parameters()).device
    limit = (
        max_steps if max_steps is not None else max(max_output_length(len(source_ids)), len(forced))
    )
    if steps is not None:
        limit = min(limit, steps)
    tokens = list(src_tokens) if src_tokens is not None else [str(i) for i in source_ids]
    seen: dict[str, Any] = {}

    def capture(module: Any, args: tuple[Any, ...], output: Any) -> None:
        # the attention module is called as (query, keys, mask, projected_keys)
        seen["query"], seen["context"] = args[0], output[0]

    results: list[StepExplanation] = []
    handle = attention.register_forward_hook(capture)
    try:
        with torch.inference_mode():
            src = torch.tensor([list(source_ids)], dtype=torch.long, device=device)  # [1, N]
            lengths = torch.tensor([len(source_ids)], dtype=torch.long)
            keys, projected, mask, state = model.encode(src, lengths)
            prev = torch.full((1,), config.bos_id, dtype=torch.long, device=device)
            emitted: list[str] = []
            for t in range(limit):
                logits, state, weights, scores = model.decoder.step(
                    prev, state, keys, projected, mask
                )
                query = seen["query"]  # [1, Q]
                logprobs = torch.log_softmax(logits.float(), dim=-1)[0]  # [V], as decoding does
                is_forced = t < len(forced)
                token = int(forced[t]) if is_forced else int(logprobs.argmax())
                top_logprob, top_index = logprobs.topk(min(topk, logprobs.numel()))
                parts = _scorer_parts(config.attention, attention, query, projected)
                results.append(
                    StepExplanation(
                        scorer=config.attention,
                        step=t,
                        src_tokens=tokens,
                        prefix_tokens=list(emitted),
                        target_token=piece(token),
                        target_logprob=float(logprobs[token]),
                        forced=is_forced,
                        query=_vector(query[0]),
                        keys=_vector(keys[0]),
                        scores=_vector(scores[0]),
                        weights=_vector(weights[0]),
                        context=_vector(seen["context"][0]),
                        attentional=_vector(state.attentional[0]),
                        topk=[
                            (piece(int(i)), float(np.exp(float(lp))))
                            for lp, i in zip(top_logprob, top_index, strict=True)
                        ],
                        vocab_size=int(logits.size(-1)),
                        attentional_formula=_attentional_formula(config),
                        **parts,
                    )
                )
                emitted.append(piece(token))
                if not is_forced and token == config.eos_id:
                    break
                prev = torch.full((1,), token, dtype=torch.long, device=device)
    finally:
        handle.remove()
    return results


# -- on a loaded Translator -----------------------------------------------------------------


def _source(translator: Translator, text: str) -> tuple[list[int], list[str]]:
    config = translator.config
    ids, tokens = translator.source_tokens(text)
    if not [i for i in ids if i != config.eos_id]:
        raise InputError("nothing to explain: the sentence is empty")
    return ids, tokens


def _piece(tokenizer: Any, config: Any, index: int) -> str:
    if index == config.eos_id:
        return "</s>"
    if index == config.unk_id:
        return "<unk>"
    return tokenizer.id_to_piece(index)


def explain_steps(
    translator: Translator,
    text: str,
    *,
    prefix: str | None = None,
    forced_tokens: Sequence[str] | None = None,
    steps: int | None = None,
    topk: int = DEFAULT_TOPK,
) -> list[StepExplanation]:
    """Explain every decoder step of ``text``'s translation.

    Decoding is greedy, after forcing the tokens of ``prefix`` (target text) or the given
    ``forced_tokens`` (target pieces, e.g. a beam hypothesis's ``tgt_tokens``).
    """
    if prefix is not None and forced_tokens is not None:
        raise UsageError("give a target prefix or forced tokens, not both")
    source_ids, src_tokens = _source(translator, text)
    if forced_tokens is not None:
        forced = translator.target_ids(forced_tokens)
    elif prefix is not None:
        forced = translator.tgt_tokenizer.encode(prefix)
    else:
        forced = []
    config = translator.config
    return explain_ids(
        translator.model,
        source_ids,
        forced=forced,
        steps=steps,
        topk=topk,
        piece=lambda i: _piece(translator.tgt_tokenizer, config, i),
        src_tokens=src_tokens,
        max_steps=len(forced) if forced_tokens is not None else None,
    )


def explain_step(
    translator: Translator,
    text: str,
    step: int = 0,
    *,
    prefix: str | None = None,
    topk: int = DEFAULT_TOPK,
) -> StepExplanation:
    """Explain decoder step ``step`` (0-based) of the greedy translation of ``text``."""
    if step < 0:
        raise UsageError(f"step must be 0 or more, not {step}")
    explained = explain_steps(translator, text, prefix=prefix, steps=step + 1, topk=topk)
    if step >= len(explained):
        raise UsageError(
            f"the translation has {len(explained)} steps; step must be below {len(explained)}"
        )
    return explained[-1]
