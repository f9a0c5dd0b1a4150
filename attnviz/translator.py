"""A loaded model with its tokenizers: text in, :class:`Alignment` out."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnviz.alignment import Alignment, SentenceError
from attnviz.checkpoint import Checkpoint, build_model
from attnviz.decoding import (
    Hypothesis,
    SearchRules,
    beam_decode,
    forced_decode,
    greedy_decode,
    normalized_score,
)
from attnviz.device import resolve_device, torch_threads
from attnviz.errors import InputError, UsageError
from attnviz.families.base import pad_batch
from attnviz.io import MAX_LINE_BYTES
from attnviz.options import DecodeOptions
from attnviz.samples import resolve_model_path
from attnviz.tokenizer import Tokenizer

MAX_SOURCE_TOKENS = 1000
PRECISIONS = ("auto", "float32", "float64")
#: Models up to this many parameters decode with one CPU thread by default: their matrices
#: are too small for splitting a step across cores to pay (use worker processes instead).
SMALL_MODEL_PARAMETERS = 20_000_000


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` and ``float32``: float32 on every device; ``float64`` where the device has it.

    In float32 a sentence decoded alone and inside a batch gets the same tokens and attention
    within 1e-4 (matrix kernels chosen by batch shape round differently); in float64 the
    attention is the same to the last bit.
    """
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "float64":
        if device.type == "mps":
            raise UsageError("mps has no float64; use --precision float32 there")
        return torch.float64
    return torch.float32


#: Most CPU threads accepted (torch's thread pool crashes the process far beyond this).
MAX_THREADS = 1024


