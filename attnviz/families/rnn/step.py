"""The RNN family's inference step (the protocol's :class:`~attnviz.families.base.Step`):
:class:`FastStep` (the same maths as :meth:`AttnDecoder.step` in fewer operations) where it
covers the model, else :class:`PlainStep`; :func:`step_function` picks one and caches the fast
step. Both read the encoder through :class:`RNNMemory`."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from attnviz.families.rnn.attention import AdditiveAttention, DotAttention, GeneralAttention
from attnviz.families.rnn.cells import ExactCells, SigmoidCells
from attnviz.families.rnn.model import DecoderState, RNNConfig, RNNModel

# The config fields whose every value FastStep implements; a field added later falls back to
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


class RNNMemory:
    """The encoder as the step reads it: ``keys [G, N, H]``, the scorer's ``projected`` keys
    ``[G, N, *]`` (in the form the step wants) and ``padding [G, N]`` (True at padding)."""

    __slots__ = ("keys", "padding", "projected")

    def __init__(self, keys: torch.Tensor, projected: torch.Tensor, padding: torch.Tensor) -> None:
        self.keys, self.projected, self.padding = keys, projected, padding

    def select(self, rows: torch.Tensor) -> RNNMemory:
        return RNNMemory(self.keys[rows], self.projected[rows], self.padding[rows])


def fast_step_applies(model: RNNModel) -> bool:
    config = model.config
    for field in dataclasses.fields(RNNConfig):
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


class FastStep:
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

    def __init__(self, model: RNNModel) -> None:
        decoder = model.decoder
        config = model.config
        self.model = model
        self.exact = decoder.embedding.weight.dtype == torch.float64
        cells = ExactCells if self.exact else SigmoidCells
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

    def start(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[RNNMemory, DecoderState]:
        """Encode ``src [B, N]``: the memory and the decoder's first state, B rows each."""
        keys, projected, mask, state = self.model.encode(src, lengths)
        if self.additive is not None and not self.exact:
            projected = projected * 2  # the 2 of 2 sigmoid(2x) - 1
        return RNNMemory(keys, projected, ~mask), state

    def __call__(
        self, prev_tokens: torch.Tensor, state: DecoderState, memory: RNNMemory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """prev_tokens [R]; the memory's rows shared by K = R / G consecutive rows (the beams
        of a sentence) -> logits [R, V], new state, weights [R, 1, 1, N], scores [R, 1, 1, N]."""
        keys, projected_keys, padding = memory.keys, memory.projected, memory.padding
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
        weights, scores = weights.view(rows, 1, 1, -1), scores.view(rows, 1, 1, -1)
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


class PlainStep:
    """:meth:`AttnDecoder.step` behind the interface of :class:`FastStep`, with one row of
    keys per decoder row."""

    grouped = False

    def __init__(self, model: RNNModel) -> None:
        self.model = model

    def start(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[RNNMemory, DecoderState]:
        keys, projected, mask, state = self.model.encode(src, lengths)
        return RNNMemory(keys, projected, ~mask), state

    def __call__(
        self, prev_tokens: torch.Tensor, state: DecoderState, memory: RNNMemory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        logits, state, weights, scores = self.model.decoder.step(
            prev_tokens, state, memory.keys, memory.projected, ~memory.padding
        )
        rows = weights.size(0)
        return logits, state, weights.view(rows, 1, 1, -1), scores.view(rows, 1, 1, -1)


def step_function(model: RNNModel) -> FastStep | PlainStep:
    """The step used by the decoding loops: (prev, state, memory) -> logits, state, attention.

    The fast step is built once per set of weights (a table lookup replaces a matrix product)
    and rebuilt when a parameter changes (optimizer steps bump tensor versions).
    """
    if not fast_step_applies(model):
        return PlainStep(model)
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in model.decoder.parameters())
    cached = getattr(model.decoder, "_attnviz_fast_step", None)
    if cached is None or cached[0] != key:
        cached = (key, FastStep(model))
        model.decoder._attnviz_fast_step = cached
    return cached[1]
