"""A loaded model with its tokenizers: text in, :class:`Alignment` out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from attnviz.alignment import Alignment, SentenceError
from attnviz.checkpoint import Checkpoint, build_model, load_checkpoint
from attnviz.decoding import Hypothesis, beam_decode, forced_decode, greedy_decode
from attnviz.device import resolve_device
from attnviz.errors import InputError, UsageError
from attnviz.model import pad_batch
from attnviz.options import DecodeOptions
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
        self.src_tokenizer, self.tgt_tokenizer = checkpoint.tokenizers()
        self.rules = checkpoint.rules()
        self.model = build_model(checkpoint, self.device).to(self.dtype)

    @property
    def path(self) -> Path | None:
        return self.checkpoint.path

    # -- public -----------------------------------------------------------------------------

    def translate(
        self,
        sentences: str | Sequence[str],
        beam_size: int | None = None,
        nbest: int | None = None,
        refs: Sequence[str] | None = None,
        *,
        options: DecodeOptions | None = None,
        **option_values: Any,
    ) -> list[Alignment]:
        """Alignments for all sentences, in input order; n-best hypotheses follow each other.

        ``refs`` (one per sentence) switches to forced decoding of those references. Options
        come as a :class:`DecodeOptions` or as its fields (``beam_size``/``beam``, ``nbest``,
        ``words``, ``batch_size``, ``length_penalty``). A sentence that cannot be decoded
        raises :class:`InputError`; :meth:`translate_grouped` returns it as a value instead.
        """
        groups = self.translate_grouped(
            sentences, beam_size, nbest, refs, options=options, **option_values
        )
        flat: list[Alignment] = []
        for group in groups:
            if isinstance(group, SentenceError):
                raise InputError(group.message)
            flat.extend(group)
        return flat

    def translate_grouped(
        self,
        sentences: str | Sequence[str],
        beam_size: int | None = None,
        nbest: int | None = None,
        refs: Sequence[str] | None = None,
        *,
        options: DecodeOptions | None = None,
        **option_values: Any,
    ) -> list[list[Alignment] | SentenceError]:
        """Per input sentence: its hypotheses (best first), or a :class:`SentenceError`."""
        options = _decode_options(options, beam_size, nbest, option_values)
        sentences = _text_list(sentences, "sentences")
        if refs is not None:
            refs = _text_list(refs, "refs")
            if len(refs) != len(sentences):
                raise UsageError(
                    f"got {len(refs)} references for {len(sentences)} sentences; "
                    "give one per sentence"
                )
        if options.prefix is not None or options.topk:
            raise UsageError("prefix and topk decoding are not available in this version")
        results: list[list[Alignment] | SentenceError | None] = [None] * len(sentences)
        source_ids: dict[int, list[int]] = {}
        ref_ids: dict[int, list[int]] = {}
        level = "words" if options.words else "pieces"
        for index, text in enumerate(sentences):
            try:
                source_ids[index] = self._source_ids(text, index)
                if refs is not None:
                    ref_ids[index] = self._target_ids(refs[index], index)
            except InputError as err:
                results[index] = SentenceError(index, text, str(err))
                continue
            if not self._has_content(source_ids[index]):
                # nothing to translate: blank, or only characters the tokenizer drops
                results[index] = [Alignment.empty(text, level=level, word_rules=self._word_rules())]
        todo = sorted(
            (i for i, r in enumerate(results) if r is None), key=lambda i: len(source_ids[i])
        )
        for batch in _chunks(todo, options.batch_size):
            hypotheses = self._decode_batch(
                [source_ids[i] for i in batch],
                [ref_ids[i] for i in batch] if refs is not None else None,
                options,
            )
            for i, hyps in zip(batch, hypotheses, strict=True):
                results[i] = [
                    self._alignment(sentences[i], source_ids[i], hyp, options.words) for hyp in hyps
                ]
        return [r if r is not None else [] for r in results]

    def encode_source(self, text: str) -> list[int]:
        """The source ids the encoder reads for ``text`` (``</s>`` included where it is)."""
        return self._source_ids(text, 0)

    # -- internals --------------------------------------------------------------------------

    def _source_ids(self, text: str, index: int) -> list[int]:
        _check_text(text, index, "sentence")
        ids = self.src_tokenizer.encode(text)
        if self.config.src_eos:
            ids.append(self.config.eos_id)
        if len(ids) > MAX_SOURCE_TOKENS:
            raise InputError(
                f"sentence {index + 1} has {len(ids)} tokens; at most {MAX_SOURCE_TOKENS} "
                "are supported"
            )
        return ids

    def _target_ids(self, text: str, index: int) -> list[int]:
        _check_text(text, index, "reference")
        ids = self.tgt_tokenizer.encode(text)
        if len(ids) >= MAX_SOURCE_TOKENS:
            raise InputError(
                f"reference {index + 1} has {len(ids)} tokens; at most "
                f"{MAX_SOURCE_TOKENS - 1} are supported"
            )
        return ids

    def _source_tokens(self, source: str, source_ids: list[int]) -> list[str]:
        """How each source id is shown: the tokenizer's pieces (an unknown one as <unk>)."""
        tokens = self.src_tokenizer.pieces(source)
        if self.config.src_eos:
            tokens.append("</s>")
        if len(tokens) != len(source_ids):  # a tokenizer whose pieces do not follow its ids
            tokens = [self._piece(self.src_tokenizer, i) for i in source_ids]
        return tokens

    def _word_rules(self) -> tuple[str, str]:
        return (self.src_tokenizer.word_rule, self.tgt_tokenizer.word_rule)

    def _has_content(self, ids: list[int]) -> bool:
        eos = self.config.eos_id if self.config.src_eos else None
        return any(t != eos for t in ids)

    def _piece(self, tokenizer: Tokenizer, index: int) -> str:
        if index == self.config.eos_id:
            return "</s>"
        if index == self.config.unk_id:
            return "<unk>"
        return tokenizer.id_to_piece(index)

    def _decode_batch(
        self,
        source_ids: list[list[int]],
        ref_ids: list[list[int]] | None,
        options: DecodeOptions,
    ) -> list[list[Hypothesis]]:
        src, lengths = pad_batch(source_ids, self.config.pad_id, self.device)
        rules = self.rules
        penalty = rules.length_penalty if options.length_penalty is None else options.length_penalty
        if ref_ids is not None:
            return forced_decode(
                self.model, src, lengths, ref_ids, length_penalty=penalty, rules=rules
            )
        if options.beam == 1:
            return greedy_decode(self.model, src, lengths, length_penalty=penalty, rules=rules)
        return beam_decode(
            self.model,
            src,
            lengths,
            beam_size=options.beam,
            nbest=options.nbest,
            length_penalty=penalty,
            rules=rules,
        )

    def _alignment(
        self, source: str, source_ids: list[int], hyp: Hypothesis, words: bool
    ) -> Alignment:
        eos = self.config.eos_id
        body = [t for t in hyp.tokens if t != eos]
        alignment = Alignment(
            source=source,
            translation=self.tgt_tokenizer.decode(body),
            src_tokens=self._source_tokens(source, source_ids),
            tgt_tokens=[self._piece(self.tgt_tokenizer, t) for t in hyp.tokens],
            weights=hyp.weights,
            scores=hyp.scores,
            token_logprobs=hyp.token_logprobs,
            score=float(hyp.score),
            rank=hyp.rank,
            word_rules=self._word_rules(),
        )
        return alignment.to_words() if words else alignment


_OPTION_ALIASES = {"beam_size": "beam"}


def _decode_options(
    options: DecodeOptions | None,
    beam_size: int | None,
    nbest: int | None,
    values: dict[str, Any],
) -> DecodeOptions:
    """One DecodeOptions from either an instance or its fields given one by one."""
    if beam_size is not None:
        values["beam"] = beam_size
    if nbest is not None:
        values["nbest"] = nbest
    values = {_OPTION_ALIASES.get(k, k): v for k, v in values.items()}
    known = {f.name for f in dataclasses.fields(DecodeOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown decoding option {unknown[0]!r}; valid: {', '.join(sorted(known))}"
        )
    if options is not None:
        if not isinstance(options, DecodeOptions):
            raise UsageError(f"options must be a DecodeOptions, not {type(options).__name__}")
        return dataclasses.replace(options, **values) if values else options
    return DecodeOptions(**values)


def _text_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise UsageError(
            f"{name} must be a string or a list of strings, not {type(value).__name__}"
        )
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise UsageError(f"{name}[{position}] must be a string, not {type(item).__name__}")
    return list(value)


def _check_text(text: str, index: int, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(
            f"{what} {index + 1} is not valid UTF-8 text (bad character at {err.start})"
        ) from err


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
