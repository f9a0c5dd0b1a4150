"""What the decoding loops share: the start (encoder, step function, first state), the rows
still decoding and dropping the finished ones, and the per-step record of greedy and forced
decoding."""

from __future__ import annotations

import numpy as np
import torch

from attnviz.decoding.step import _FastStep, _PlainStep, _step_function
from attnviz.model import DecoderState, Seq2Seq, pad_batch

#: Drop finished rows from the batch once at least this share of them is done.
COMPACT_SHARE = 0.25


def _worth_dropping(done: int, rows: int) -> bool:
    """Whether to drop the ``done`` finished rows (or row groups) out of ``rows``."""
    return done >= COMPACT_SHARE * rows


class _Rows:
    """The sentences still decoding and what each step reads of them, one group per sentence
    (one row in greedy decoding, the K beams of beam search): the encoder's keys, the output
    length limits and the forced prefixes.

    ``keys [G, N, H]``, ``projected`` (keys for the scorer) ``[G, N, *]`` and ``padding [G, N]``
    (True at padding) have one row per group, or one per beam where the step does not group
    them; ``sentences [G]``: each group's sentence in the batch; ``limits [G]``: most target
    tokens; ``forced [G, P]`` and ``forced_lengths [G]``: prefix ids (None: no prefixes).
    """

    __slots__ = ("forced", "forced_lengths", "keys", "limits", "padding", "projected", "sentences")

    def __init__(
        self,
        keys: torch.Tensor,
        projected: torch.Tensor,
        padding: torch.Tensor,
        sentences: torch.Tensor,
        limits: torch.Tensor | None,
        forced: torch.Tensor | None,
        forced_lengths: torch.Tensor | None,
    ) -> None:
        self.keys, self.projected, self.padding = keys, projected, padding
        self.sentences, self.limits = sentences, limits
        self.forced, self.forced_lengths = forced, forced_lengths

    def keep(self, going: torch.Tensor, key_rows: torch.Tensor) -> None:
        """Keep the groups ``going [G']`` only; ``key_rows`` picks the rows of the keys."""
        self.sentences, self.limits = self.sentences[going], self.limits[going]
        if self.forced is not None:
            self.forced, self.forced_lengths = self.forced[going], self.forced_lengths[going]
        self.keys, self.projected = self.keys[key_rows], self.projected[key_rows]
        self.padding = self.padding[key_rows]


def _start(
    model: Seq2Seq,
    src: torch.Tensor,
    lengths: torch.Tensor,
    limits: list[int] | None = None,
    prefixes: list[list[int]] | None = None,
    beam_size: int | None = None,
) -> tuple[_FastStep | _PlainStep, DecoderState, _Rows]:
    """Encode ``src [B, N]``: the step function, the decoder's first state and the rows.

    With ``beam_size`` K the state has K rows per sentence, the first beam of sentence b at
    row b * K (and so have the keys where the step does not group them).
    """
    step = _step_function(model)
    keys, projected, mask, state = model.encode(src, lengths)
    projected = step.prepare_keys(projected)
    padding = ~mask
    if beam_size is not None:
        expand = torch.arange(src.size(0), device=src.device).repeat_interleave(beam_size)  # [B*K]
        if not step.grouped:  # one key row per beam
            keys, projected, padding = keys[expand], projected[expand], padding[expand]
        state = state.index_select(expand)
    device = src.device
    sentences = torch.arange(src.size(0), device=device)
    limit_tensor = None if limits is None else torch.tensor(limits, device=device)
    forced = forced_lengths = None
    if prefixes is not None:
        forced, forced_lengths = pad_batch(prefixes, model.config.pad_id, device)  # [B, P]
        forced_lengths = forced_lengths.to(device)
    rows = _Rows(keys, projected, padding, sentences, limit_tensor, forced, forced_lengths)
    return step, state, rows


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

    def floats(self, kind: int) -> np.ndarray:
        """The values of ``kind``, as float32 on the host, 0 where a row had left: [B, T, ...]."""
        return self.stacked(kind, 0).float().cpu().numpy()

    def ids(self, kind: int, fill: int = 0) -> np.ndarray:
        """The token ids of ``kind`` on the host, ``fill`` where a row had left: [B, T, ...]."""
        return self.stacked(kind, fill).cpu().numpy()
