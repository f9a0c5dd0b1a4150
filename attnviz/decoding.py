"""Batched greedy, beam and forced decoding that keep every hypothesis's attention.

Inputs are padded id tensors ``src [B, N]`` with ``lengths [B]``. Each function returns, per
sentence, a list of :class:`Hypothesis` (best first) whose ``weights``/``scores`` are
``[T, length]``: one row per emitted target token, real source positions only.

A sentence's result never depends on the other sentences of its batch: the encoder packs
padding away, attention masks it, and the output length limit is per sentence.

How hypotheses are searched and scored follows the model's :class:`SearchRules` (attnviz's
own by default; an imported model's toolkit's otherwise).

The loops stay on the device: per step they read back one number (how many sentences are
done), sentences that are done leave the batch, and everything recorded goes to the host
once, after the last step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from attnviz.attention import AdditiveAttention, DotAttention, GeneralAttention
from attnviz.errors import ConfigError, UsageError
from attnviz.model import DecoderState, ModelConfig, Seq2Seq, pad_batch
from attnviz.options import DEFAULT_LENGTH_PENALTY

#: Drop finished rows from the batch once at least this share of them is done.
COMPACT_SHARE = 0.25

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


# -- the decoder step for inference -----------------------------------------------------------

# The config fields whose every value _FastStep implements; a field added later falls back to
# AttnDecoder.step unless it has its default value.
_FAST_FIELDS = frozenset(
    {
        "src_vocab_size",
        "tgt_vocab_size",
        "embedding_size",
        "hidden_size",
        "decoder_hidden_size",
        "attention_size",
        "attention",
        "rnn",
        "encoder_layers",
        "decoder_layers",
        "bidirectional",
        "dropout",
        "input_feeding",
        "attn_concat_order",
        "attn_out_bias",
        "attn_out_tanh",
        "src_eos",
        "output_bias",
        "decoder_init",
        "tgt_embedding_size",
        "attn_query_bias",
        "pad_id",
        "unk_id",
        "bos_id",
        "eos_id",
    }
)


def _fast_step_applies(model: Seq2Seq) -> bool:
    config = model.config
    for field in dataclasses.fields(ModelConfig):
        if field.name in _FAST_FIELDS:
            continue
        if field.default is dataclasses.MISSING or getattr(config, field.name) != field.default:
            return False
    decoder = model.decoder
    rnn = decoder.rnn
    return (
        not (decoder.training and config.dropout > 0)
        and type(decoder.attention) in (AdditiveAttention, DotAttention, GeneralAttention)
        and isinstance(rnn, torch.nn.GRU | torch.nn.LSTM)
        and rnn.bias
        and not rnn.bidirectional
        and getattr(rnn, "proj_size", 0) == 0
    )


class _FastStep:
    """:meth:`AttnDecoder.step` for inference (no dropout), the same maths in fewer operations.

    The first RNN layer's input is ``[embedding(prev); attentional]``: its embedding half and
    the input bias are folded into one table ``[V, G*Q]`` (G = 3 gates for a GRU, 4 for an
    LSTM), so a step looks its row up instead of running a matrix product.

    In float64 the cells are torch's fused ``gru_cell``/``lstm_cell``. Below float64, tanh is
    computed as ``2 sigmoid(2x) - 1`` with the factor 2 folded into the weights (torch's
    float32 tanh is several times slower than its sigmoid on the CPU; the two differ by at
    most 2e-7): an LSTM's four gates then come from one matrix product and one sigmoid, the
    additive scorer's ``v . tanh(a)`` is ``2 v . sigmoid(2a) - sum(v)``.
    """

    def __init__(self, model: Seq2Seq) -> None:
        decoder = model.decoder
        config = model.config
        self.exact = decoder.embedding.weight.dtype == torch.float64
        cells = _ExactCells if self.exact else _SigmoidCells
        self.cells = cells(decoder.rnn, decoder.embedding.weight, config)
        attention = decoder.attention
        self.attention = attention
        self.additive = None
        if isinstance(attention, AdditiveAttention):
            factor = 1 if self.exact else 2
            bias = attention.W.bias
            self.additive = (
                factor * attention.W.weight,  # [D, Q]
                None if bias is None else factor * bias,
                attention.v,  # [D]
                attention.v.sum(),
            )
        self.context_first = config.attn_concat_order == "context_first"
        self.tanh = config.attn_out_tanh
        weight, bias = decoder.combine.weight, decoder.combine.bias
        if self.tanh and not self.exact:
            weight, bias = 2 * weight, None if bias is None else 2 * bias
        self.combine = (weight, bias)
        self.output = (decoder.output.weight, decoder.output.bias)

    #: keys, projected keys and padding may be given once per group of K consecutive rows
    grouped = True

    def __call__(
        self,
        prev_tokens: torch.Tensor,
        state: DecoderState,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        padding: torch.Tensor,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """prev_tokens [R]; keys [G, N, H], projected keys [G, N, *] and padding [G, N] (True
        at padding) shared by K = R / G consecutive rows (the beams of a sentence) -> logits
        [R, V], new state, weights [R, N], scores [R, N]."""
        query, rnn_state = self.cells(prev_tokens, state)  # query [R, Q]: top layer's state
        rows, groups = query.size(0), keys.size(0)
        grouped = query.view(groups, rows // groups, -1)  # [G, K, Q]
        if self.additive is not None:
            weight, bias, v, v_sum = self.additive
            hidden = F.linear(grouped, weight, bias).unsqueeze(2) + projected_keys.unsqueeze(1)
            if self.exact:  # [G, K, N, D]: W q + U h
                scores = hidden.tanh_() @ v  # [G, K, N]
            else:  # [G, K, N, D]: 2 W q + 2 U h
                scores = (hidden.sigmoid_() @ v).mul_(2).sub_(v_sum)
        else:  # dot and general: q . (W_a) h
            scores = torch.bmm(grouped, projected_keys.transpose(1, 2))  # [G, K, N]
        masked = scores.masked_fill(padding.unsqueeze(1), float("-inf"))
        weights = torch.softmax(masked, dim=-1)  # [G, K, N]
        context = torch.bmm(weights, keys).view(rows, -1)  # [G, K, N] @ [G, N, H] -> [R, H]
        weights, scores = weights.view(rows, -1), scores.view(rows, -1)
        parts = [context, query] if self.context_first else [query, context]
        attentional = F.linear(torch.cat(parts, dim=-1), *self.combine)  # [B, Q]
        if self.tanh:
            attentional = (
                torch.tanh(attentional)
                if self.exact
                else torch.sigmoid(attentional).mul_(2).sub_(1)  # the 2 is in the weights
            )
        logits = F.linear(attentional, *self.output)  # [B, V]
        return logits, DecoderState(rnn_state, attentional), weights, scores

    def prepare_keys(self, projected_keys: torch.Tensor) -> torch.Tensor:
        """The scorer's projected keys (from Seq2Seq.encode) in the form __call__ wants."""
        if self.additive is not None and not self.exact:
            return projected_keys * 2
        return projected_keys


