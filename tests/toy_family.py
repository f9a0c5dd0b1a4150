"""A second model family, for tests only: L = 2 decoder layers of H = 3 attention heads over
embedded source tokens. It proves that decoding, checkpoints, Alignment and export work for
any family of the protocol in attnviz.families.base, not only for the RNN.

Shapes: B sentences, R decoder rows, N source length, D model size, L layers, H heads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from attnviz.errors import ConfigError
from attnviz.families.base import Family


@dataclass(frozen=True)
class ToyConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    size: int = 8
    layers: int = 2
    heads: int = 3
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    src_eos: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ToyConfig:
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"bad toy config: {err}") from err

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(t.shape) for name, t in ToyModel(self).state_dict().items()}


class ToyMemory:
    def __init__(self, keys: torch.Tensor, padding: torch.Tensor) -> None:
        self.keys, self.padding = keys, padding  # [G, N, D], [G, N]

    def select(self, rows: torch.Tensor) -> ToyMemory:
        return ToyMemory(self.keys[rows], self.padding[rows])


class ToyState:
    def __init__(self, hidden: torch.Tensor) -> None:
        self.hidden = hidden  # [R, D]

    def index_select(self, rows: torch.Tensor) -> ToyState:
        return ToyState(self.hidden.index_select(0, rows))


class ToyStep:
    grouped = False

    def __init__(self, model: ToyModel) -> None:
        self.model = model

    def start(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[ToyMemory, ToyState]:
        model = self.model
        keys = model.src_embedding(src)  # [B, N, D]
        positions = torch.arange(src.size(1), device=src.device)
        padding = positions.unsqueeze(0) >= lengths.to(src.device).unsqueeze(1)  # [B, N]
        return ToyMemory(keys, padding), ToyState(keys.new_zeros(src.size(0), keys.size(-1)))

    def __call__(self, prev_tokens, state, memory):
        model = self.model
        query = model.tgt_embedding(prev_tokens) + state.hidden  # [R, D]
        projected = torch.einsum("rd,lhde->rlhe", query, model.queries)  # [R, L, H, D]
        scores = torch.einsum("rlhe,rne->rlhn", projected, memory.keys)  # [R, L, H, N]
        scores = scores / math.sqrt(query.size(-1))
        masked = scores.masked_fill(memory.padding[:, None, None, :], float("-inf"))
        weights = torch.softmax(masked, dim=-1)  # [R, L, H, N]
        context = torch.einsum("rlhn,rnd->rd", weights, memory.keys) / weights[0, :, :, 0].numel()
        hidden = torch.tanh(query + context)  # [R, D]
        return model.output(hidden), ToyState(hidden), weights, scores


class ToyModel(nn.Module):
    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        d = config.size
        self.src_embedding = nn.Embedding(config.src_vocab_size, d)
        self.tgt_embedding = nn.Embedding(config.tgt_vocab_size, d)
        self.queries = nn.Parameter(torch.randn(config.layers, config.heads, d, d))
        self.output = nn.Linear(d, config.tgt_vocab_size)

    @property
    def attention_shape(self) -> tuple[int, int]:
        return (self.config.layers, self.config.heads)

    def inference_step(self) -> ToyStep:
        return ToyStep(self)

    def forward(self, src, lengths, tgt_in):
        step = self.inference_step()
        memory, state = step.start(src, lengths)
        all_logits, all_weights = [], []
        for t in range(tgt_in.size(1)):
            logits, state, weights, _ = step(tgt_in[:, t], state, memory)
            all_logits.append(logits)
            all_weights.append(weights)
        return torch.stack(all_logits, 1), torch.stack(all_weights, 1)  # [B, T, L, H, N]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


FAMILY = Family(name="toy", config_from_dict=ToyConfig.from_dict, build=ToyModel)
