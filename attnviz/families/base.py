"""What every model family provides; decoding, checkpoints and the translator use only this.

A family is a module under :mod:`attnviz.families` exposing a :class:`Family` named
``FAMILY``: its config type and how to build its network. The network implements
:class:`Seq2SeqModel`; its inference step implements :class:`Step`.

Shapes: ``B`` sentences, ``R`` decoder rows (B, or B*K with K beams), ``G`` memory rows (one
per group of rows: R, or B where the step shares a sentence's memory among its beams), ``N``
source length, ``V`` target vocabulary, ``L`` decoder layers with cross-attention, ``H`` heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class FamilyConfig(Protocol):
    """A frozen dataclass that validates itself on construction and is saved as a plain dict.

    Every family's config has the ids and sizes the rest of attnviz reads.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    pad_id: int
    unk_id: int
    bos_id: int
    eos_id: int
    src_eos: bool  # the source gets </s> appended

    def to_dict(self) -> dict[str, Any]: ...

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every weight of the network, without building it for real."""
        ...


class Memory(Protocol):
    """What a decoder step reads of the encoder: one row per group of decoder rows."""

    padding: torch.Tensor  # [G, N] bool, True at padding

    def select(self, rows: torch.Tensor) -> Memory:
        """The memory of ``rows [G']`` (dropping finished groups, or expanding for beams)."""
        ...


class DecoderState(Protocol):
    """What the decoder carries between steps, one entry per decoder row."""

    def index_select(self, rows: torch.Tensor) -> DecoderState:
        """The state of ``rows [R']`` (reordering beams, dropping finished rows)."""
        ...


class Step(Protocol):
    """The decoder step for inference (no dropout), built once per set of weights."""

    #: the memory has one row per group of K consecutive decoder rows (a sentence's beams)
    grouped: bool

    def start(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """Encode ``src [B, N]`` with ``lengths [B]``: memory (B rows), first state (B rows)."""
        ...

    def __call__(
        self, prev_tokens: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """prev_tokens [R] -> logits [R, V], new state, cross-attention weights and raw
        scores of every layer and head [R, L, H, N] (weights 0 at padding, rows sum to 1)."""
        ...


class Seq2SeqModel(Protocol):
    """An attentive encoder-decoder (a ``torch.nn.Module``)."""

    config: Any

    @property
    def attention_shape(self) -> tuple[int, int]:
        """(L, H): decoder layers with cross-attention and heads per layer."""
        ...

    def inference_step(self) -> Step:
        """The step the decoding loops run (cached while the weights do not change)."""
        ...

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: tgt_in [B, T] starts with BOS -> logits [B, T, V] and
        cross-attention weights [B, T, L, H, N]."""
        ...

    def parameter_count(self) -> int: ...


@dataclass(frozen=True)
class Family:
    """A model family: its name (stored in checkpoints), config type and network builder."""

    name: str
    config_from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], Any]  # config -> Seq2SeqModel (a torch module, weights random)
    describe: Callable[[Any], list[tuple[str, str]]] | None = None  # config -> rows for `info`


def pad_batch(
    sequences: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> a padded ``[B, N]`` long tensor on ``device`` and their lengths ``[B]`` (CPU).

    The one padding helper of training, decoding and forced decoding.
    """
    import torch

    lengths = torch.tensor([len(ids) for ids in sequences], dtype=torch.long)  # [B]
    padded = torch.full((len(sequences), max(int(lengths.max()), 1)), pad_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return padded.to(device), lengths