def _layer_weights(rnn: torch.nn.RNNBase, layer: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        getattr(rnn, f"{name}_l{layer}")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


class _ExactCells:
    """The decoder RNN with torch's fused cells (exact tanh), layer 0 fed by the table."""

    def __init__(self, rnn: torch.nn.RNNBase, embedding: torch.Tensor, config) -> None:
        self.lstm = config.rnn == "lstm"
        w_ih, _, b_ih, _ = _layer_weights(rnn, 0)  # w_ih [G*Q, E (+ Q)]
        size = embedding.size(1)
        self.table = F.linear(embedding, w_ih[:, :size], b_ih)  # [V, G*Q]
        self.feed_weight = w_ih[:, size:]  # [G*Q, Q], or [G*Q, 0] without input feeding
        self.layers = [_layer_weights(rnn, layer) for layer in range(config.decoder_layers)]

    def __call__(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[Any, Any]:
        input_bias = self.table.index_select(0, prev_tokens)  # [B, G*Q]
        feed = state.attentional[:, : self.feed_weight.size(1)]  # [B, Q] or [B, 0]
        if self.lstm:
            hidden, cell = state.rnn  # [L, B, Q] each
            hiddens, cells = [], []
            for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
                if layer == 0:
                    h, c = torch.lstm_cell(
                        feed, (hidden[0], cell[0]), self.feed_weight, w_hh, input_bias, b_hh
                    )
                else:
                    h, c = torch.lstm_cell(h, (hidden[layer], cell[layer]), w_ih, w_hh, b_ih, b_hh)
                hiddens.append(h)
                cells.append(c)
            return h, (torch.stack(hiddens), torch.stack(cells))
        hidden = state.rnn
        hiddens = []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            if layer == 0:
                h = torch.gru_cell(feed, hidden[0], self.feed_weight, w_hh, input_bias, b_hh)
            else:
                h = torch.gru_cell(h, hidden[layer], w_ih, w_hh, b_ih, b_hh)
            hiddens.append(h)
        return h, torch.stack(hiddens)


class _SigmoidCells:
    """The decoder RNN in plain operations, tanh(x) as 2 sigmoid(2x) - 1.

    LSTM: the gates are reordered to (i, f, o, g) with g's rows doubled, the input and
    recurrent weights of a layer are stacked side by side, so ``[x; h] @ W`` and one sigmoid
    give all four gates. GRU: the n gate's rows are doubled; ``h' = lerp(n, h, z)``.
    """

    def __init__(self, rnn: torch.nn.RNNBase, embedding: torch.Tensor, config) -> None:
        self.lstm = config.rnn == "lstm"
        q = config.decoder_hidden_size
        size = embedding.size(1)
        if self.lstm:  # torch's order is (i, f, g, o)
            order = torch.cat(
                [torch.arange(0, 2 * q), torch.arange(3 * q, 4 * q), torch.arange(2 * q, 3 * q)]
            ).to(embedding.device)
            scale = torch.ones(4 * q, 1, dtype=embedding.dtype, device=embedding.device)
            scale[3 * q :] = 2.0
        else:  # (r, z, n)
            order = torch.arange(3 * q, device=embedding.device)
            scale = torch.ones(3 * q, 1, dtype=embedding.dtype, device=embedding.device)
            scale[2 * q :] = 2.0
        self.q = q
        self.layers = []
        for layer in range(config.decoder_layers):
            w_ih, w_hh, b_ih, b_hh = (
                t[order] * (scale if t.dim() == 2 else scale[:, 0])
                for t in _layer_weights(rnn, layer)
            )
            if layer == 0:
                self.table = F.linear(embedding, w_ih[:, :size], b_ih)  # [V, G*Q]
                w_ih = w_ih[:, size:]  # the attentional part (input feeding), or [G*Q, 0]
                if self.lstm:
                    self.table = self.table + b_hh
            if self.lstm:  # one product for [x; h]
                joined = torch.cat([w_ih, w_hh], dim=1).t()  # [In + Q, 4Q]
                self.layers.append((joined, None if layer == 0 else b_ih + b_hh))
            else:
                self.layers.append((w_ih.t(), w_hh.t(), None if layer == 0 else b_ih, b_hh))
        self.feed = self.layers[0][0].size(0) - (q if self.lstm else 0)

    def __call__(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[Any, Any]:
        q = self.q
        input_bias = self.table.index_select(0, prev_tokens)  # [B, G*Q]
        x = state.attentional[:, : self.feed]  # [B, Q] or [B, 0]
        if self.lstm:
            hidden, cell = state.rnn  # [L, B, Q] each
            hiddens, cells = [], []
            for layer, (joined, bias) in enumerate(self.layers):
                inputs = torch.cat([x, hidden[layer]], dim=1)  # [B, In + Q]
                base = input_bias if layer == 0 else bias
                gates = torch.sigmoid(torch.addmm(base, inputs, joined))  # [B, 4Q]
                g = gates[:, 3 * q :].mul(2).sub_(1)
                c = torch.addcmul(gates[:, q : 2 * q] * cell[layer], gates[:, :q], g)
                x = gates[:, 2 * q : 3 * q] * torch.sigmoid(c * 2).mul_(2).sub_(1)
                hiddens.append(x)
                cells.append(c)
            return x, (torch.stack(hiddens), torch.stack(cells))
        hidden = state.rnn
        hiddens = []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            base = input_bias if layer == 0 else b_ih
            gi = torch.addmm(base, x, w_ih) if w_ih.size(0) else base  # [B, 3Q]
            gh = torch.addmm(b_hh, hidden[layer], w_hh)  # [B, 3Q]
            rz = torch.sigmoid(gi[:, : 2 * q] + gh[:, : 2 * q])  # [B, 2Q]
            n = torch.sigmoid(torch.addcmul(gi[:, 2 * q :], rz[:, :q], gh[:, 2 * q :]))
            x = torch.lerp(n.mul_(2).sub_(1), hidden[layer], rz[:, q:])  # (1 - z) n + z h
            hiddens.append(x)
        return x, torch.stack(hiddens)


class _PlainStep:
    """:meth:`AttnDecoder.step` behind the interface of :class:`_FastStep`, with one row of
    keys per decoder row."""

    grouped = False

    def __init__(self, model: Seq2Seq) -> None:
        self.decoder = model.decoder

    def __call__(self, prev_tokens, state, keys, projected_keys, padding):
        return self.decoder.step(prev_tokens, state, keys, projected_keys, ~padding)

    def prepare_keys(self, projected_keys: torch.Tensor) -> torch.Tensor:
        return projected_keys


def _step_function(model: Seq2Seq) -> _FastStep | _PlainStep:
    """The step used by the decoding loops: (prev, state, keys, projected, padding) -> ...

    The fast step is built once per set of weights (a table lookup replaces a matrix product)
    and rebuilt when a parameter changes (optimizer steps bump tensor versions).
    """
    if not _fast_step_applies(model):
        return _PlainStep(model)
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in model.decoder.parameters())
    cached = getattr(model.decoder, "_attnviz_fast_step", None)
    if cached is None or cached[0] != key:
        cached = (key, _FastStep(model))
        model.decoder._attnviz_fast_step = cached
    return cached[1]


def _index_state(state: DecoderState, index: torch.Tensor) -> DecoderState:
    return state.index_select(index)


# -- greedy -----------------------------------------------------------------------------------


class _Recorder:
    """Per step, tensors of the rows that ran (all of them, in order, until the batch first
    shrinks); :meth:`stacked` puts them back in the full batch, ``[B, T, ...]``, once."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.batch = batch
        self.device = device
        self.ran: list[torch.Tensor | None] = []  # per step: the rows (None: all, in order)
        self.steps: list[tuple[torch.Tensor, ...]] = []

    def add(self, rows: torch.Tensor | None, *values: torch.Tensor) -> None:
        self.ran.append(rows)
        self.steps.append(values)

    def stacked(self, kind: int, fill: float | int) -> torch.Tensor:
        values = [step[kind] for step in self.steps]
        if all(rows is None for rows in self.ran):
            return torch.stack(values, dim=1)  # [B, T, ...]
        first = values[0]
        out = first.new_full((self.batch, len(values), *first.shape[1:]), fill)
        for t, (rows, value) in enumerate(zip(self.ran, values, strict=True)):
            out[slice(None) if rows is None else rows, t] = value
        return out


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
    eos = config.eos_id
    batch = src.size(0)
    device = src.device
    _check_prefixes(prefixes, batch)
    step = _step_function(model)
    keys, projected, mask, state = model.encode(src, lengths)
    projected = step.prepare_keys(projected)
    padding = ~mask
    limits = _length_limits(lengths, max_length, rules, prefixes)
    limit_tensor = torch.tensor(limits, device=device)
    forced = forced_lengths = None
    if prefixes is not None:
        forced, forced_lengths = pad_batch(prefixes, config.pad_id, device)  # [B, P]
        forced_lengths = forced_lengths.to(device)
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)  # original sentence of each row
    record = _Recorder(batch, device)
    shrunk = False
    for t in range(max(limits)):
        logits, state, step_weights, step_scores = step(prev, state, keys, projected, padding)
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)  # [R, V]
        allowed = _restrict(step_logprobs, rules, t, eos)
        if allowed is step_logprobs and forced is None:
            best_logprob, best = step_logprobs.max(dim=-1)  # [R]
        else:
            best = allowed.argmax(dim=-1)  # [R]
            if forced is not None and t < forced.size(1):
                best = torch.where(t < forced_lengths, forced[:, t], best)
            best_logprob = step_logprobs.gather(1, best.unsqueeze(1)).squeeze(1)  # [R]
        extra = step_logprobs.topk(min(topk, step_logprobs.size(-1)), dim=-1) if topk else ()
        record.add(rows if shrunk else None, best, step_weights, step_scores, best_logprob, *extra)
        finished = finished | (best == eos) | (limit_tensor <= t + 1)
        prev = best
        done = int(finished.sum())  # the one read-back per step
        if done == finished.numel():
            break
        if done >= COMPACT_SHARE * finished.numel():
            going = (~finished).nonzero().squeeze(1)
            rows, prev, finished = rows[going], prev[going], finished[going]
            keys, projected, padding = keys[going], projected[going], padding[going]
            limit_tensor = limit_tensor[going]
            if forced is not None:
                forced, forced_lengths = forced[going], forced_lengths[going]
            state = _index_state(state, going)
            shrunk = True

    # rows that left early keep EOS/zeros after their end, which is cut off below
    tokens_np = record.stacked(0, eos).cpu().numpy()  # [B, T]
    weights_np = record.stacked(1, 0).float().cpu().numpy()  # [B, T, N]
    scores_np = record.stacked(2, 0).float().cpu().numpy()
    logprobs_np = record.stacked(3, 0).float().cpu().numpy()  # [B, T]
    if topk:
        topk_values = record.stacked(4, 0).float().cpu().numpy()  # [B, T, K]
        topk_ids = record.stacked(5, 0).cpu().numpy()
    stops = _stops(tokens_np, eos, np.asarray(limits))
    results = []
    for b, length in enumerate(lengths.tolist()):
        stop = int(stops[b])
        lp = logprobs_np[b, :stop]
        results.append(
            [
                Hypothesis(
                    tokens=tokens_np[b, :stop].tolist(),
                    weights=weights_np[b, :stop, :length],
                    scores=scores_np[b, :stop, :length],
                    token_logprobs=lp,
                    score=normalized_score(float(lp.sum()), stop, length_penalty, rules),
                    topk_ids=topk_ids[b, :stop] if topk else None,
                    topk_logprobs=topk_values[b, :stop] if topk else None,
                )
            ]
        )
    return results


def _stops(tokens: np.ndarray, eos: int, limits: np.ndarray) -> np.ndarray:
    """Per row of ``tokens [B, T]``: tokens kept, up to the first EOS (included) or the limit."""
    is_eos = tokens == eos
    first = np.where(is_eos.any(axis=1), is_eos.argmax(axis=1) + 1, tokens.shape[1])
    return np.minimum(first, limits)


# -- beam -------------------------------------------------------------------------------------


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
    eos = config.eos_id
    step = _step_function(model)
    k = beam_size
    best_ended = rules.beam_stop == "best_ended"
    width = k if best_ended else 2 * k  # candidates read per step
    batch = src.size(0)
    device = src.device
    keys, projected, mask, state = model.encode(src, lengths)
    projected = step.prepare_keys(projected)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    padding = ~mask
    if not step.grouped:  # one key row per beam
        keys, projected, padding = keys[expand], projected[expand], padding[expand]
    state = _index_state(state, expand)
    limit_tensor = torch.tensor(limits, device=device)
    forced = forced_lengths = None
    if prefixes is not None:
        forced, forced_lengths = pad_batch(prefixes, config.pad_id, device)  # [B, P]
        forced_lengths = forced_lengths.to(device)

    cumulative = torch.full((batch, k), float("-inf"), device=device)
    cumulative[:, 0] = 0.0  # only the first beam is alive at the start
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.long, device=device)  # finished hypotheses so far
    sentences = torch.arange(batch, device=device)  # original sentence of each row group
    beams = torch.arange(k, device=device)
    record = _BeamRecord(k)

    for t in range(max(limits)):
        rows = sentences.numel()
        logits, state, weights, scores = step(prev, state, keys, projected, padding)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [R*K, V]
        vocab = logprobs.size(-1)
        candidates = cumulative.view(-1, 1) + _restrict(logprobs, rules, t, eos)  # [R*K, V]
        if forced is not None and t < forced.size(1):
            candidates = _force_prefix(candidates.view(rows, k, vocab), forced, forced_lengths, t)
        top_scores, top_index = candidates.view(rows, k * vocab).topk(
            min(width, k * vocab), dim=1
        )  # [R, C], best first
        top_beam = top_index // vocab
        top_token = top_index % vocab
        top_logprob = logprobs.view(rows, k * vocab).gather(1, top_index)
        alive = top_scores > float("-inf")
        at_limit = (limit_tensor <= t + 1).unsqueeze(1)  # [R, 1]
        ends = alive & ((top_token == eos) | at_limit)
        extends = alive & ~ends
        # candidates are read in order until K have extended a beam
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

        # next step: the extending candidates fill beams 0, 1, ... of their sentence
        target = torch.where(extends, before, k)  # column k collects the rest
        new_beam = _fill(beams.expand(rows, k), target, top_beam)
        new_token = _fill(torch.full_like(top_beam[:, :k], eos), target, top_token)
        new_logprob = _fill(torch.zeros_like(top_scores[:, :k]), target, top_logprob)
        cumulative = _fill(torch.full_like(top_scores[:, :k], float("-inf")), target, top_scores)
        cumulative = cumulative.masked_fill(done.unsqueeze(1), float("-inf"))
        record.step(
            sentences,
            (weights, scores),
            (new_beam, new_token, new_logprob),
            kept,
            (top_scores, top_beam, top_token, top_logprob),
            logprobs.topk(min(topk, vocab), dim=-1) if topk else None,
        )
        remaining = rows - int(done.sum())  # the one read-back per step
        if remaining == 0:
            break
        parents = (new_beam + torch.arange(rows, device=device).unsqueeze(1) * k).view(-1)
        prev = new_token.view(-1)
        if rows - remaining >= COMPACT_SHARE * rows:
            going = (~done).nonzero().squeeze(1)  # [R']
            going_rows = (going.unsqueeze(1) * k + beams).view(-1)  # [R'*K]
            parents, prev = parents.view(rows, k)[going].view(-1), prev[going_rows]
            cumulative, ended, sentences = cumulative[going], ended[going], sentences[going]
            limit_tensor = limit_tensor[going]
            if forced is not None:
                forced, forced_lengths = forced[going], forced_lengths[going]
            kept_rows = going if step.grouped else going_rows
            keys, projected, padding = keys[kept_rows], projected[kept_rows], padding[kept_rows]
        state = _index_state(state, parents)

    return record.hypotheses(lengths.tolist(), nbest, length_penalty, rules)


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


class _BeamRecord:
    """What the beam loop keeps per step, on the device, to rebuild hypotheses at the end.

    Each step's rows are in that step's layout: one group of K rows per sentence still in the
    batch, ``groups`` naming the sentences, so that every row maps back to (sentence, beam).
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.groups: list[torch.Tensor] = []  # per step: sentence of each row group [R]
        self.weights: list[torch.Tensor] = []  # per step: [R*K, N], the rows that ran
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
        """sentences [R]; attention: weights, scores [R*K, N]; choice: parent beam, token and
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
        k = self.k
        steps = len(self.groups)
        sizes = [int(g.numel()) for g in self.groups]
        # one transfer per kind of record
        groups = _to_numpy(torch.cat(self.groups))
        weights = _to_numpy(torch.cat(self.weights).float())  # [sum R*K, N]
        scores = _to_numpy(torch.cat(self.scores).float())
        beam = _to_numpy(torch.cat(self.beam))  # [sum R, K]
        token = _to_numpy(torch.cat(self.token))
        logprob = _to_numpy(torch.cat(self.logprob))
        kept = _to_numpy(torch.cat(self.kept))  # [sum R, C]
        top = [_to_numpy(torch.cat([entry[i] for entry in self.top])) for i in range(4)]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        batch = len(lengths)

        # finished hypotheses: (sentence, step, beam, token, log-prob, total), in the order
        # the loop set them aside
        row, column = np.nonzero(kept)  # row-major: by step, sentence, candidate
        step_of_row = np.repeat(np.arange(steps), sizes)
        f_step = step_of_row[row]
        f_sentence = groups[row]
        f_total = top[0][row, column].astype(np.float64)
        f_beam = top[1][row, column]
        f_token = top[2][row, column]
        f_logprob = top[3][row, column]
        if final_scores:
            f_score = f_total.astype(np.float64)
        else:
            f_score = _normalized_scores(f_total, f_step + 1, length_penalty, rules)
        order = np.lexsort((np.arange(row.size), f_step, -f_score, f_sentence))
        picked: list[list[int]] = [[] for _ in range(batch)]
        for index in order:
            chosen = picked[f_sentence[index]]
            if len(chosen) < nbest:
                chosen.append(int(index))

        # where sentence s's beam b sits in each step's rows (-1: gone)
        place = np.full((steps, batch), -1, dtype=np.int64)
        for t in range(steps):
            place[t, groups[offsets[t] : offsets[t + 1]]] = np.arange(sizes[t])

        flat = [index for chosen in picked for index in chosen]
        count = len(flat)
        longest = int(f_step[flat].max()) + 1 if count else 0
        width = weights.shape[1]
        out_tokens = np.zeros((count, longest), dtype=np.int64)
        out_logprobs = np.zeros((count, longest), dtype=np.float32)
        out_rows = np.zeros((count, longest), dtype=np.int64)  # rows of weights/scores
        if count:
            sentence = f_sentence[flat]
            last = f_step[flat]
            cur_beam = f_beam[flat].astype(np.int64)
            cur_token = f_token[flat].astype(np.int64)
            cur_logprob = f_logprob[flat].astype(np.float32)
            for t in range(longest - 1, -1, -1):
                active = last >= t
                group = place[t, sentence[active]]  # the sentence's group at step t
                out_rows[active, t] = offsets[t] * k + group * k + cur_beam[active]
                out_tokens[active, t] = cur_token[active]
                out_logprobs[active, t] = cur_logprob[active]
                if t > 0:  # the beam alive at step t came from step t-1's choice
                    previous = offsets[t - 1] + place[t - 1, sentence[active]]
                    from_beam = cur_beam[active]
                    cur_token[active] = token[previous, from_beam]
                    cur_logprob[active] = logprob[previous, from_beam]
                    cur_beam[active] = beam[previous, from_beam]
        gathered_w = weights[out_rows] if count else np.zeros((0, 0, width), np.float32)
        gathered_s = scores[out_rows] if count else np.zeros((0, 0, width), np.float32)
        if self.alternatives:  # the top-k of the rows each hypothesis went through
            values = _to_numpy(torch.cat([a[0] for a in self.alternatives]).float())
            ids = _to_numpy(torch.cat([a[1] for a in self.alternatives]))
            topk_values, topk_ids = values[out_rows], ids[out_rows]  # [H, T, k]

        results: list[list[Hypothesis]] = []
        cursor = 0
        for b, length in enumerate(lengths):
            hypotheses = []
            for rank, index in enumerate(picked[b]):
                size = int(f_step[index]) + 1
                hypotheses.append(
                    Hypothesis(
                        tokens=out_tokens[cursor, :size].tolist(),
                        weights=gathered_w[cursor, :size, :length],
                        scores=gathered_s[cursor, :size, :length],
                        token_logprobs=out_logprobs[cursor, :size],
                        score=float(f_score[index]),
                        rank=rank,
                        topk_ids=topk_ids[cursor, :size] if self.alternatives else None,
                        topk_logprobs=topk_values[cursor, :size] if self.alternatives else None,
                    )
                )
                cursor += 1
            results.append(hypotheses)
        return results


def _normalized_scores(
    totals: np.ndarray, lengths: np.ndarray, length_penalty: float, rules: SearchRules
) -> np.ndarray:
    """:func:`normalized_score` of many hypotheses at once (float64)."""
    totals = totals.astype(np.float64)
    if rules.length_norm == "gnmt":
        if length_penalty <= 0:
            return totals
        return totals / ((5.0 + lengths) / 6.0) ** length_penalty
    return (
        totals / np.maximum(lengths + rules.length_offset, 1).astype(np.float64) ** length_penalty
    )


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.cpu().numpy()


# -- forced -----------------------------------------------------------------------------------


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
    step = _step_function(model)
    batch = src.size(0)
    if len(references) != batch:
        raise ValueError(f"{len(references)} references for {batch} sentences")
    targets = [[*ref, config.eos_id] for ref in references]
    padded, _ = pad_batch(targets, config.pad_id, src.device)  # [B, T]
    steps = padded.size(1)
    keys, projected, mask, state = model.encode(src, lengths)
    projected = step.prepare_keys(projected)
    padding = ~mask
    prev = torch.full((batch,), config.bos_id, dtype=torch.long, device=src.device)
    record = _Recorder(batch, src.device)
    for t in range(steps):
        logits, state, step_weights, step_scores = step(prev, state, keys, projected, padding)
        step_logprobs = torch.log_softmax(logits.float(), dim=-1)
        chosen = step_logprobs.gather(1, padded[:, t : t + 1]).squeeze(1)  # [B]
        extra = step_logprobs.topk(min(topk, step_logprobs.size(-1)), dim=-1) if topk else ()
        record.add(None, step_weights, step_scores, chosen, *extra)
        prev = padded[:, t]
    all_weights = record.stacked(0, 0).float().cpu().numpy()  # [B, T, N]
    all_scores = record.stacked(1, 0).float().cpu().numpy()
    all_logprobs = record.stacked(2, 0).float().cpu().numpy()  # [B, T]
    if topk:
        topk_values = record.stacked(3, 0).float().cpu().numpy()  # [B, T, K]
        topk_ids = record.stacked(4, 0).cpu().numpy()
    results = []
    for b, length in enumerate(lengths.tolist()):
        size = len(targets[b])
        lp = all_logprobs[b, :size]
        results.append(
            [
                Hypothesis(
                    tokens=targets[b],
                    weights=all_weights[b, :size, :length],
                    scores=all_scores[b, :size, :length],
                    token_logprobs=lp,
                    score=normalized_score(float(lp.sum()), size, length_penalty, rules),
                    topk_ids=topk_ids[b, :size] if topk else None,
                    topk_logprobs=topk_values[b, :size] if topk else None,
                )
            ]
        )
    return results


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
    Like :func:`beam_decode`, the loop reads back one number per step and rebuilds the
    collected hypotheses from back-pointers at the end.
    """
    config = model.config
    eos = config.eos_id
    step_function = _step_function(model)
    batch = src.size(0)
    device = src.device
    keys, projected, mask, state = model.encode(src, lengths)
    projected = step_function.prepare_keys(projected)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # [B*K]
    padding = ~mask
    if not step_function.grouped:  # one key row per slot
        keys, projected, padding = keys[expand], projected[expand], padding[expand]
    state = _index_state(state, expand)
    limit_tensor = torch.tensor(limits, device=device)
    beam_logprobs = torch.zeros(batch, k, device=device)  # [b, K] cumulative
    beam_logprobs[:, 1:] = float("-inf")  # only the first slot is alive at the start
    marked = torch.zeros(batch, k, dtype=torch.bool, device=device)
    eos_count = torch.zeros(batch, k, dtype=torch.long, device=device)  # EOS in each history
    sentences = torch.arange(batch, device=device)  # sentence of each remaining row group
    prev = torch.full((batch * k,), config.bos_id, dtype=torch.long, device=device)
    record = _BeamRecord(k)

    for step in range(max(limits)):
        remaining = sentences.size(0)
        logits, state, weights, scores = step_function(prev, state, keys, projected, padding)
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # [b*K, V]
        vocab = logprobs.size(-1)
        totals = _restrict(logprobs, rules, step, eos) + beam_logprobs.view(-1, 1)  # [b*K, V]
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
        is_eos = top_token == eos
        eos_count = eos_count.gather(1, top_beam) + is_eos.long()
        at_limit = (limit_tensor <= step + 1).unsqueeze(1)  # [b, 1]
        # marks stay with the slot position (not with the hypothesis that moves into it)
        marked = marked | is_eos | (top_scores == float("-inf")) | at_limit
        ended = marked.all(dim=-1)  # [b]
        # collected: a marked slot whose hypothesis ends with its first EOS now, or reached
        # the limit without one
        collect = marked & (((eos_count == 1) & is_eos) | ((eos_count == 0) & at_limit))
        record.step(
            sentences,
            (weights, scores),
            (top_beam, top_token, top_logprob),
            collect,
            (top_scores, top_beam, top_token, top_logprob),
        )
        going_count = remaining - int(ended.sum())  # the one read-back per step
        if going_count == 0:
            break
        parents = (top_beam + torch.arange(remaining, device=device).unsqueeze(1) * k).view(-1)
        prev = top_token.view(-1)
        if going_count < remaining:
            going = (~ended).nonzero().squeeze(1)  # [b']
            going_rows = (going.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            parents, prev = parents.view(remaining, k)[going].view(-1), prev[going_rows]
            beam_logprobs, marked = beam_logprobs[going], marked[going]
            eos_count, sentences = eos_count[going], sentences[going]
            limit_tensor = limit_tensor[going]
            kept_rows = going if step_function.grouped else going_rows
            keys, projected, padding = keys[kept_rows], projected[kept_rows], padding[kept_rows]
        state = _index_state(state, parents)
    return record.hypotheses(lengths.tolist(), nbest, length_penalty, rules, final_scores=True)
