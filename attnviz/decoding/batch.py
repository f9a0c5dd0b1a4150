"""What the decoding loops share: the start (encoder, step function, first state), the rows
still decoding and dropping the finished ones, and the per-step record of greedy and forced
decoding. Written against the family protocol (:mod:`attnviz.families.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from attnviz.families.base import pad_batch

if TYPE_CHECKING:
    from attnviz.families.base import DecoderState, Memory, Seq2SeqModel, Step

#: Drop finished rows from the batch once at least this share of them is done.
COMPACT_SHARE = 0.25


def worth_dropping(done: int, rows: int) -> bool:
    """Whether to drop the ``done`` finished rows (or row groups) out of ``rows``."""
    return done >= COMPACT_SHARE * rows


class Rows:
    """The sentences still decoding and what each step reads of them, one group per sentence
    (one row in greedy decoding, the K beams of beam search): the encoder's memory, the output
    length limits and the forced prefixes.

    ``memory`` has one row per group, or one per beam where the step does not group them;
    ``sentences [G]``: each group's sentence in the batch; ``limits [G]``: most target
    tokens; ``forced [G, P]`` and ``forced_lengths [G]``: prefix ids (None: no prefixes).
    """

    __slots__ = ("forced", "forced_lengths", "limits", "memory", "sentences")

    def __init__(
        self,
        memory: Memory,
        sentences: torch.Tensor,
        limits: torch.Tensor | None,
        forced: torch.Tensor | None,
        forced_lengths: torch.Tensor | None,
    ) -> None:
        self.memory = memory
        self.sentences, self.limits = sentences, limits
        self.forced, self.forced_lengths = forced, forced_lengths

    def keep(self, going: torch.Tensor, memory_rows: torch.Tensor) -> None:
        """Keep the groups ``going [G']`` only; ``memory_rows`` picks the rows of the memory."""
        self.sentences, self.limits = self.sentences[going], self.limits[going]
        if self.forced is not None:
            self.forced, self.forced_lengths = self.forced[going], self.forced_lengths[going]
        self.memory = self.memory.select(memory_rows)


def start(
    model: Seq2SeqModel,
    src: torch.Tensor,
    lengths: torch.Tensor,
    limits: list[int] | None = None,
    prefixes: list[list[int]] | None = None,
    beam_size: int | None = None,
) -> tuple[Step, DecoderState, Rows]:
    """Encode ``src [B, N]``: the step function, the decoder's first state and the rows.

    With ``beam_size`` K the state has K rows per sentence, the first beam of sentence b at
    row b * K (and so has the memory where the step does not group them).
    """
    step = model.inference_step()
    memory, state = step.start(src, lengths)
    if beam_size is not None:
        expand = torch.arange(src.size(0), device=src.device).repeat_interleave(beam_size)  # [B*K]
        if not step.grouped:  # one memory row per beam
            memory = memory.select(expand)
        state = state.index_select(expand)
    device = src.device
    sentences = torch.arange(src.size(0), device=device)
    limit_tensor = None if limits is None else torch.tensor(limits, device=device)
    forced = forced_lengths = None
    if prefixes is not None:
        forced, forced_lengths = pad_batch(prefixes, model.config.pad_id, device)  # [B, P]
        forced_lengths = forced_lengths.to(device)
    return step, state, Rows(memory, sentences, limit_tensor, forced, forced_lengths)


class Recorder:
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

    def floats(self, kind: int) -> np.ndarray:
        """The values of ``kind``, as float32 on the host, 0 where a row had left: [B, T, ...]."""
        return self.stacked(kind, 0).float().cpu().numpy()

    def ids(self, kind: int, fill: int = 0) -> np.ndarray:
        """The token ids of ``kind`` on the host, ``fill`` where a row had left: [B, T, ...]."""
        return self.stacked(kind, fill).cpu().numpy()
