"""Training: parallel text in, a self-describing checkpoint out.

A :class:`Trainer` takes a :class:`ModelSpec` (the network) and a :class:`TrainConfig` (the
run), both checked in their constructors before any data is read. :meth:`Trainer.prepare`
trains the tokenizers and builds the model, :meth:`Trainer.fit` trains it and reports through a
callback (the CLI owns the progress bar), and :meth:`Trainer.save_best` writes the checkpoint
atomically whenever validation loss improves, so an interrupted run keeps the best one.

Errors about an option carry its field name (``field``); the CLI maps field names to flags.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attnviz.errors import AttnvizError, InputError, OutputError, TokenizerError, UsageError

if TYPE_CHECKING:
    import torch

    from attnviz.families.rnn.model import RNNConfig, RNNModel

SPM_TYPES = ("unigram", "bpe")
RNN_TYPES = ("gru", "lstm")
#: Largest embedding, hidden or attention size.
MAX_SIZE = 8192
MAX_LAYERS = 16
MAX_VOCAB_SIZE = 1_000_000
#: Largest model trained: weights, gradients and two Adam moments take 16 bytes a parameter,
#: so this keeps training under about 4 GB.
MAX_PARAMETERS = 250_000_000
#: Seeds go to Python's, torch's and SentencePiece's generators; the last takes 32 bits.
MAX_SEED = 2**32 - 1
MAX_BATCH_SENTENCES = 4096
MAX_BATCH_TOKENS = 1_000_000
MAX_LENGTH = 10_000
MAX_THREADS = 1024
MAX_COUNT = 10**9  # epochs, steps, evaluation interval, patience


# -- errors ----------------------------------------------------------------------------------


class OptionError(UsageError):
    """A TrainConfig or ModelSpec value that cannot be used; ``field`` is its name."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name} {problem}")
        self.field = field_name


