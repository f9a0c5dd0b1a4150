"""RNN encoder-decoder with attention, built only from a typed :class:`RNNConfig`.

Shapes: ``B`` batch, ``N`` source length, ``E`` embedding size, ``H`` encoder output size
(hidden size x directions), ``Q`` decoder hidden size (the attention query).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnviz.errors import ConfigError
from attnviz.families.config import check_field_types, config_from_dict, meta_shapes
from attnviz.families.rnn.attention import SCORERS, build_attention

RNN_TYPES = ("gru", "lstm")
CONCAT_ORDERS = ("context_first", "state_first")
DECODER_INITS = (
    "tanh_bridge",
    "shared_tanh_bridge",
    "shared_last",
    "zero",
    "encoder_final",
    "grouped_relu_bridge",
)
#: decoder_init modes where decoder layer l starts from encoder layer l (OpenNMT-py)
PER_LAYER_INITS = ("encoder_final", "grouped_relu_bridge")
#: Upper bounds on sizes: far above any RNN translation model, low enough that a bad config
#: cannot ask for more memory or layers than a machine has.
MAX_VOCAB_SIZE = 1_000_000
MAX_WIDTH = 16_384
MAX_LAYERS = 32
_LIMITS = {
    "src_vocab_size": MAX_VOCAB_SIZE,
    "tgt_vocab_size": MAX_VOCAB_SIZE,
    "embedding_size": MAX_WIDTH,
    "hidden_size": MAX_WIDTH,
    "decoder_hidden_size": MAX_WIDTH,
    "attention_size": MAX_WIDTH,
    "encoder_layers": MAX_LAYERS,
    "decoder_layers": MAX_LAYERS,
}


@dataclass(frozen=True)
class RNNConfig:
    """Everything needed to rebuild the network; saved as a plain dict in checkpoints.

    ``attn_concat_order``, ``attn_out_bias``/``attn_out_tanh``, ``src_eos``,
    ``output_bias``, ``decoder_init``, ``tgt_embedding_size`` and ``attn_query_bias`` are the
    points on which RNN NMT toolkits differ; keeping them here lets one class load them all.

    ``decoder_init``: how the decoder's first state comes from the encoder's top-layer final
    hidden state ``h`` (directions concatenated, size H):

    - ``tanh_bridge``: tanh(Linear(h)) with one projection per decoder layer, and for LSTMs
      a second projection of the encoder's final cell state for the decoder's cell
      (attnviz's own models);
    - ``shared_tanh_bridge``: one tanh(Linear(h)) of size Q given to every decoder layer,
      and to the LSTM cell as well (JoeyNMT ``bridge``);
    - ``shared_last``: ``h`` itself (its forward half when H = 2Q) given to every decoder
      layer and to the LSTM cell; needs H = Q or H = 2Q (JoeyNMT ``last``);
    - ``zero``: zeros;
    - ``encoder_final``: decoder layer ``l`` starts from encoder layer ``l``'s final state,
      directions concatenated, cell state likewise (OpenNMT-py without ``bridge``); needs as
      many layers on both sides and Q = H;
    - ``grouped_relu_bridge``: OpenNMT-py's ``bridge``: the final states ``[layers*dirs, B,
      h]`` are read batch-major in groups of ``layers`` consecutive states, each group goes
      through ``relu(Linear(layers*h, layers*h))`` (a second one for the LSTM cell), then as
      ``encoder_final``.

    ``output_bias``: whether the output layer has a bias. ``tgt_embedding_size``: the target
    embedding size when it differs from the source one (None: ``embedding_size``).
    ``attn_query_bias``: the additive scorer's query projection ``W`` has a bias
    (OpenNMT-py ``mlp``).
    """

    src_vocab_size: int
    tgt_vocab_size: int
    embedding_size: int = 128
    hidden_size: int = 256
    decoder_hidden_size: int = 256
    attention_size: int = 256
    attention: str = "additive"
    rnn: str = "gru"
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.1
    input_feeding: bool = True
    attn_concat_order: str = "context_first"
    attn_out_bias: bool = True
    attn_out_tanh: bool = True
    src_eos: bool = True
    output_bias: bool = True
    decoder_init: str = "tanh_bridge"
    tgt_embedding_size: int | None = None
    attn_query_bias: bool = False
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.attention not in SCORERS:
            raise ConfigError(f"unknown attention {self.attention!r}; valid: {', '.join(SCORERS)}")
        if self.rnn not in RNN_TYPES:
            raise ConfigError(f"unknown rnn {self.rnn!r}; valid: {', '.join(RNN_TYPES)}")
        if self.attn_concat_order not in CONCAT_ORDERS:
            raise ConfigError(
                f"unknown attn_concat_order {self.attn_concat_order!r}; "
                f"valid: {', '.join(CONCAT_ORDERS)}"
            )
        if self.decoder_init not in DECODER_INITS:
            raise ConfigError(
                f"unknown decoder_init {self.decoder_init!r}; valid: {', '.join(DECODER_INITS)}"
            )
        for name, high in _LIMITS.items():
            value = getattr(self, name)
            if not 1 <= value <= high:
                raise ConfigError(f"{name} must be between 1 and {high:,}, not {value}")
        if self.tgt_embedding_size is not None and not 1 <= self.tgt_embedding_size <= MAX_WIDTH:
            raise ConfigError(
                f"tgt_embedding_size must be between 1 and {MAX_WIDTH:,}, "
                f"not {self.tgt_embedding_size}"
            )
        if self.decoder_init == "shared_last" and self.encoder_output_size not in (
            self.decoder_hidden_size,
            2 * self.decoder_hidden_size,
        ):
            raise ConfigError(
                f"decoder_init 'shared_last' needs the encoder output size "
                f"({self.encoder_output_size}) to be the decoder hidden size "
                f"({self.decoder_hidden_size}) or twice it"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.decoder_init in PER_LAYER_INITS:
            if self.decoder_layers != self.encoder_layers:
                raise ConfigError(
                    f"decoder_init {self.decoder_init} needs as many decoder layers as encoder "
                    f"layers ({self.decoder_layers} vs {self.encoder_layers})"
                )
            if self.decoder_hidden_size != self.encoder_output_size:
                raise ConfigError(
                    f"decoder_init {self.decoder_init} needs decoder_hidden_size "
                    f"({self.decoder_hidden_size}) to equal the encoder output size "
                    f"({self.encoder_output_size})"
                )
        smallest = min(self.src_vocab_size, self.tgt_vocab_size)
        for name in ("pad_id", "unk_id", "eos_id"):  # used on both sides
            value = getattr(self, name)
            if not 0 <= value < smallest:
                raise ConfigError(
                    f"{name} {value} is outside the vocabularies (sizes {self.src_vocab_size} "
                    f"and {self.tgt_vocab_size})"
                )
        if not 0 <= self.bos_id < self.tgt_vocab_size:
            raise ConfigError(
                f"bos_id {self.bos_id} is outside the target vocabulary "
                f"(size {self.tgt_vocab_size})"
            )
        if self.attention == "dot" and self.decoder_hidden_size != self.encoder_output_size:
            raise ConfigError(
                f"dot attention needs the decoder query size ({self.decoder_hidden_size}) to "
                f"equal the encoder output size ({self.encoder_output_size}); use 'general' or "
                "'additive' attention, or change the hidden sizes"
            )

    @property
    def encoder_output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def decoder_embedding_size(self) -> int:
        return self.tgt_embedding_size or self.embedding_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every weight of :class:`RNNModel`, in its state-dict order (see
        :func:`attnviz.families.config.meta_shapes`: nothing is allocated)."""
        return meta_shapes(lambda: RNNModel(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RNNConfig:
        """Rebuild from plain data; wrong keys, types or ranges are one ConfigError line."""
        return config_from_dict(cls, values)


def _rnn(kind: str, input_size: int, hidden_size: int, layers: int, **kwargs: Any) -> nn.RNNBase:
    rnn_class = nn.GRU if kind == "gru" else nn.LSTM
    return rnn_class(input_size, hidden_size, num_layers=layers, batch_first=True, **kwargs)


class Encoder(nn.Module):
    """Embedding + (bi)directional GRU/LSTM; padding never reaches the RNN (packed)."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(
            config.src_vocab_size, config.embedding_size, padding_idx=config.pad_id
        )
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = _rnn(
            config.rnn,
            config.embedding_size,
            config.hidden_size,
            config.encoder_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
        )

    def forward(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """src [B, N] ids, lengths [B] -> outputs [B, N, H] (zeros at padding), final state.

        The final state is the RNN's (h_n or (h_n, c_n)), each [layers*dirs, B, hidden].
        """
        embedded = self.dropout(self.embedding(src))  # [B, N, E]
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, final = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        return outputs, final  # [B, N, H]


class Bridge(nn.Module):
    """Encoder's top-layer final state -> decoder's initial state (see ``decoder_init``)."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        mode = config.decoder_init
        in_size = config.encoder_output_size
        out_size = config.decoder_hidden_size * (
            config.decoder_layers if mode == "tanh_bridge" else 1
        )
        if mode == "grouped_relu_bridge":  # one group: `layers` consecutive states
            in_size = out_size = config.hidden_size * config.encoder_layers
        has_hidden = mode in ("tanh_bridge", "shared_tanh_bridge", "grouped_relu_bridge")
        has_cell = mode in ("tanh_bridge", "grouped_relu_bridge") and config.rnn == "lstm"
        self.hidden = nn.Linear(in_size, out_size) if has_hidden else None
        self.cell = nn.Linear(in_size, out_size) if has_cell else None

    def _top(self, state: torch.Tensor) -> torch.Tensor:
        """[layers*dirs, B, hidden] -> top layer, directions concatenated [B, H]."""
        dirs = 2 if self.config.bidirectional else 1
        top = state[-dirs:]  # [dirs, B, hidden]
        return torch.cat(list(top), dim=-1)  # [B, dirs*hidden]

    def _map(self, layer: nn.Linear, state: torch.Tensor) -> torch.Tensor:
        batch = state.size(1)
        mapped = torch.tanh(layer(self._top(state)))  # [B, Ld*Q]
        mapped = mapped.view(batch, self.config.decoder_layers, -1)  # [B, Ld, Q]
        return mapped.transpose(0, 1).contiguous()  # [Ld, B, Q]

    def _shared(self, hidden: torch.Tensor) -> torch.Tensor:
        """One [B, Q] state for every decoder layer -> [Ld, B, Q]."""
        config = self.config
        top = self._top(hidden)  # [B, H]
        if config.decoder_init == "shared_tanh_bridge":
            assert self.hidden is not None
            top = torch.tanh(self.hidden(top))  # [B, Q]
        elif config.decoder_init == "shared_last" and top.size(-1) != config.decoder_hidden_size:
            top = top[:, : config.decoder_hidden_size]  # H = 2Q: the forward direction
        elif config.decoder_init == "zero":
            top = top.new_zeros(top.size(0), config.decoder_hidden_size)
        return top.unsqueeze(0).repeat(config.decoder_layers, 1, 1)  # [Ld, B, Q]

    def _per_layer(self, layer: nn.Linear | None, state: torch.Tensor) -> torch.Tensor:
        """[L*D, B, h] -> [L, B, D*h]: layer l's directions side by side, after OpenNMT-py's
        grouped relu(Linear) when there is one."""
        if layer is not None:
            states, batch, hidden = state.shape
            groups = state.transpose(0, 1).reshape(-1, layer.in_features)  # [B*D, L*h]
            state = torch.relu(layer(groups)).view(batch, states, hidden)  # [B, L*D, h]
            state = state.transpose(0, 1)  # [L*D, B, h]
        if not self.config.bidirectional:
            return state.contiguous()
        return torch.cat([state[0::2], state[1::2]], dim=2)  # [L, B, 2h]

    def forward(self, final: Any) -> Any:
        if self.config.decoder_init in PER_LAYER_INITS:
            if self.config.rnn == "lstm":
                h_n, c_n = final
                return self._per_layer(self.hidden, h_n), self._per_layer(self.cell, c_n)
            return self._per_layer(self.hidden, final)
        if self.config.decoder_init != "tanh_bridge":
            shared = self._shared(final[0] if isinstance(final, tuple) else final)
            return (shared, shared) if self.config.rnn == "lstm" else shared
        assert self.hidden is not None
        if self.cell is not None:
            h_n, c_n = final
            return self._map(self.hidden, h_n), self._map(self.cell, c_n)
        return self._map(self.hidden, final)


class DecoderState:
    """What the decoder carries between steps, all indexed by batch on one dimension."""

    __slots__ = ("attentional", "rnn")

    def __init__(self, rnn: Any, attentional: torch.Tensor) -> None:
        self.rnn = rnn  # [Ld, B, Q] or a (h, c) pair of those
        self.attentional = attentional  # [B, Q]: previous attentional state (input feeding)

    def index_select(self, index: torch.Tensor) -> DecoderState:
        if isinstance(self.rnn, tuple):
            rnn = tuple(part.index_select(1, index) for part in self.rnn)
        else:
            rnn = self.rnn.index_select(1, index)
        return DecoderState(rnn, self.attentional.index_select(0, index))


class AttnDecoder(nn.Module):
    """One step: RNN, attention with the new state as query, tanh(W_c[context; state]), logits."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        q = config.decoder_hidden_size
        h = config.encoder_output_size
        self.embedding = nn.Embedding(
            config.tgt_vocab_size, config.decoder_embedding_size, padding_idx=config.pad_id
        )
        self.dropout = nn.Dropout(config.dropout)
        input_size = config.decoder_embedding_size + (q if config.input_feeding else 0)
        self.rnn = _rnn(
            config.rnn,
            input_size,
            q,
            config.decoder_layers,
            dropout=config.dropout if config.decoder_layers > 1 else 0.0,
        )
        self.attention = build_attention(
            config.attention, q, h, config.attention_size, config.attn_query_bias
        )
        self.combine = nn.Linear(h + q, q, bias=config.attn_out_bias)  # W_c
        self.output = nn.Linear(q, config.tgt_vocab_size, bias=config.output_bias)

    def initial_state(self, rnn_state: Any, batch: int, device: torch.device) -> DecoderState:
        dtype = self.embedding.weight.dtype
        zeros = torch.zeros(batch, self.config.decoder_hidden_size, device=device, dtype=dtype)
        return DecoderState(rnn_state, zeros)

    def step(
        self,
        prev_tokens: torch.Tensor,
        state: DecoderState,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """prev_tokens [B] -> logits [B, V], new state, weights [B, N], scores [B, N]."""
        embedded = self.dropout(self.embedding(prev_tokens))  # [B, E]
        if self.config.input_feeding:
            embedded = torch.cat([embedded, state.attentional], dim=-1)  # [B, E+Q]
        output, rnn_state = self.rnn(embedded.unsqueeze(1), state.rnn)  # [B, 1, Q]
        query = output.squeeze(1)  # [B, Q]
        context, weights, scores = self.attention(query, keys, mask, projected_keys)
        if self.config.attn_concat_order == "context_first":
            combined = torch.cat([context, query], dim=-1)  # [B, H+Q]
        else:
            combined = torch.cat([query, context], dim=-1)
        attentional = self.combine(combined)  # [B, Q]
        if self.config.attn_out_tanh:
            attentional = torch.tanh(attentional)
        logits = self.output(self.dropout(attentional))  # [B, V]
        return logits, DecoderState(rnn_state, attentional), weights, scores


class RNNModel(nn.Module):
    """Encoder + bridge + attentive decoder."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.bridge = Bridge(config)
        self.decoder = AttnDecoder(config)

    def encode(
        self, src: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DecoderState]:
        """src [B, N], lengths [B] -> keys [B, N, H], projected keys, mask [B, N], state."""
        keys, final = self.encoder(src, lengths)
        positions = torch.arange(src.size(1), device=src.device)
        mask = positions.unsqueeze(0) < lengths.to(src.device).unsqueeze(1)  # [B, N]
        projected = self.decoder.attention.project_keys(keys)
        state = self.decoder.initial_state(self.bridge(final), src.size(0), src.device)
        return keys, projected, mask, state

    @property
    def attention_shape(self) -> tuple[int, int]:
        """(L, H): one attention layer with one head."""
        return (1, 1)

    def inference_step(self):
        """The fast (or plain) inference step; see :mod:`attnviz.families.rnn.step`."""
        from attnviz.families.rnn.step import step_function

        return step_function(self)

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing. tgt_in [B, T] starts with BOS -> logits [B, T, V], weights
        [B, T, 1, 1, N] (one layer, one head)."""
        keys, projected, mask, state = self.encode(src, lengths)
        all_logits, all_weights = [], []
        for t in range(tgt_in.size(1)):
            logits, state, weights, _ = self.decoder.step(
                tgt_in[:, t], state, keys, projected, mask
            )
            all_logits.append(logits)
            all_weights.append(weights)
        weights = torch.stack(all_weights, dim=1)  # [B, T, N]
        return torch.stack(all_logits, dim=1), weights[:, :, None, None]  # [B, T, 1, 1, N]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