def resolve_threads(threads: int | None, device: torch.device, parameters: int) -> int | None:
    """CPU threads for decoding: ``None`` picks (1 for small models on the CPU, else torch's
    own choice); 0 leaves torch's choice; a positive number is used as given.

    Returns the number to set while decoding, or None to leave torch's setting alone.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise UsageError(f"threads must be a whole number, not {threads!r}")
    if threads is not None and not 0 <= threads <= MAX_THREADS:
        raise UsageError(f"threads must be between 0 and {MAX_THREADS:,}, not {threads}")
    if threads is None:
        return 1 if device.type == "cpu" and parameters <= SMALL_MODEL_PARAMETERS else None
    return threads or None


class Translator:
    """Decode sentences and keep the attention of every hypothesis.

    ``model`` is the torch module; ``checkpoint`` the loaded file (config, metadata).
    ``threads``: CPU threads while decoding (see :func:`resolve_threads`).
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        threads: int | None = None,
    ) -> None:
        if not isinstance(checkpoint, Checkpoint):
            raise UsageError(
                f"a Translator needs a Checkpoint (see load_model), not {type(checkpoint).__name__}"
            )
        self.device = _resolve(device)
        self.dtype = resolve_precision(precision, self.device)
        self.checkpoint = checkpoint
        self.config = checkpoint.config
        self.src_tokenizer, self.tgt_tokenizer = checkpoint.tokenizers()
        self.rules = checkpoint.rules()
        self.model = build_model(checkpoint, self.device).to(self.dtype)
        self.threads = resolve_threads(threads, self.device, self.model.parameter_count())
        self._piece_tables: dict[int, np.ndarray] = {}

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
        number_from: int = 1,
        **option_values: Any,
    ) -> list[list[Alignment] | SentenceError]:
        """Per input sentence: its hypotheses (best first), or a :class:`SentenceError`.

        Error messages number sentences from ``number_from`` (a caller decoding a stream in
        batches passes the line number of the batch's first sentence).
        """
        options = _decode_options(options, beam_size, nbest, option_values)
        if isinstance(number_from, bool) or not isinstance(number_from, int):
            raise UsageError(f"number_from must be a whole number, not {number_from!r:.40}")
        sentences = _text_list(sentences, "sentences")
        if refs is not None:
            refs = _text_list(refs, "refs", single=False)
            if len(refs) != len(sentences):
                raise UsageError(
                    f"got {len(refs)} references for {len(sentences)} sentences; "
                    "give one per sentence"
                )
        prefix_ids = self._prefix_ids(options.prefix, refs is not None)
        results: list[list[Alignment] | SentenceError | None] = [None] * len(sentences)
        source_ids: dict[int, list[int]] = {}
        ref_ids: dict[int, list[int]] = {}
        level = "words" if options.words else "pieces"
        for index, text in enumerate(sentences):
            try:
                source_ids[index] = self._source_ids(text, index + number_from)
                if refs is not None:
                    ref_ids[index] = self._target_ids(refs[index], index + number_from)
            except InputError as err:
                results[index] = SentenceError(index, text, str(err))
                continue
            if not self._has_content(source_ids[index]):
                # nothing to translate: blank, or only characters the tokenizer drops
                results[index] = [Alignment.empty(text, level=level, word_rules=self._word_rules())]
        todo = sorted(
            (i for i, r in enumerate(results) if r is None), key=lambda i: len(source_ids[i])
        )
        with torch_threads(self.threads):
            for batch in _chunks(todo, options.batch_size):
                hypotheses = self._decode_batch(
                    [source_ids[i] for i in batch],
                    [ref_ids[i] for i in batch] if refs is not None else None,
                    options,
                    prefix_ids,
                )
                for i, hyps in zip(batch, hypotheses, strict=True):
                    results[i] = [
                        self._alignment(sentences[i], source_ids[i], hyp, options.words)
                        for hyp in hyps
                    ]
        return [r if r is not None else [] for r in results]

    def encode_source(self, text: str) -> list[int]:
        """The source ids the encoder reads for ``text`` (``</s>`` included where it is)."""
        return self._source_ids(text, 1)

    def source_tokens(self, text: str) -> tuple[list[int], list[str]]:
        """The source ids of ``text`` and the tokens an Alignment shows for them."""
        ids = self._source_ids(text, 1)
        return ids, self._source_tokens(text, ids)

    def target_ids(self, pieces: Sequence[str]) -> list[int]:
        """Target pieces (as in :attr:`Alignment.tgt_tokens`, ``</s>`` included) to ids.

        A piece the vocabulary lacks raises :class:`InputError`.
        """
        ids = []
        for piece in pieces:
            if piece == "</s>":
                ids.append(self.config.eos_id)
            elif piece == "<unk>":
                ids.append(self.config.unk_id)
            else:
                index = self.tgt_tokenizer.piece_to_id(piece)
                if index == self.config.unk_id:
                    raise InputError(f"the target vocabulary has no piece {piece!r}")
                ids.append(index)
        return ids

    def force_pieces(self, text: str, pieces: Sequence[str], *, topk: int = 0) -> Alignment:
        """The attention of the model made to emit exactly ``pieces`` for ``text`` (another
        model's translation, say), where forcing a reference text would re-tokenize it."""
        ids = self.target_ids(pieces)
        ended = bool(ids) and ids[-1] == self.config.eos_id
        source_ids = self._source_ids(text, 1)
        src, lengths = pad_batch([source_ids], self.config.pad_id, self.device)
        # forced decoding appends </s>; a hypothesis cut short without it loses that row
        rules = self.rules
        hyp = forced_decode(
            self.model,
            src,
            lengths,
            [ids[:-1] if ended else ids],
            length_penalty=rules.length_penalty,
            rules=rules,
            topk=topk,
        )
        cut = _first_steps(hyp[0][0], len(ids), rules)
        return self._alignment(text, source_ids, cut, False)

    # -- internals --------------------------------------------------------------------------

    def _source_ids(self, text: str, number: int) -> list[int]:
        _check_text(text, number, "sentence")
        ids = self.src_tokenizer.encode(text)
        if self.config.src_eos:
            ids.append(self.config.eos_id)
        if len(ids) > MAX_SOURCE_TOKENS:
            raise InputError(
                f"sentence {number} has {len(ids)} tokens; at most {MAX_SOURCE_TOKENS} "
                "are supported"
            )
        return ids

    def _target_ids(self, text: str, number: int) -> list[int]:
        _check_text(text, number, "reference")
        ids = self.tgt_tokenizer.encode(text)
        if len(ids) >= MAX_SOURCE_TOKENS:
            raise InputError(
                f"reference {number} has {len(ids)} tokens; at most "
                f"{MAX_SOURCE_TOKENS - 1} are supported"
            )
        return ids

    def _prefix_ids(self, prefix: str | None, forced: bool) -> list[int] | None:
        """The target ids of a prefix to force; None when there is none."""
        if prefix is None:
            return None
        if forced:
            raise UsageError(
                "a target prefix and references do not combine: references force every token"
            )
        if len(prefix) > MAX_LINE_BYTES:
            raise UsageError(f"the prefix is longer than {MAX_LINE_BYTES:,} characters")
        try:
            prefix.encode("utf-8")
        except UnicodeEncodeError as err:
            raise UsageError(
                f"the prefix is not valid UTF-8 text (bad character at {err.start})"
            ) from err
        ids = self.tgt_tokenizer.encode(prefix)
        if len(ids) >= MAX_SOURCE_TOKENS:
            raise UsageError(
                f"the prefix has {len(ids)} tokens; at most {MAX_SOURCE_TOKENS - 1} are supported"
            )
        return ids or None

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

    def _pieces(self, tokenizer: Tokenizer, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The pieces of ``ids``, looked up in a table made once per tokenizer."""
        table = self._piece_tables.get(id(tokenizer))
        if table is None:
            size = tokenizer.vocab_size
            table = np.array([self._piece(tokenizer, i) for i in range(size)], dtype=object)
            self._piece_tables[id(tokenizer)] = table
        index = np.asarray(ids, dtype=np.int64)
        if index.size and not 0 <= index.min() <= index.max() < table.size:
            return [self._piece(tokenizer, int(i)) for i in index]
        return table[index].tolist()

    def _decode_batch(
        self,
        source_ids: list[list[int]],
        ref_ids: list[list[int]] | None,
        options: DecodeOptions,
        prefix_ids: list[int] | None = None,
    ) -> list[list[Hypothesis]]:
        src, lengths = pad_batch(source_ids, self.config.pad_id, self.device)
        rules = self.rules
        penalty = rules.length_penalty if options.length_penalty is None else options.length_penalty
        topk = options.topk
        if ref_ids is not None:
            return forced_decode(
                self.model, src, lengths, ref_ids, length_penalty=penalty, rules=rules, topk=topk
            )
        prefixes = [prefix_ids] * len(source_ids) if prefix_ids is not None else None
        if options.beam == 1:
            return greedy_decode(
                self.model,
                src,
                lengths,
                length_penalty=penalty,
                rules=rules,
                prefixes=prefixes,
                topk=topk,
            )
        return beam_decode(
            self.model,
            src,
            lengths,
            beam_size=options.beam,
            nbest=options.nbest,
            length_penalty=penalty,
            rules=rules,
            prefixes=prefixes,
            topk=topk,
        )

    def _alignment(
        self, source: str, source_ids: list[int], hyp: Hypothesis, words: bool
    ) -> Alignment:
        eos = self.config.eos_id
        body = [t for t in hyp.tokens if t != eos]
        alignment = Alignment.from_stack(
            np.moveaxis(hyp.weights, 0, 2),  # [T, L, H, S] -> [L, H, T, S]
            np.moveaxis(hyp.scores, 0, 2),
            source=source,
            translation=self.tgt_tokenizer.decode(body),
            src_tokens=self._source_tokens(source, source_ids),
            tgt_tokens=self._pieces(self.tgt_tokenizer, hyp.tokens),
            token_logprobs=hyp.token_logprobs,
            score=float(hyp.score),
            rank=hyp.rank,
            meta={"topk": self._alternatives(hyp)} if hyp.topk_ids is not None else {},
            word_rules=self._word_rules(),
        )
        return alignment.to_words() if words else alignment

    def _alternatives(self, hyp: Hypothesis) -> list[list[list[Any]]]:
        """Per step, the most likely next tokens as ``[piece, probability]``, best first."""
        assert hyp.topk_ids is not None and hyp.topk_logprobs is not None
        probabilities = np.exp(hyp.topk_logprobs.astype(np.float64))  # [T, K]
        steps = []
        for ids, probs in zip(hyp.topk_ids.tolist(), probabilities.tolist(), strict=True):
            pieces = [self._piece(self.tgt_tokenizer, int(i)) for i in ids]
            steps.append([[piece, p] for piece, p in zip(pieces, probs, strict=True)])
        return steps


def _first_steps(hyp: Hypothesis, steps: int, rules: SearchRules) -> Hypothesis:
    """``hyp`` cut to its first ``steps`` tokens, its score recomputed."""
    if steps >= len(hyp.tokens):
        return hyp
    logprobs = hyp.token_logprobs[:steps]
    return dataclasses.replace(
        hyp,
        tokens=hyp.tokens[:steps],
        weights=hyp.weights[:steps],
        scores=hyp.scores[:steps],
        token_logprobs=logprobs,
        score=normalized_score(float(logprobs.sum()), steps, rules.length_penalty, rules),
        topk_ids=None if hyp.topk_ids is None else hyp.topk_ids[:steps],
        topk_logprobs=None if hyp.topk_logprobs is None else hyp.topk_logprobs[:steps],
    )


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


def _text_list(value: Any, name: str, *, single: bool = True) -> list[str]:
    """A list of strings from a list (or tuple) of them, or from one string where ``single``.

    ``refs`` must be a list even for one sentence: a lone string there is far more often a
    mistake (one reference meant per sentence) than a wish.
    """
    if isinstance(value, str):
        if single:
            return [value]
        raise UsageError(f"{name} must be a list of strings (one per sentence), not a string")
    if isinstance(value, bytes | bytearray):
        raise UsageError(f"{name} must be text (str), not bytes; decode it first")
    if not isinstance(value, Sequence):
        wanted = "a string or a list of strings" if single else "a list of strings"
        raise UsageError(f"{name} must be {wanted}, not {type(value).__name__}")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise UsageError(f"{name}[{position}] must be a string, not {type(item).__name__}")
    return list(value)


def _check_text(text: str, number: int, what: str) -> None:
    """Valid UTF-8 text of at most MAX_LINE_BYTES bytes, checked before any tokenizing."""
    too_long = InputError(f"{what} {number} is longer than {MAX_LINE_BYTES:,} bytes")
    if len(text) > MAX_LINE_BYTES:  # every character takes at least one byte
        raise too_long
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise InputError(
            f"{what} {number} is not valid UTF-8 text (bad character at {err.start})"
        ) from err
    if size > MAX_LINE_BYTES:
        raise too_long


def _resolve(device: Any) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise UsageError(f"device must be text such as 'cpu', not {type(device).__name__}")
    return resolve_device(device)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    precision: str = "auto",
    threads: int | None = None,
    *,
    src_spm: str | os.PathLike[str] | bytes | None = None,
    tgt_spm: str | os.PathLike[str] | bytes | None = None,
) -> Translator:
    """Load a model (a path, or the name of a bundled sample model) on ``device``.

    The path may be an attnviz checkpoint or a model of another toolkit that attnviz
    recognises from its content (an OpenNMT-py ``.pt``; a JoeyNMT folder, its ``config.yaml``
    or a ``.ckpt`` in it; see :mod:`attnviz.importers`). ``src_spm``/``tgt_spm``:
    SentencePiece models (paths or bytes) for a foreign model that names them but does not
    hold them, or whose text was segmented outside the toolkit. ``precision``: ``float32``
    (also ``auto``, the default) or ``float64``. ``threads``: CPU threads while decoding;
    None: one for models of up to 20 M parameters on the CPU, else torch's choice; 0:
    torch's choice.
    """
    if name_or_path is not None and not isinstance(name_or_path, str | os.PathLike):
        raise UsageError(
            "the model must be a checkpoint path or a bundled model name, "
            f"not {type(name_or_path).__name__}"
        )
    target = _resolve(device)
    if not isinstance(precision, str):
        raise UsageError(f"precision must be text such as 'auto', not {type(precision).__name__}")
    from attnviz.importers import load_any

    path = resolve_model_path(name_or_path)
    checkpoint = load_any(path, map_location=target, src_spm=src_spm, tgt_spm=tgt_spm)
    return Translator(checkpoint, target, precision, threads)
