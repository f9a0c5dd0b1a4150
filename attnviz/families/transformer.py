"""The Transformer family: an encoder-decoder of multi-head attention layers, built only from a
typed :class:`TransformerConfig`, with every decoder layer's per-head cross-attention exposed.

The config covers what OpenNMT-py 3.5 and JoeyNMT 2.3 Transformers (and Hugging Face's
MarianMT) differ on; see :class:`TransformerConfig`.

Shapes: ``B`` sentences, ``R`` decoder rows, ``G`` memory rows (``R = G * K``: a memory row
serves ``K`` consecutive decoder rows, a sentence's beams), ``N`` source length, ``T`` target
length, ``D`` model width, ``H`` heads, ``d = D / H`` head size, ``F`` feed-forward size,
``L`` decoder layers, ``V`` vocabulary, ``P`` absolute positions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attnviz.errors import ConfigError, InputError
from attnviz.families.base import Family
from attnviz.families.config import check_field_types, config_from_dict, meta_shapes

POSITIONS = ("sinusoidal", "learned", "relative", "none")
SINUSOID_LAYOUTS = ("interleaved", "concat", "marian")
LAYER_NORMS = ("pre", "post")
ACTIVATIONS = ("relu", "gelu", "silu", "gated-gelu", "gated-silu")
_ACTIVATION_FUNCTIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "gated-gelu": F.gelu,
    "gated-silu": F.silu,
}
_GATED = ("gated-gelu", "gated-silu")
#: Upper bounds: far above any translation Transformer, low enough that a bad config cannot ask
#: for more memory than a machine has. The parameter total is bounded as well (a config within
#: every single bound can still multiply up to hundreds of gigabytes).
MAX_VOCAB_SIZE = 1_000_000
MAX_WIDTH = 8_192
MAX_FF_SIZE = 65_536
MAX_HEADS = 128
MAX_LAYERS = 64
MAX_POSITIONS = 16_384
MAX_RELATIVE_POSITIONS = 4_096
MAX_PARAMETERS = 4_000_000_000  # with the sinusoid table; NLLB-200 3.3B is below it
_LIMITS = {
    "src_vocab_size": (1, MAX_VOCAB_SIZE),
    "tgt_vocab_size": (1, MAX_VOCAB_SIZE),
    "d_model": (1, MAX_WIDTH),
    "heads": (1, MAX_HEADS),
    "ff_size": (1, MAX_FF_SIZE),
    "encoder_layers": (1, MAX_LAYERS),
    "decoder_layers": (1, MAX_LAYERS),
    "max_positions": (1, MAX_POSITIONS),
    "max_relative_positions": (0, MAX_RELATIVE_POSITIONS),
}
_CHOICES = {
    "encoder_layer_norm": LAYER_NORMS,
    "decoder_layer_norm": LAYER_NORMS,
    "positions": POSITIONS,
    "sinusoid_layout": SINUSOID_LAYOUTS,
    "activation": ACTIVATIONS,
}


@dataclass(frozen=True)
class TransformerConfig:
    """Everything needed to rebuild a :class:`TransformerModel`; saved as a plain dict.

    Sizes: ``d_model`` (D, embeddings and every layer), ``heads`` (H, divides D), ``ff_size``
    (F), ``encoder_layers``, ``decoder_layers``.

    Layers: ``encoder_layer_norm`` / ``decoder_layer_norm``: ``pre`` normalises each
    sub-layer's input (x + f(norm(x))), ``post`` its sum (norm(x + f(x))); JoeyNMT sets them
    per stack (its encoder defaults to pre, its decoder to post). ``encoder_final_norm`` /
    ``decoder_final_norm``: a layer norm after a pre-norm stack's last layer (OpenNMT-py always;
    JoeyNMT only where the stack's ``layer_norm`` is written out as ``pre``).
    ``layer_norm_eps``; ``residual_scale``: the factor on each residual branch (JoeyNMT
    ``alpha``). ``dropout`` on embeddings, sub-layer outputs and the feed-forward hidden layer;
    ``attention_dropout`` on attention probabilities (training only).

    Feed-forward: ``activation`` ``relu``, ``gelu`` (exact), ``silu`` (plain, JoeyNMT's
    ``swish``), or ``gated-gelu`` / ``gated-silu``: act(w_1 x) * w_3 x (OpenNMT-py's
    ``gated-gelu`` and its ``silu``, which is gated). ``ffn_bias``: biases on w_1, w_2, w_3.
    ``attention_bias``: biases on the query, key, value and output projections (OpenNMT-py's
    ``add_qkvbias`` sets all four).

    Positions: ``positions`` ``sinusoidal`` or ``learned`` (added to the embeddings, ``P =
    max_positions`` of them), ``relative`` (Shaw et al. 2018 as in OpenNMT-py's
    ``max_relative_positions > 0``: one table per self-attention of ``2k+1`` vectors of size d,
    k = ``max_relative_positions``, for distances key - query clipped to [-k, k], added to the
    keys and, the same table, to the values; cross-attention has none), or ``none``.
    ``sinusoid_layout``: ``interleaved`` (sin at even, cos at odd features, frequency
    10000^(-2i/D); OpenNMT-py ``SinusoidalInterleaved``, JoeyNMT), ``concat`` (sin half then
    cos half, frequency 10000^(-i/(D/2-1)); OpenNMT-py ``SinusoidalConcat``) or ``marian`` (sin
    half then cos half, frequency 10000^(-2i/D); Hugging Face MarianMT).

    Embeddings: ``scale_embeddings`` multiplies them by sqrt(D) (OpenNMT-py does where it adds
    sinusoids); ``share_embeddings``: one table for source and target (needs equal vocabulary
    sizes); ``tie_output``: the output projection is the target embedding; ``output_bias``.

    ``src_eos``: the source gets ``</s>`` appended. A field that only one setting of
    ``positions`` reads must keep its default under the others.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.1
    encoder_layer_norm: str = "pre"
    decoder_layer_norm: str = "pre"
    encoder_final_norm: bool = True
    decoder_final_norm: bool = True
    layer_norm_eps: float = 1e-6
    residual_scale: float = 1.0
    activation: str = "relu"
    ffn_bias: bool = True
    attention_bias: bool = True
    positions: str = "sinusoidal"
    sinusoid_layout: str = "interleaved"
    max_positions: int = 1024
    max_relative_positions: int = 0
    scale_embeddings: bool = True
    share_embeddings: bool = False
    tie_output: bool = False
    output_bias: bool = True
    src_eos: bool = True
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        check_field_types(self)
        for name, valid in _CHOICES.items():
            value = getattr(self, name)
            if value not in valid:
                raise ConfigError(f"unknown {name} {value!r:.40}; valid: {', '.join(valid)}")
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low} and {high:,}, not {value}")
        if self.d_model % self.heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})"
            )
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), not {value}")
        if not 0.0 < self.layer_norm_eps <= 1.0:
            raise ConfigError(f"layer_norm_eps must be in (0, 1], not {self.layer_norm_eps}")
        if not 0.0 < self.residual_scale <= 100.0:
            raise ConfigError(f"residual_scale must be in (0, 100], not {self.residual_scale}")
        for side in ("encoder", "decoder"):
            if getattr(self, f"{side}_final_norm") and getattr(self, f"{side}_layer_norm") != "pre":
                raise ConfigError(
                    f"{side}_final_norm needs {side}_layer_norm 'pre' (a post-norm stack "
                    "already ends in a layer norm)"
                )
        self._check_positions()
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError(
                f"share_embeddings needs equal vocabulary sizes (src_vocab_size "
                f"{self.src_vocab_size}, tgt_vocab_size {self.tgt_vocab_size})"
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
        total = self.parameter_count() + (
            self.max_positions * self.d_model if self.positions == "sinusoidal" else 0
        )
        if total > MAX_PARAMETERS:
            raise ConfigError(
                f"config would have {total:,} parameters (d_model, ff_size, layers and "
                f"vocabulary sizes together); at most {MAX_PARAMETERS:,}"
            )

    def _check_positions(self) -> None:
        if self.positions == "relative" and self.max_relative_positions == 0:
            raise ConfigError("positions 'relative' needs max_relative_positions of at least 1")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        used_by = {
            "max_relative_positions": ("relative",),
            "sinusoid_layout": ("sinusoidal",),
            "max_positions": ("sinusoidal", "learned"),
        }
        for name, positions in used_by.items():
            if self.positions not in positions and getattr(self, name) != defaults[name]:
                raise ConfigError(
                    f"{name} is only used with positions {' or '.join(map(repr, positions))}, "
                    f"not {self.positions!r}"
                )
        if self.positions == "sinusoidal":
            smallest = 4 if self.sinusoid_layout == "concat" else 2
            if self.d_model % 2 or self.d_model < smallest:
                raise ConfigError(
                    f"sinusoidal positions need an even d_model of at least {smallest}, "
                    f"not {self.d_model}"
                )

    @property
    def head_size(self) -> int:
        return self.d_model // self.heads

    def parameter_count(self) -> int:
        """The number of distinct weights of the network (tied ones counted once), in closed
        form: it bounds a config before anything is built."""
        width, ff, head = self.d_model, self.ff_size, self.head_size
        attention = 4 * width * width + (4 * width if self.attention_bias else 0)
        relative = 0
        if self.positions == "relative":
            relative = (2 * self.max_relative_positions + 1) * head
        gated = self.activation in _GATED
        ffn = (3 if gated else 2) * width * ff
        if self.ffn_bias:
            ffn += (2 if gated else 1) * ff + width
        norm = 2 * width
        encoder_layer = attention + relative + ffn + 2 * norm
        decoder_layer = 2 * attention + relative + ffn + 3 * norm
        total = self.encoder_layers * encoder_layer + self.decoder_layers * decoder_layer
        total += norm * (int(self.encoder_final_norm) + int(self.decoder_final_norm))
        total += self.src_vocab_size * width
        total += 0 if self.share_embeddings else self.tgt_vocab_size * width
        total += 0 if self.tie_output else self.tgt_vocab_size * width
        total += self.tgt_vocab_size if self.output_bias else 0
        total += 2 * self.max_positions * width if self.positions == "learned" else 0
        return total

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every weight of :class:`TransformerModel`, in state-dict order,
        nothing allocated (see :func:`attnviz.families.config.meta_shapes`). Tied weights
        appear under each of their names, as in ``state_dict()``."""
        return meta_shapes(lambda: TransformerModel(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        """Rebuild from plain data; wrong keys, types or ranges are one ConfigError line."""
        return config_from_dict(cls, values)


def sinusoid_table(rows: int, width: int, layout: str) -> torch.Tensor:
    """The sinusoidal position encodings of positions ``0 .. rows-1``: ``[rows, width]`` float32
    on the CPU.

    Each layout is computed the way its toolkit computes it (float32 for OpenNMT-py and JoeyNMT,
    float64 rounded to float32 for Marian), so a trained model sees the values it was trained on.
    """
    cpu = torch.device("cpu")
    if layout == "marian":
        angle = torch.arange(rows, dtype=torch.float64, device=cpu).unsqueeze(1)  # [P, 1]
        exponent = 2 * torch.arange(width // 2, dtype=torch.float64, device=cpu) / width
        angle = angle / torch.pow(10000.0, exponent)  # [P, D/2]
        return torch.cat([angle.sin(), angle.cos()], dim=1).float()  # [P, D]
    position = torch.arange(rows, dtype=torch.float32, device=cpu).unsqueeze(1)  # [P, 1]
    if layout == "interleaved":
        frequency = torch.exp(
            torch.arange(0, width, 2, dtype=torch.float32, device=cpu)
            * -(math.log(10000.0) / width)
        )  # [D/2]
        table = torch.zeros(rows, width, dtype=torch.float32, device=cpu)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        return table
    if layout == "concat":
        half = width // 2
        frequency = torch.exp(
            torch.arange(half, dtype=torch.float32, device=cpu) * -(math.log(10000) / (half - 1))
        )  # [D/2]
        angle = position * frequency.unsqueeze(0)  # [P, D/2]
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)  # [P, D]
    raise ConfigError(
        f"unknown sinusoid_layout {layout!r:.40}; valid: {', '.join(SINUSOID_LAYOUTS)}"
    )


def _attend(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    blocked: torch.Tensor | None,
    relative: torch.Tensor | None,
    dropout: float,
    train: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention of every head.

    query [G, H, Q, d], keys and values [G, H, N, d]; blocked: bool, broadcastable to
    [G, H, Q, N], True where a query may not look (or None); relative: [Q, N, d] relative
    position vectors added to the keys and to the values (or None) -> context [G, H, Q, d],
    weights [G, H, Q, N] (before dropout), scores [G, H, Q, N] (before masking).
    """
    query = query / math.sqrt(query.size(-1))
    scores = torch.matmul(query, keys.transpose(-2, -1))  # [G, H, Q, N]
    if relative is not None:
        scores = scores + torch.einsum("ghqd,qnd->ghqn", query, relative)
    masked = scores if blocked is None else scores.masked_fill(blocked, float("-inf"))
    weights = torch.softmax(masked, dim=-1)
    probs = F.dropout(weights, dropout, training=True) if train and dropout > 0 else weights
    context = torch.matmul(probs, values)  # [G, H, Q, d]
    if relative is not None:
        context = context + torch.einsum("ghqn,qnd->ghqd", probs, relative)
    return context, weights, scores


class MultiHeadAttention(nn.Module):
    """Query, key, value and output projections ``[D, D]`` of H heads; head ``h`` reads
    features ``h*d .. (h+1)*d`` of each projection."""

    def __init__(self, config: TransformerConfig, relative: bool) -> None:
        super().__init__()
        width, bias = config.d_model, config.attention_bias
        self.heads = config.heads
        self.head_size = config.head_size
        self.dropout = config.attention_dropout
        self.query = nn.Linear(width, width, bias=bias)
        self.key = nn.Linear(width, width, bias=bias)
        self.value = nn.Linear(width, width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)
        self.max_relative = config.max_relative_positions if relative else 0
        self.relative_embeddings = (
            nn.Embedding(2 * self.max_relative + 1, self.head_size) if self.max_relative else None
        )

    def _split(self, projected: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, H, T, d]."""
        rows, length = projected.shape[:2]
        heads = projected.view(rows, length, self.heads, self.head_size)  # [B, T, H, d]
        return heads.transpose(1, 2)  # [B, H, T, d]

    def _relative(self, start: int, queries: int, keys: int, device: torch.device) -> torch.Tensor:
        """Vectors of the clipped distances key - query for queries at ``start ..`` and keys at
        ``0 ..``: [Q, N, d]."""
        assert self.relative_embeddings is not None
        query_positions = torch.arange(start, start + queries, device=device)  # [Q]
        key_positions = torch.arange(keys, device=device)  # [N]
        distance = key_positions.unsqueeze(0) - query_positions.unsqueeze(1)  # [Q, N]
        index = distance.clamp(-self.max_relative, self.max_relative) + self.max_relative
        return self.relative_embeddings(index)  # [Q, N, d]

    def self_attention(
        self,
        inputs: torch.Tensor,
        blocked: torch.Tensor | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        train: bool,
        fused: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """inputs [B, T, D] at positions ``t0 ..`` after ``past`` keys and values [B, H, t0, d]
        (or None: t0 = 0); blocked broadcastable to [B, H, T, t0+T] -> output [B, T, D], keys
        and values [B, H, t0+T, d]. ``fused``: the q, k, v projections stacked ``[3D, D]``."""
        if fused is None:
            query = self._split(self.query(inputs))  # [B, H, T, d]
            keys = self._split(self.key(inputs))
            values = self._split(self.value(inputs))
        else:
            projected = F.linear(inputs, *fused)  # [B, T, 3D]
            query, keys, values = (self._split(part) for part in projected.chunk(3, dim=-1))
        start = 0
        if past is not None:
            start = past[0].size(2)
            keys = torch.cat([past[0], keys], dim=2)  # [B, H, t0+T, d]
            values = torch.cat([past[1], values], dim=2)
        relative = None
        if self.relative_embeddings is not None:
            relative = self._relative(start, inputs.size(1), keys.size(2), inputs.device)
        context, _, _ = _attend(query, keys, values, blocked, relative, self.dropout, train)
        context = context.transpose(1, 2).reshape(inputs.shape)  # [B, T, D]
        return self.out(context), (keys, values)

    def memory(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output [G, N, D] -> keys and values [G, H, N, d]."""
        return self._split(self.key(states)), self._split(self.value(states))

    def cross_attention(
        self,
        inputs: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        blocked: torch.Tensor,
        train: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs [B, T, D] (B = G*K: K consecutive rows per memory row), keys and values
        [G, H, N, d], blocked [G, 1, 1, N] (True at padding) -> output [B, T, D], weights and
        scores [B, T, H, N]."""
        rows, length = inputs.shape[:2]
        groups = keys.size(0)
        if rows % groups:
            raise ValueError(f"{rows} decoder rows cannot share {groups} memory rows")
        query = self.query(inputs).view(groups, -1, self.heads, self.head_size)  # [G, K*T, H, d]
        query = query.transpose(1, 2)  # [G, H, K*T, d]
        context, weights, scores = _attend(query, keys, values, blocked, None, self.dropout, train)
        context = context.transpose(1, 2).reshape(inputs.shape)  # [B, T, D]
        weights = weights.transpose(1, 2).reshape(rows, length, self.heads, -1)  # [B, T, H, N]
        scores = scores.transpose(1, 2).reshape(rows, length, self.heads, -1)  # [B, T, H, N]
        return self.out(context), weights, scores


class FeedForward(nn.Module):
    """w_2(act(w_1 x)), or w_2(act(w_1 x) * w_3 x) for the gated activations: [*, D] -> [*, D]."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        width, ff, bias = config.d_model, config.ff_size, config.ffn_bias
        self.w_1 = nn.Linear(width, ff, bias=bias)
        self.w_2 = nn.Linear(ff, width, bias=bias)
        self.w_3 = nn.Linear(width, ff, bias=bias) if config.activation in _GATED else None
        self.activation = _ACTIVATION_FUNCTIONS[config.activation]
        self.dropout = config.dropout

    def forward(self, inputs: torch.Tensor, train: bool) -> torch.Tensor:
        hidden = self.activation(self.w_1(inputs))  # [*, F]
        if self.w_3 is not None:
            hidden = hidden * self.w_3(inputs)
        if train and self.dropout > 0:
            hidden = F.dropout(hidden, self.dropout, training=True)
        return self.w_2(hidden)


class _Layer(nn.Module):
    """What encoder and decoder layers share: residual branches around pre- or post-norms."""

    def __init__(self, config: TransformerConfig, norm: str) -> None:
        super().__init__()
        self.pre = norm == "pre"
        self.dropout = config.dropout
        self.residual_scale = config.residual_scale
        self.width = config.d_model
        self.eps = config.layer_norm_eps

    def _norm(self) -> nn.LayerNorm:
        return nn.LayerNorm(self.width, eps=self.eps)

    def _residual(
        self, residual: torch.Tensor, branch: torch.Tensor, norm: nn.LayerNorm, train: bool
    ) -> torch.Tensor:
        """residual + dropout(branch), normalised afterwards in a post-norm layer."""
        if train and self.dropout > 0:
            branch = F.dropout(branch, self.dropout, training=True)
        if self.residual_scale != 1.0:
            residual = self.residual_scale * residual
        summed = branch + residual
        return summed if self.pre else norm(summed)


class EncoderLayer(_Layer):
    """Self-attention and feed-forward, each in a residual branch."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config, config.encoder_layer_norm)
        self.self_attn = MultiHeadAttention(config, relative=config.positions == "relative")
        self.self_attn_norm = self._norm()
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = self._norm()

    def forward(self, states: torch.Tensor, blocked: torch.Tensor, train: bool) -> torch.Tensor:
        """states [B, N, D], blocked [B, 1, 1, N] (True at padding) -> [B, N, D]."""
        inputs = self.self_attn_norm(states) if self.pre else states
        branch, _ = self.self_attn.self_attention(inputs, blocked, None, train)
        states = self._residual(states, branch, self.self_attn_norm, train)
        inputs = self.feed_forward_norm(states) if self.pre else states
        branch = self.feed_forward(inputs, train)
        return self._residual(states, branch, self.feed_forward_norm, train)


class DecoderLayer(_Layer):
    """Causal self-attention, cross-attention over the encoder output, feed-forward."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config, config.decoder_layer_norm)
        self.self_attn = MultiHeadAttention(config, relative=config.positions == "relative")
        self.self_attn_norm = self._norm()
        self.cross_attn = MultiHeadAttention(config, relative=False)
        self.cross_attn_norm = self._norm()
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = self._norm()

    def forward(
        self,
        states: torch.Tensor,
        self_blocked: torch.Tensor | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        memory_keys: torch.Tensor,
        memory_values: torch.Tensor,
        memory_blocked: torch.Tensor,
        train: bool,
        fused: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
        """states [B, T, D] after ``past`` self-attention keys and values [B, H, t0, d];
        memory keys and values [G, H, N, d], memory_blocked [G, 1, 1, N] -> states [B, T, D],
        keys and values [B, H, t0+T, d], cross-attention weights and scores [B, T, H, N]."""
        inputs = self.self_attn_norm(states) if self.pre else states
        branch, cache = self.self_attn.self_attention(inputs, self_blocked, past, train, fused)
        states = self._residual(states, branch, self.self_attn_norm, train)
        inputs = self.cross_attn_norm(states) if self.pre else states
        branch, weights, scores = self.cross_attn.cross_attention(
            inputs, memory_keys, memory_values, memory_blocked, train
        )
        states = self._residual(states, branch, self.cross_attn_norm, train)
        inputs = self.feed_forward_norm(states) if self.pre else states
        branch = self.feed_forward(inputs, train)
        states = self._residual(states, branch, self.feed_forward_norm, train)
        return states, cache, weights, scores


class Encoder(nn.Module):
    """The encoder layers and, for a pre-norm stack, a final layer norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.final_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
            if config.encoder_final_norm
            else None
        )


class Decoder(nn.Module):
    """The decoder layers and, for a pre-norm stack, a final layer norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.final_norm = (
            nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
            if config.decoder_final_norm
            else None
        )


class TransformerModel(nn.Module):
    """Embeddings, encoder, decoder and output projection of :class:`TransformerConfig`.

    Weights (state-dict names): ``src_embedding``, ``tgt_embedding`` (the same table with
    ``share_embeddings``), ``src_positions`` / ``tgt_positions`` (learned positions),
    ``encoder.layers.i.{self_attn,self_attn_norm,feed_forward,feed_forward_norm}``,
    ``decoder.layers.i.{self_attn,self_attn_norm,cross_attn,cross_attn_norm,feed_forward,
    feed_forward_norm}``, attention ``{query,key,value,out}`` and ``relative_embeddings``,
    feed-forward ``w_1``, ``w_2``, ``w_3``, ``{encoder,decoder}.final_norm``, ``output``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        width = config.d_model
        self.src_embedding = nn.Embedding(config.src_vocab_size, width, padding_idx=config.pad_id)
        self.tgt_embedding = (
            self.src_embedding
            if config.share_embeddings
            else nn.Embedding(config.tgt_vocab_size, width, padding_idx=config.pad_id)
        )
        learned = config.positions == "learned"
        self.src_positions = nn.Embedding(config.max_positions, width) if learned else None
        self.tgt_positions = nn.Embedding(config.max_positions, width) if learned else None
        self.sinusoid: torch.Tensor | None
        if config.positions == "sinusoidal":  # derived, so not saved
            device = torch.empty(0).device  # where the network is being built
            if device.type == "meta":  # shapes only: computing on meta would load sympy
                table = torch.empty(config.max_positions, width)
            else:
                table = sinusoid_table(config.max_positions, width, config.sinusoid_layout)
            self.register_buffer("sinusoid", table.to(device), persistent=False)  # [P, D]
        else:
            self.sinusoid = None
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.output = nn.Linear(width, config.tgt_vocab_size, bias=config.output_bias)
        if config.tie_output:
            self.output.weight = self.tgt_embedding.weight
        self._initialise()

    def _initialise(self) -> None:
        """Xavier-uniform matrices, zero biases, embeddings N(0, 1/width), padding row 0."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in self.modules():  # after the linears: a tied output takes this init
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()

    @property
    def attention_shape(self) -> tuple[int, int]:
        """(L, H): decoder layers with cross-attention and heads per layer."""
        return self.config.decoder_layers, self.config.heads

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(
        self,
        table: nn.Embedding,
        positions: nn.Embedding | None,
        tokens: torch.Tensor,
        start: int,
        train: bool,
    ) -> torch.Tensor:
        """tokens [B, T] at positions ``start ..`` -> [B, T, D]."""
        config = self.config
        embedded = table(tokens)  # [B, T, D]
        if config.scale_embeddings:
            embedded = embedded * math.sqrt(config.d_model)
        end = start + tokens.size(1)
        if config.positions in ("sinusoidal", "learned"):
            if end > config.max_positions:
                raise InputError(
                    f"a sequence of {end} tokens is longer than the model's {config.max_positions} "
                    "positions (max_positions)"
                )
            if self.sinusoid is not None:
                embedded = embedded + self.sinusoid[start:end]
            else:
                assert positions is not None
                embedded = embedded + positions.weight[start:end]
        if train and config.dropout > 0:
            embedded = F.dropout(embedded, config.dropout, training=True)
        return embedded

    def _encode(
        self, src: torch.Tensor, lengths: torch.Tensor, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(src.size(1), device=src.device)
        padding = positions.unsqueeze(0) >= lengths.to(src.device).unsqueeze(1)  # [B, N]
        blocked = padding[:, None, None, :]  # [B, 1, 1, N]
        states = self._embed(self.src_embedding, self.src_positions, src, 0, train)
        for layer in self.encoder.layers:
            states = layer(states, blocked, train)
        if self.encoder.final_norm is not None:
            states = self.encoder.final_norm(states)
        return states, padding

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src [B, N] ids, lengths [B] (each at least 1) -> encoder output [B, N, D] and
        padding [B, N] (True at padding)."""
        return self._encode(src, lengths, self.training)

    def decode_all(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: src [B, N], lengths [B], tgt_in [B, T] -> the decoder output before
        the output projection [B, T, D], cross-attention weights and raw scores [B, T, L, H, N]."""
        train = self.training
        memory, padding = self._encode(src, lengths, train)
        memory_blocked = padding[:, None, None, :]  # [B, 1, 1, N]
        length = tgt_in.size(1)
        causal = torch.ones(length, length, dtype=torch.bool, device=tgt_in.device).triu(1)
        states = self._embed(self.tgt_embedding, self.tgt_positions, tgt_in, 0, train)
        all_weights, all_scores = [], []
        for layer in self.decoder.layers:
            keys, values = layer.cross_attn.memory(memory)
            states, _, weights, scores = layer(
                states, causal, None, keys, values, memory_blocked, train
            )
            all_weights.append(weights)
            all_scores.append(scores)
        if self.decoder.final_norm is not None:
            states = self.decoder.final_norm(states)
        return states, torch.stack(all_weights, dim=2), torch.stack(all_scores, dim=2)

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tgt_in [B, T] starts with BOS -> logits [B, T, V] and
        cross-attention weights [B, T, L, H, N]; dropout in train mode."""
        states, weights, _ = self.decode_all(src, lengths, tgt_in)
        return self.output(states), weights

    def inference_step(self) -> TransformerStep:
        """The decoding step, rebuilt when a parameter changes (optimizer steps and
        ``load_state_dict`` bump tensor versions; ``to()`` moves them)."""
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        cached = getattr(self, "_attnviz_step", None)
        if cached is None or cached[0] != key:
            cached = (key, TransformerStep(self))
            self._attnviz_step = cached
        return cached[1]


class TransformerMemory:
    """Every decoder layer's cross-attention keys and values of the encoder output, computed
    once."""

    __slots__ = ("keys", "padding", "values")

    def __init__(
        self,
        keys: tuple[torch.Tensor, ...],
        values: tuple[torch.Tensor, ...],
        padding: torch.Tensor,
    ) -> None:
        self.keys = keys  # L x [G, H, N, d]
        self.values = values  # L x [G, H, N, d]
        self.padding = padding  # [G, N] bool, True at padding

    def select(self, rows: torch.Tensor) -> TransformerMemory:
        """The memory of ``rows [G']``."""
        return TransformerMemory(
            tuple(part.index_select(0, rows) for part in self.keys),
            tuple(part.index_select(0, rows) for part in self.values),
            self.padding.index_select(0, rows),
        )


class TransformerState:
    """Each decoder layer's self-attention keys and values of the tokens so far, and the
    position of the next one."""

    __slots__ = ("keys", "position", "values")

    def __init__(
        self, keys: tuple[torch.Tensor, ...], values: tuple[torch.Tensor, ...], position: int
    ) -> None:
        self.keys = keys  # L x [R, H, t, d]
        self.values = values  # L x [R, H, t, d]
        self.position = position  # t: tokens read so far, the same for every row

    def index_select(self, rows: torch.Tensor) -> TransformerState:
        """The state of ``rows [R']``."""
        return TransformerState(
            tuple(part.index_select(0, rows) for part in self.keys),
            tuple(part.index_select(0, rows) for part in self.values),
            self.position,
        )


class TransformerStep:
    """Incremental decoding for inference (no dropout): one token per row per call, with a
    self-attention key/value cache, against cross-attention keys and values computed once.

    The memory may have one row per decoder row or one per group of K consecutive rows (a
    sentence's beams): both give the same numbers.
    """

    grouped = True

    def __init__(self, model: TransformerModel) -> None:
        self.model = model
        fused = []
        with torch.no_grad():
            for layer in model.decoder.layers:
                attention = layer.self_attn
                weight = torch.cat(
                    [attention.query.weight, attention.key.weight, attention.value.weight]
                )  # [3D, D]
                bias = None
                if attention.query.bias is not None:
                    bias = torch.cat(
                        [attention.query.bias, attention.key.bias, attention.value.bias]
                    )  # [3D]
                fused.append((weight, bias))
        self.fused = tuple(fused)

    def start(
        self, src: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[TransformerMemory, TransformerState]:
        """Encode ``src [B, N]`` with ``lengths [B]``: memory (B rows), first state (B rows)."""
        model = self.model
        states, padding = model._encode(src, lengths, train=False)  # [B, N, D]
        projected = [layer.cross_attn.memory(states) for layer in model.decoder.layers]
        keys = tuple(part[0] for part in projected)  # L x [B, H, N, d]
        values = tuple(part[1] for part in projected)
        config = model.config
        empty = states.new_zeros(src.size(0), config.heads, 0, config.head_size)  # [B, H, 0, d]
        layers = config.decoder_layers
        return TransformerMemory(keys, values, padding), TransformerState(
            (empty,) * layers, (empty,) * layers, 0
        )

    def __call__(
        self, prev_tokens: torch.Tensor, state: TransformerState, memory: TransformerMemory
    ) -> tuple[torch.Tensor, TransformerState, torch.Tensor, torch.Tensor]:
        """prev_tokens [R] -> logits [R, V], new state, cross-attention weights and raw scores
        of every layer and head [R, L, H, N] (weights 0 at padding, rows sum to 1)."""
        model = self.model
        tokens = prev_tokens.unsqueeze(1)  # [R, 1]
        states = model._embed(
            model.tgt_embedding, model.tgt_positions, tokens, state.position, False
        )  # [R, 1, D]
        memory_blocked = memory.padding[:, None, None, :]  # [G, 1, 1, N]
        keys, values, all_weights, all_scores = [], [], [], []
        for index, layer in enumerate(model.decoder.layers):
            past = (state.keys[index], state.values[index])
            states, cache, weights, scores = layer(
                states,
                None,
                past,
                memory.keys[index],
                memory.values[index],
                memory_blocked,
                False,
                self.fused[index],
            )
            keys.append(cache[0])
            values.append(cache[1])
            all_weights.append(weights)
            all_scores.append(scores)
        if model.decoder.final_norm is not None:
            states = model.decoder.final_norm(states)
        logits = model.output(states.squeeze(1))  # [R, V]
        new_state = TransformerState(tuple(keys), tuple(values), state.position + 1)
        weights = torch.cat(all_weights, dim=1)  # L x [R, 1, H, N] -> [R, L, H, N]
        scores = torch.cat(all_scores, dim=1)  # [R, L, H, N]
        return logits, new_state, weights, scores


def describe(config: TransformerConfig) -> list[tuple[str, str]]:
    """Rows for ``attnviz info``."""
    if config.encoder_layer_norm == config.decoder_layer_norm:
        norm = config.encoder_layer_norm
    else:
        norm = f"encoder {config.encoder_layer_norm}, decoder {config.decoder_layer_norm}"
    missing = [
        side
        for side in ("encoder", "decoder")
        if getattr(config, f"{side}_layer_norm") == "pre"
        and not getattr(config, f"{side}_final_norm")
    ]
    if missing:
        norm += f" (no final {' or '.join(missing)} norm)"
    if config.positions == "sinusoidal":
        positions = f"sinusoidal, {config.sinusoid_layout}"
    elif config.positions == "learned":
        positions = f"learned, {config.max_positions}"
    elif config.positions == "relative":
        positions = f"relative, clipped at {config.max_relative_positions}"
    else:
        positions = "none"
    embeddings = [f"{config.src_vocab_size:,} source", f"{config.tgt_vocab_size:,} target"]
    if config.scale_embeddings:
        embeddings.append("scaled by sqrt(d_model)")
    if config.share_embeddings:
        embeddings.append("shared")
    if config.tie_output:
        embeddings.append("tied to the output")
    return [
        ("layers", f"{config.encoder_layers} encoder, {config.decoder_layers} decoder"),
        ("heads", str(config.heads)),
        ("width", f"{config.d_model}, feed-forward {config.ff_size} ({config.activation})"),
        ("norm", norm),
        ("positions", positions),
        ("embeddings", ", ".join(embeddings)),
        ("parameters", f"{config.parameter_count():,}"),
    ]


FAMILY = Family(
    name="transformer",
    config_from_dict=TransformerConfig.from_dict,
    build=TransformerModel,
    describe=describe,
)