class DataError(InputError):
    """The data cannot be trained on with an option's value; ``field`` names that option."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class DivergedError(AttnvizError):
    """The loss or the weights became NaN or infinite; nothing of that state was saved."""

    field = "learning_rate"


# -- validation ------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"


def _check_int(name: str, value: Any, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(name, f"must be a whole number, not {_shown(value)}")
    if not low <= value <= high:
        raise OptionError(name, f"must be between {low} and {high:,}, not {_shown(value)}")


def _check_real(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """A finite number in the range; an open end excludes that bound."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(name, f"must be a number, not {_shown(value)}")
    if not math.isfinite(value):
        raise OptionError(name, f"must be a finite number, not {value}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        if math.isinf(high):
            bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            bound = f"in {left}{low:g}, {high:g}{right}"
        raise OptionError(name, f"must be {bound}, not {value:g}")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise OptionError(name, f"must be one of {', '.join(choices)}, not {_shown(value)}")


# -- the model and the run -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """The network to train; vocabulary sizes come from the tokenizers at training time.

    ``decoder_hidden_size`` defaults to the encoder output size (``hidden_size`` times the
    directions), which dot attention requires. ``layers`` is used by encoder and decoder.
    """

    attention: str = "additive"
    rnn: str = "gru"
    embedding_size: int = 128
    hidden_size: int = 256
    decoder_hidden_size: int | None = None
    attention_size: int = 256
    layers: int = 1
    dropout: float = 0.1
    bidirectional: bool = True

    def __post_init__(self) -> None:
        _check_choice("attention", self.attention, ("additive", "dot", "general"))
        _check_choice("rnn", self.rnn, RNN_TYPES)
        for name in ("embedding_size", "hidden_size", "attention_size"):
            _check_int(name, getattr(self, name), 1, MAX_SIZE)
        _check_int("decoder_hidden_size", self.decoder_hidden_size, 1, MAX_SIZE, optional=True)
        _check_int("layers", self.layers, 1, MAX_LAYERS)
        _check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        if not isinstance(self.bidirectional, bool):
            raise OptionError("bidirectional", f"must be True or False, not {self.bidirectional!r}")
        if self.attention == "dot" and self.decoder_size != self.encoder_output_size:
            raise OptionError(
                "decoder_hidden_size",
                f"({self.decoder_size}) must equal the encoder output size "
                f"({self.encoder_output_size}) for dot attention",
            )

    @property
    def encoder_output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def decoder_size(self) -> int:
        return self.decoder_hidden_size or self.encoder_output_size

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int) -> RNNConfig:
        from attnviz.families.rnn.model import RNNConfig

        return RNNConfig(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            decoder_hidden_size=self.decoder_size,
            attention_size=self.attention_size,
            attention=self.attention,
            rnn=self.rnn,
            encoder_layers=self.layers,
            decoder_layers=self.layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
        )

    def parameter_count(self, src_vocab_size: int, tgt_vocab_size: int) -> int:
        """The model's parameter count, computed without building it."""
        gates = 3 if self.rnn == "gru" else 4
        e, h, q, d = self.embedding_size, self.encoder_output_size, self.decoder_size, 0
        directions = 2 if self.bidirectional else 1
        encoder = src_vocab_size * e + _rnn_parameters(
            gates, e, self.hidden_size, self.layers, directions
        )
        bridge = (h * q * self.layers + q * self.layers) * (2 if self.rnn == "lstm" else 1)
        if self.attention == "additive":
            d = q * self.attention_size + h * self.attention_size + self.attention_size
        elif self.attention == "general":
            d = h * q
        decoder = (
            tgt_vocab_size * e  # embedding
            + _rnn_parameters(gates, e + q, q, self.layers, 1)  # input feeding: E + Q in
            + d  # attention
            + (h + q) * q  # W_c
            + q  # and its bias
            + q * tgt_vocab_size  # output layer
            + tgt_vocab_size  # and its bias
        )
        return encoder + bridge + decoder


def _rnn_parameters(gates: int, input_size: int, hidden: int, layers: int, dirs: int) -> int:
    total = 0
    for layer in range(layers):
        layer_input = input_size if layer == 0 else hidden * dirs
        total += dirs * (gates * hidden * (layer_input + hidden) + 2 * gates * hidden)
    return total


@dataclass(frozen=True)
class TrainConfig:
    """How to train: tokenizers, optimiser, batches, when to stop, seed.

    ``src_vocab_size``/``tgt_vocab_size`` default to ``vocab_size``; ``max_steps`` overrides
    ``epochs``; ``eval_every`` defaults to once per epoch; ``patience`` 0 and ``clip`` 0 turn
    early stopping and clipping off; ``lr_decay`` multiplies the learning rate after an
    evaluation without gain (1 turns it off); pairs with more than ``max_length`` tokens on a
    side are skipped.
    """

    vocab_size: int = 1000
    src_vocab_size: int | None = None
    tgt_vocab_size: int | None = None
    spm_type: str = "unigram"
    learning_rate: float = 2e-3
    batch_sentences: int = 64
    batch_tokens: int | None = None
    clip: float = 1.0
    epochs: int = 10
    max_steps: int | None = None
    max_time: float | None = None  # seconds
    patience: int = 3
    lr_decay: float = 0.5
    eval_every: int | None = None
    valid_fraction: float = 0.05
    max_length: int = 150
    label_smoothing: float = 0.0
    seed: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_int("vocab_size", self.vocab_size, 8, MAX_VOCAB_SIZE)
        for name in ("src_vocab_size", "tgt_vocab_size"):
            _check_int(name, getattr(self, name), 8, MAX_VOCAB_SIZE, optional=True)
        _check_choice("spm_type", self.spm_type, SPM_TYPES)
        _check_real("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_int("batch_sentences", self.batch_sentences, 1, MAX_BATCH_SENTENCES)
        _check_int("batch_tokens", self.batch_tokens, 1, MAX_BATCH_TOKENS, optional=True)
        _check_real("clip", self.clip, 0.0, math.inf)
        _check_int("epochs", self.epochs, 1, MAX_COUNT)
        _check_int("max_steps", self.max_steps, 1, MAX_COUNT, optional=True)
        _check_real("max_time", self.max_time, 0.0, math.inf, low_open=True, optional=True)
        _check_int("patience", self.patience, 0, MAX_COUNT)
        _check_real("lr_decay", self.lr_decay, 0.0, 1.0, low_open=True)
        _check_int("eval_every", self.eval_every, 1, MAX_COUNT, optional=True)
        _check_real("valid_fraction", self.valid_fraction, 0.0, 1.0, low_open=True, high_open=True)
        _check_int("max_length", self.max_length, 1, MAX_LENGTH)
        _check_real("label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_int("threads", self.threads, 1, MAX_THREADS, optional=True)

    @property
    def src_vocabulary(self) -> int:
        return self.src_vocab_size or self.vocab_size

    @property
    def tgt_vocabulary(self) -> int:
        return self.tgt_vocab_size or self.vocab_size


def check_model_size(spec: ModelSpec, config: TrainConfig) -> int:
    """The parameter count of the model these options make; refused above MAX_PARAMETERS."""
    count = spec.parameter_count(config.src_vocabulary, config.tgt_vocabulary)
    if count > MAX_PARAMETERS:
        raise UsageError(
            f"the model would have {count:,} parameters (about {count * 16 / 1e9:,.0f} GB to "
            f"train); at most {MAX_PARAMETERS:,}: lower the sizes or the vocabularies"
        )
    return count


@dataclass
class Progress:
    """What the callback gets after every update (``step``) and evaluation (``eval``)."""

    step: int
    total_steps: int
    loss: float  # training loss per target token, over the last 50 batches
    tokens_per_second: float
    best_valid_loss: float | None = None
    valid_loss: float | None = None
    event: Literal["step", "eval"] = "step"


@dataclass
class TrainResult:
    path: Path
    steps: int
    best_valid_loss: float
    seconds: float
    interrupted: bool
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


# -- data ------------------------------------------------------------------------------------


def read_tsv(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``source<TAB>target`` per line; blank lines are skipped, anything else must fit."""
    from attnviz.io import read_lines

    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise InputError(f"{path}:{number}: no tab between source and target")
        source, target = line.split("\t", 1)
        if "\t" in target:
            raise InputError(f"{path}:{number}: more than one tab; expected source<TAB>target")
        if not source.strip() or not target.strip():
            raise InputError(f"{path}:{number}: empty source or target")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise InputError(f"{path}: no sentence pairs (the file is empty)")
    return pairs


def read_parallel(
    source_path: str | os.PathLike[str], target_path: str | os.PathLike[str]
) -> list[tuple[str, str]]:
    """Line ``n`` of the source file with line ``n`` of the target file; blank pairs skipped."""
    from attnviz.io import read_lines

    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise InputError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}"
        )
    pairs = []
    for number, (source, target) in enumerate(zip(sources, targets, strict=True), start=1):
        if not source.strip() and not target.strip():
            continue
        if not source.strip() or not target.strip():
            raise InputError(f"line {number}: empty source or target")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise InputError(f"{source_path}: no sentence pairs (the files are empty)")
    return pairs


def corpus_hash(pairs: Sequence[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()


def _check_pairs(pairs: Any, what: str) -> list[tuple[str, str]]:
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise UsageError(f"{what} must be a list of (source, target) pairs")
    for index, pair in enumerate(pairs):
        if not (
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and all(isinstance(side, str) for side in pair)
        ):
            raise UsageError(f"{what}[{index}] is not a (source, target) pair of text")
    return [(source, target) for source, target in pairs]


def _batches(
    lengths: list[tuple[int, int]],
    batch_sentences: int,
    batch_tokens: int | None,
    rng: random.Random,
) -> list[list[int]]:
    """Length-bucketed batches: sort by length (ties shuffled), cut, shuffle batch order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: (lengths[i][0], lengths[i][1]))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        size = max(lengths[index])
        if current:
            if batch_tokens is None:
                full = len(current) >= batch_sentences
            else:
                full = max(longest, size) * (len(current) + 1) > batch_tokens
            if full:
                batches.append(current)
                current, longest = [], 0
        current.append(index)
        longest = max(longest, size)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


Example = tuple[list[int], list[int]]  # source ids (with </s> if the model wants it), target ids


class _Meter:
    """Training loss per target token over the last 50 batches, and tokens per second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tokens = 0
        self.recent: deque[tuple[float, int]] = deque(maxlen=50)

    def add(self, loss_sum: float, target_tokens: int, all_tokens: int) -> None:
        self.recent.append((loss_sum, target_tokens))
        self.tokens += all_tokens

    @property
    def loss(self) -> float:
        return sum(value for value, _ in self.recent) / max(sum(n for _, n in self.recent), 1)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        return self.tokens / max(self.elapsed, 1e-9)


# -- training --------------------------------------------------------------------------------


class Trainer:
    """Trains one model: ``prepare(pairs)``, then ``fit(out_path)``.

    ``evaluate()`` gives the validation loss of the model as it is; ``save_best(path, loss)``
    writes a checkpoint when ``loss`` beats every earlier one. After ``fit``, ``history`` holds
    each evaluation and ``model`` the trained network (its last state, not necessarily the best).
    """

    def __init__(
        self,
        spec: ModelSpec | None = None,
        config: TrainConfig | None = None,
        *,
        device: str = "cpu",
    ) -> None:
        from attnviz.device import resolve_device

        self.spec = ModelSpec() if spec is None else spec
        self.config = TrainConfig() if config is None else config
        if not isinstance(self.spec, ModelSpec):
            raise UsageError(f"spec must be a ModelSpec, not {type(self.spec).__name__}")
        if not isinstance(self.config, TrainConfig):
            raise UsageError(f"config must be a TrainConfig, not {type(self.config).__name__}")
        check_model_size(self.spec, self.config)
        self.device = resolve_device(device)
        self.model: RNNModel | None = None
        self.best_valid_loss = math.inf
        self.best_step = 0
        self.history: list[dict[str, float]] = []
        self.step = 0

    # preparation

    def prepare(
        self,
        pairs: Sequence[tuple[str, str]],
        valid_pairs: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        """Hold out validation pairs (unless given), train both tokenizers, build the model."""
        import torch

        from attnviz import __version__
        from attnviz.families.rnn.model import RNNModel

        config = self.config
        train_pairs = _check_pairs(pairs, "pairs")
        if config.threads:
            torch.set_num_threads(config.threads)
        self._rng = random.Random(config.seed)
        torch.manual_seed(config.seed)
        train_pairs, valid = self._split(train_pairs, valid_pairs)
        self._src_spm = self._tokenizer("source", [s for s, _ in train_pairs])
        self._tgt_spm = self._tokenizer("target", [t for _, t in train_pairs])
        self.model_config = self.spec.model_config(
            self._src_spm.vocab_size, self._tgt_spm.vocab_size
        )
        self.model = RNNModel(self.model_config).to(self.device)
        self._train_data = self._encode(train_pairs)
        self._valid_data = self._encode(valid)
        if not self._train_data or not self._valid_data:
            side = "training" if not self._train_data else "validation"
            raise DataError(
                "max_length",
                f"no {side} sentence pair has at most {config.max_length} tokens a side "
                "(max_length)",
            )
        self._optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate)
        self._valid_batches = _batches(
            [(len(s), len(t) + 1) for s, t in self._valid_data], 128, None, random.Random(0)
        )
        self._steps_per_epoch = len(self._epoch_batches())
        self._base_metadata = {
            "attnviz_version": __version__,
            "corpus_sha256": corpus_hash(train_pairs),
            "train_pairs": len(self._train_data),
            "valid_pairs": len(self._valid_data),
            "seed": config.seed,
            "train_config": asdict(config),
        }
        self._metadata = dict(self._base_metadata)
        self._meter = _Meter()

    def _split(
        self, pairs: list[tuple[str, str]], valid_pairs: Sequence[tuple[str, str]] | None
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        if valid_pairs is not None:
            valid = _check_pairs(valid_pairs, "valid_pairs")
        else:
            if len(pairs) < 4:
                raise InputError(f"only {len(pairs)} sentence pairs: too few to hold some out")
            shuffled = pairs[:]
            self._rng.shuffle(shuffled)
            count = max(1, min(int(len(shuffled) * self.config.valid_fraction), 2000))
            valid, pairs = shuffled[:count], shuffled[count:]
        if not valid:
            raise InputError("the validation set is empty")
        return pairs, valid

    def _tokenizer(self, side: str, lines: list[str]):
        from attnviz.tokenizer import SentencePieceTokenizer, train_sentencepiece

        config = self.config
        size = config.src_vocabulary if side == "source" else config.tgt_vocabulary
        own = config.src_vocab_size if side == "source" else config.tgt_vocab_size
        name = ("src_vocab_size" if side == "source" else "tgt_vocab_size") if own else "vocab_size"
        try:
            model = train_sentencepiece(lines, size, model_type=config.spm_type, seed=config.seed)
        except TokenizerError as err:
            message = str(err).replace("--vocab-size", name)
            raise DataError(name, f"{side} side: {message}") from err
        return SentencePieceTokenizer(model)

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[Example]:
        """Token ids of each pair; pairs longer than max_length on a side are left out."""
        limit, model_config = self.config.max_length, self.model_config
        examples = []
        for source, target in pairs:
            src_ids = self._src_spm.encode(source)
            if model_config.src_eos:
                src_ids.append(model_config.eos_id)
            tgt_ids = self._tgt_spm.encode(target)
            if len(src_ids) <= limit and len(tgt_ids) + 1 <= limit:
                examples.append((src_ids, tgt_ids))
        return examples

    def _epoch_batches(self) -> list[list[int]]:
        lengths = [(len(s), len(t) + 1) for s, t in self._train_data]
        config = self.config
        return _batches(lengths, config.batch_sentences, config.batch_tokens, self._rng)

    def _tensors(self, examples: list[Example]) -> tuple[torch.Tensor, ...]:
        """src [B, N], lengths [B], tgt_in [B, T] (<s> first), tgt_out [B, T] (</s> last)."""
        from attnviz.families.base import pad_batch

        config, device = self.model_config, self.device
        src, lengths = pad_batch([s for s, _ in examples], config.pad_id, device)
        tgt_in, _ = pad_batch([[config.bos_id, *t] for _, t in examples], config.pad_id, device)
        tgt_out, _ = pad_batch([[*t, config.eos_id] for _, t in examples], config.pad_id, device)
        return src, lengths, tgt_in, tgt_out

    def _require_model(self) -> RNNModel:
        if self.model is None:
            raise UsageError("nothing to train yet: call prepare() with the sentence pairs first")
        return self.model

    # training

    def fit(
        self,
        out_path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        metadata: dict[str, Any] | None = None,
        callback: Callable[[Progress], None] | None = None,
    ) -> TrainResult:
        """Train until the epochs, steps or time run out or patience ends it.

        The best checkpoint goes to ``out_path``, which must be a new file unless ``overwrite``.
        Ctrl-C stops the run and keeps the best checkpoint (the current model if there is none
        yet). A loss that becomes NaN or infinite raises :class:`DivergedError`.
        """
        model = self._require_model()
        out = Path(out_path)
        check_out_path(out, overwrite=overwrite)
        self._out, self._callback = out, callback
        self._metadata = {**self._base_metadata, **(metadata or {})}
        self._meter = _Meter()
        self._bad_evals = 0
        config = self.config
        self._total_steps = config.max_steps or self._steps_per_epoch * config.epochs
        self._eval_every = config.eval_every or self._steps_per_epoch
        interrupted = stopped_early = False
        model.train()
        try:
            stopped_early = self._train_until_done()
        except KeyboardInterrupt:
            interrupted = True
            if math.isinf(self.best_valid_loss):
                self.save_best(out, self.evaluate())
        return TrainResult(
            path=out,
            steps=self.step,
            best_valid_loss=self.best_valid_loss,
            seconds=self._meter.elapsed,
            interrupted=interrupted,
            stopped_early=stopped_early,
            history=list(self.history),
        )

    def _train_until_done(self) -> bool:
        """Epochs of updates with evaluations; True when patience ran out."""
        config = self.config
        while True:
            for indices in self._epoch_batches():
                self._update([self._train_data[i] for i in indices])
                out_of_time = config.max_time is not None and self._meter.elapsed >= config.max_time
                at_end = self.step >= self._total_steps
                if (self.step % self._eval_every == 0 or at_end or out_of_time) and (
                    self._evaluate_and_save()
                ):
                    return True
                if at_end or out_of_time:
                    return False

    def _update(self, examples: list[Example]) -> None:
        """One optimiser step on a batch."""
        import torch

        model, config = self._require_model(), self.config
        src, src_len, tgt_in, tgt_out = self._tensors(examples)
        logits, _ = model(src, src_len, tgt_in)  # [B, T, V]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)),  # [B*T, V]
            tgt_out.reshape(-1),  # [B*T]
            ignore_index=self.model_config.pad_id,
            reduction="sum",
            label_smoothing=config.label_smoothing,
        )
        loss_sum = loss.item()
        self._check_finite(loss_sum, "training loss", self.step + 1)
        target_tokens = int((tgt_out != self.model_config.pad_id).sum())
        self._optimizer.zero_grad(set_to_none=True)
        (loss / target_tokens).backward()
        if config.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        self._optimizer.step()
        self.step += 1
        self._meter.add(loss_sum, target_tokens, target_tokens + int(src_len.sum()))
        self._report("step")

    def _evaluate_and_save(self) -> bool:
        """Evaluate, keep the model if best, decay the rate if not; True to stop early."""
        valid_loss = self.evaluate()
        self._check_finite(valid_loss, "validation loss")
        improved = self.save_best(self._out, valid_loss)
        self._bad_evals = 0 if improved else self._bad_evals + 1
        if not improved and self.config.lr_decay < 1.0:
            for group in self._optimizer.param_groups:
                group["lr"] *= self.config.lr_decay
        self.history.append({"step": self.step, "valid_loss": valid_loss})
        self._report("eval", valid_loss)
        return self.config.patience > 0 and self._bad_evals >= self.config.patience

    def _report(self, event: Literal["step", "eval"], valid_loss: float | None = None) -> None:
        if self._callback is None:
            return
        best = None if math.isinf(self.best_valid_loss) else self.best_valid_loss
        self._callback(
            Progress(
                step=self.step,
                total_steps=self._total_steps,
                loss=self._meter.loss,
                tokens_per_second=self._meter.rate,
                best_valid_loss=best,
                valid_loss=valid_loss,
                event=event,
            )
        )

    def _check_finite(self, value: float, what: str, step: int | None = None) -> None:
        if math.isfinite(value):
            return
        if math.isinf(self.best_valid_loss):
            kept = "nothing was written"
        else:
            kept = f"the best checkpoint so far (step {self.best_step}) is kept"
        raise DivergedError(
            f"training diverged at step {self.step if step is None else step}: the {what} is "
            f"{value}; {kept}; "
            f"try a lower learning_rate (now {self.config.learning_rate:g})"
        )

    # evaluation and checkpoints

    def evaluate(self) -> float:
        """Validation loss per target token (no label smoothing) of the model as it is now."""
        import torch

        model = self._require_model()
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        pad_id = self.model_config.pad_id
        with torch.no_grad():
            for indices in self._valid_batches:
                batch = [self._valid_data[i] for i in indices]
                src, src_len, tgt_in, tgt_out = self._tensors(batch)
                logits, _ = model(src, src_len, tgt_in)  # [B, T, V]
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)),
                        tgt_out.reshape(-1),
                        ignore_index=pad_id,
                        reduction="sum",
                    )
                )
                count += int((tgt_out != pad_id).sum())
        model.train(was_training)
        return total / max(count, 1)

    def save_best(self, out_path: str | os.PathLike[str], valid_loss: float) -> bool:
        """Write the model to ``out_path`` if ``valid_loss`` beats every earlier one.

        A non-finite loss, or weights that are not all finite, raise :class:`DivergedError`
        and write nothing.
        """
        import torch

        from attnviz.checkpoint import Checkpoint, save_checkpoint

        model = self._require_model()
        self._check_finite(valid_loss, "validation loss")
        if valid_loss >= self.best_valid_loss:
            return False
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            self._check_finite(math.nan, "model's weights")
        info = {
            **self._metadata,
            "steps": self.step,
            "epochs": round(self.step / self._steps_per_epoch, 3),
            "train_seconds": round(self._meter.elapsed, 1),
            "valid_loss": round(valid_loss, 5),
            "valid_perplexity": round(math.exp(min(valid_loss, 50)), 4),
        }
        checkpoint = Checkpoint(
            self.model_config,
            model.state_dict(),
            self._src_spm.to_spec(),
            self._tgt_spm.to_spec(),
            info,
        )
        save_checkpoint(checkpoint, out_path)
        self.best_valid_loss, self.best_step = valid_loss, self.step
        return True


def check_out_path(out: Path, *, overwrite: bool = False) -> None:
    """The checkpoint path: a new file in an existing, writable folder (or a file to replace)."""
    from attnviz.io import check_output

    check_output(out, overwrite=overwrite)
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: folder {out.parent} is not writable")


def train(
    pairs: Sequence[tuple[str, str]],
    out_path: str | os.PathLike[str],
    *,
    spec: ModelSpec | None = None,
    config: TrainConfig | None = None,
    valid_pairs: Sequence[tuple[str, str]] | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    metadata: dict[str, Any] | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train tokenizers and a model; write the best checkpoint (by validation loss) to out_path."""
    trainer = Trainer(spec, config, device=device)
    check_out_path(Path(out_path), overwrite=overwrite)
    trainer.prepare(pairs, valid_pairs)
    return trainer.fit(out_path, overwrite=overwrite, metadata=metadata, callback=callback)
