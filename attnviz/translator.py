"""A loaded model with its tokenizers: text in, :class:`Alignment` out."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from attnviz.alignment import Alignment
from attnviz.checkpoint import Checkpoint, build_model, load_checkpoint
from attnviz.decoding import (
    DEFAULT_LENGTH_PENALTY,
    Hypothesis,
    beam_decode,
    forced_decode,
    greedy_decode,
)
from attnviz.device import resolve_device
from attnviz.errors import CheckpointError, InputError, TokenizerError, UsageError
from attnviz.samples import resolve_model_path
from attnviz.tokenizer import Tokenizer

MAX_SOURCE_TOKENS = 1000
PRECISIONS = ("auto", "float32", "float64")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: float64 on the CPU, float32 on accelerators (mps has no float64).

    In float64 a sentence's attention does not depend on the batch it is decoded in, to the
    last bit; in float32 matrix kernels chosen by batch shape leave differences near 1e-5.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float64 if device.type == "cpu" else torch.float32
    if precision == "float64" and device.type == "mps":
        raise UsageError("mps has no float64; use --precision float32 there")
    return torch.float64 if precision == "float64" else torch.float32


class Translator:
    """Decode sentences and keep the attention of every hypothesis.

    ``model`` is the torch module; ``checkpoint`` the loaded file (config, metadata).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str | torch.device = "cpu",
        precision: str = "auto",
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        try:
            self.src_tokenizer = Tokenizer(checkpoint.src_spm)
            self.tgt_tokenizer = Tokenizer(checkpoint.tgt_spm)
        except TokenizerError as err:
            raise CheckpointError(f"{checkpoint.path or 'checkpoint'}: {err}") from err
        self.model = build_model(checkpoint, self.device).to(self.dtype)

    @property
    def path(self) -> Path | None:
        return self.checkpoint.path

    # -- encoding ---------------------------------------------------------------------------

    def _source_ids(self, text: str) -> list[int]:
        ids = self.src_tokenizer.encode(text)
        if self.config.src_eos:
            ids.append(self.config.eos_id)
        return ids

    def _source_tokens(self, ids: list[int]) -> list[str]:
        return [self._piece(self.src_tokenizer, i) for i in ids]

    def _piece(self, tokenizer: Tokenizer, index: int) -> str:
        if index == self.config.eos_id:
            return "</s>"
        if index == self.config.unk_id:
            return "<unk>"
        return tokenizer.id_to_piece(index)

    # -- public -----------------------------------------------------------------------------

    def translate(
        self,
        sentences: str | Sequence[str],
        beam_size: int = 1,
        nbest: int = 1,
        refs: Sequence[str] | None = None,
        *,
        words: bool = False,
        batch_size: int = 32,
        length_penalty: float = DEFAULT_LENGTH_PENALTY,
    ) -> list[Alignment]:
        """Alignments for all sentences, in input order; n-best hypotheses follow each other.

        ``refs`` (one per sentence) switches to forced decoding of those references.
        ``words=True`` merges SentencePiece pieces into words.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        groups = self.translate_grouped(
            list(sentences),
            beam_size=beam_size,
            nbest=nbest,
            refs=refs,
            words=words,
            batch_size=batch_size,
            length_penalty=length_penalty,
        )
        return [alignment for group in groups for alignment in group]

    def translate_grouped(
        self,
        sentences: Sequence[str],
        beam_size: int = 1,
        nbest: int = 1,
        refs: Sequence[str] | None = None,
        *,
        words: bool = False,
        batch_size: int = 32,
        length_penalty: float = DEFAULT_LENGTH_PENALTY,
    ) -> list[list[Alignment]]:
        """Like :meth:`translate`, one list of hypotheses per input sentence."""
        self._check_options(beam_size, nbest, batch_size)
        if refs is not None and len(refs) != len(sentences):
            raise UsageError(
                f"got {len(refs)} references for {len(sentences)} sentences; give one per sentence"
            )
        for number, text in enumerate(sentences, start=1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InputError(
                    f"sentence {number} is not valid UTF-8 text (bad character at {err.start})"
                ) from err
        source_ids = [self._source_ids(text) for text in sentences]
        for number, ids in enumerate(source_ids, start=1):
            if len(ids) > MAX_SOURCE_TOKENS:
                raise InputError(
                    f"sentence {number} has {len(ids)} tokens; at most {MAX_SOURCE_TOKENS} "
                    "are supported"
                )
        ref_ids = [self.tgt_tokenizer.encode(r) for r in refs] if refs is not None else None
        results: list[list[Alignment] | None] = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(source_ids[i]))
        eos = self.config.eos_id if self.config.src_eos else None
        # nothing to translate: blank, or only characters the tokenizer drops
        blank = {i for i in order if not [t for t in source_ids[i] if t != eos]}
        todo = [i for i in order if i not in blank]
        for i in blank:
            results[i] = [Alignment.empty(sentences[i], level="words" if words else "pieces")]
        for batch in _chunks(todo, batch_size):
            hypotheses = self._decode_batch(
                [source_ids[i] for i in batch],
                [ref_ids[i] for i in batch] if ref_ids is not None else None,
                beam_size=beam_size,
                nbest=nbest,
                length_penalty=length_penalty,
            )
            for i, hyps in zip(batch, hypotheses, strict=True):
                results[i] = [
                    self._alignment(sentences[i], source_ids[i], hyp, words) for hyp in hyps
                ]
        return [r if r is not None else [] for r in results]

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _check_options(beam_size: int, nbest: int, batch_size: int) -> None:
        if beam_size < 1:
            raise UsageError(f"beam size must be at least 1, not {beam_size}")
        if nbest < 1:
            raise UsageError(f"nbest must be at least 1, not {nbest}")
        if nbest > beam_size:
            raise UsageError(f"nbest ({nbest}) cannot exceed the beam size ({beam_size})")
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {batch_size}")

    def _decode_batch(
        self,
        source_ids: list[list[int]],
        ref_ids: list[list[int]] | None,
        *,
        beam_size: int,
        nbest: int,
        length_penalty: float,
    ) -> list[list[Hypothesis]]:
        lengths = torch.tensor([len(ids) for ids in source_ids], dtype=torch.long)
        src = torch.full((len(source_ids), int(lengths.max())), self.config.pad_id)
        for b, ids in enumerate(source_ids):
            src[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        src = src.to(self.device)
        if ref_ids is not None:
            return forced_decode(self.model, src, lengths, ref_ids, length_penalty=length_penalty)
        if beam_size == 1:
            return greedy_decode(self.model, src, lengths, length_penalty=length_penalty)
        return beam_decode(
            self.model,
            src,
            lengths,
            beam_size=beam_size,
            nbest=nbest,
            length_penalty=length_penalty,
        )

    def _alignment(
        self, source: str, source_ids: list[int], hyp: Hypothesis, words: bool
    ) -> Alignment:
        eos = self.config.eos_id
        body = [t for t in hyp.tokens if t != eos]
        alignment = Alignment(
            source=source,
            translation=self.tgt_tokenizer.decode(body),
            src_tokens=self._source_tokens(source_ids),
            tgt_tokens=[self._piece(self.tgt_tokenizer, t) for t in hyp.tokens],
            weights=hyp.weights,
            scores=hyp.scores,
            token_logprobs=hyp.token_logprobs,
            score=float(hyp.score),
            rank=hyp.rank,
        )
        return alignment.to_words() if words else alignment


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> Translator:
    """Load a checkpoint (a path, or the name of a bundled sample model) on ``device``.

    ``precision``: ``auto`` (float64 on the CPU, float32 elsewhere), ``float32`` or ``float64``.
    """
    target = resolve_device(device)
    path = resolve_model_path(name_or_path)
    return Translator(load_checkpoint(path, map_location=target), target, precision)
