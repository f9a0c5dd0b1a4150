"""Training: parallel text in, a self-describing checkpoint out.

The loop reports through callbacks; the CLI owns the progress bar. The best checkpoint (by
validation loss) is written atomically whenever it improves, so an interrupted run keeps it.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attnviz.errors import InputError, UsageError


@dataclass(frozen=True)
class TrainConfig:
    vocab_size: int = 1000
    src_vocab_size: int | None = None
    tgt_vocab_size: int | None = None
    spm_type: str = "unigram"  # or "bpe"
    learning_rate: float = 2e-3
    batch_sentences: int = 64
    batch_tokens: int | None = None
    clip: float = 1.0
    epochs: int = 10
    max_steps: int | None = None
    max_time: float | None = None  # seconds
    patience: int = 3
    lr_decay: float = 0.5  # multiply the learning rate by this after an evaluation without gain
    eval_every: int | None = None  # steps; default: once per epoch
    valid_fraction: float = 0.05
    max_length: int = 150
    label_smoothing: float = 0.0
    seed: int = 1
    threads: int | None = None


@dataclass
class Progress:
    step: int
    epoch: int
    total_steps: int
    loss: float
    tokens_per_second: float
    elapsed: float
    valid_loss: float | None = None
    best_valid_loss: float | None = None
    event: str = "step"  # step | eval | stop


@dataclass
class TrainResult:
    path: Path
    steps: int
    epochs_done: float
    best_valid_loss: float
    seconds: float
    interrupted: bool
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


# -- data ------------------------------------------------------------------------------------


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """``source<TAB>target`` per line; blank lines are skipped, anything else must fit."""
    file = Path(path)
    lines = _read_lines(file)
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise InputError(f"{file}:{number}: no tab between source and target")
        source, target = line.split("\t", 1)
        if "\t" in target:
            raise InputError(f"{file}:{number}: more than one tab; expected source<TAB>target")
        if not source.strip() or not target.strip():
            raise InputError(f"{file}:{number}: empty source or target")
        pairs.append((source.strip(), target.strip()))
    if not pairs:
        raise InputError(f"{file}: no sentence pairs (the file is empty)")
    return pairs


def read_parallel(source_path: str | Path, target_path: str | Path) -> list[tuple[str, str]]:
    sources = _read_lines(Path(source_path))
    targets = _read_lines(Path(target_path))
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


def _read_lines(file: Path) -> list[str]:
    if not file.exists():
        raise InputError(f"{file}: no such file")
    if file.is_dir():
        raise InputError(f"{file}: is a folder, not a text file")
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{file}: not UTF-8 text (bad byte at offset {err.start})") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def corpus_hash(pairs: Sequence[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for source, target in pairs:
        digest.update(f"{source}\t{target}\n".encode())
    return digest.hexdigest()


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
            too_many = len(current) >= batch_sentences if batch_tokens is None else False
            too_long = (
                batch_tokens is not None and max(longest, size) * (len(current) + 1) > batch_tokens
            )
            if too_many or too_long:
                batches.append(current)
                current, longest = [], 0
        current.append(index)
        longest = max(longest, size)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


# -- training --------------------------------------------------------------------------------


def train(
    pairs: Sequence[tuple[str, str]],
    out_path: str | Path,
    *,
    model_options: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    valid_pairs: Sequence[tuple[str, str]] | None = None,
    device: str = "cpu",
    metadata: dict[str, Any] | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train tokenizers and a model; write the best checkpoint (by validation loss) to out_path."""
    import torch

    from attnviz import __version__
    from attnviz.checkpoint import Checkpoint, save_checkpoint
    from attnviz.device import resolve_device
    from attnviz.model import ModelConfig, Seq2Seq
    from attnviz.tokenizer import SentencePieceTokenizer, sentencepiece_spec

    config = config or TrainConfig()
    _check(config)
    target_device = resolve_device(device)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    pairs = list(pairs)
    if valid_pairs is None:
        if len(pairs) < 4:
            raise InputError(f"only {len(pairs)} sentence pairs: too few to hold some out")
        shuffled = pairs[:]
        rng.shuffle(shuffled)
        n_valid = max(1, min(int(len(shuffled) * config.valid_fraction), 2000))
        valid_pairs, pairs = shuffled[:n_valid], shuffled[n_valid:]
    valid_pairs = list(valid_pairs)
    if not valid_pairs:
        raise InputError("the validation set is empty")

    src_spm = _tokenizer_for(
        "source", [s for s, _ in pairs], config.src_vocab_size or config.vocab_size, config
    )
    tgt_spm = _tokenizer_for(
        "target", [t for _, t in pairs], config.tgt_vocab_size or config.vocab_size, config
    )
    src_tok, tgt_tok = SentencePieceTokenizer(src_spm), SentencePieceTokenizer(tgt_spm)
    options = dict(model_options or {})
    try:
        model_config = ModelConfig(
            src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size, **options
        )
        model = Seq2Seq(model_config).to(target_device)
    except TypeError as err:
        raise UsageError(f"bad model option: {err}") from err

    def encode(data: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        encoded = []
        for source, target in data:
            src_ids = src_tok.encode(source)
            if model_config.src_eos:
                src_ids.append(model_config.eos_id)
            tgt_ids = tgt_tok.encode(target)
            if len(src_ids) <= config.max_length and len(tgt_ids) + 1 <= config.max_length:
                encoded.append((src_ids, tgt_ids))
        return encoded

    train_data = encode(pairs)
    valid_data = encode(valid_pairs)
    if not train_data or not valid_data:
        raise InputError(f"no sentence pairs within --max-length {config.max_length} tokens")

    def tensors(indices: list[int], data: list[tuple[list[int], list[int]]]):
        batch = [data[i] for i in indices]
        lengths = torch.tensor([len(s) for s, _ in batch])
        width = int(lengths.max())
        src = torch.full((len(batch), width), model_config.pad_id, dtype=torch.long)
        t_len = max(len(t) for _, t in batch) + 1
        tgt_in = torch.full((len(batch), t_len), model_config.pad_id, dtype=torch.long)
        tgt_out = torch.full((len(batch), t_len), model_config.pad_id, dtype=torch.long)
        for b, (s, t) in enumerate(batch):
            src[b, : len(s)] = torch.tensor(s)
            tgt_in[b, : len(t) + 1] = torch.tensor([model_config.bos_id, *t])
            tgt_out[b, : len(t) + 1] = torch.tensor([*t, model_config.eos_id])
        return src.to(target_device), lengths, tgt_in.to(target_device), tgt_out.to(target_device)

    loss_fn = torch.nn.CrossEntropyLoss(
        ignore_index=model_config.pad_id,
        reduction="sum",
        label_smoothing=config.label_smoothing,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    lengths = [(len(s), len(t) + 1) for s, t in train_data]
    valid_batches = _batches(
        [(len(s), len(t) + 1) for s, t in valid_data], 128, None, random.Random(0)
    )

    def evaluate() -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for indices in valid_batches:
                src, src_len, tgt_in, tgt_out = tensors(indices, valid_data)
                logits, _ = model(src, src_len, tgt_in)
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)),
                        tgt_out.reshape(-1),
                        ignore_index=model_config.pad_id,
                        reduction="sum",
                    )
                )
                count += int((tgt_out != model_config.pad_id).sum())
        model.train()
        return total / max(count, 1)

    base_metadata = {
        "attnviz_version": __version__,
        "corpus_sha256": corpus_hash(pairs),
        "train_pairs": len(train_data),
        "valid_pairs": len(valid_data),
        "seed": config.seed,
        "train_config": asdict(config),
        **(metadata or {}),
    }
    out = Path(out_path)
    start = time.perf_counter()
    best = math.inf
    history: list[dict[str, float]] = []
    state = {"step": 0, "bad_evals": 0, "epoch": 0}
    steps_per_epoch = len(_batches(lengths, config.batch_sentences, config.batch_tokens, rng))
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    eval_every = config.eval_every or steps_per_epoch

    def save_if_best(valid_loss: float) -> bool:
        nonlocal best
        if valid_loss >= best:
            return False
        best = valid_loss
        info = dict(base_metadata)
        info.update(
            steps=state["step"],
            epochs=round(state["step"] / steps_per_epoch, 3),
            train_seconds=round(time.perf_counter() - start, 1),
            valid_loss=round(valid_loss, 5),
            valid_perplexity=round(math.exp(min(valid_loss, 50)), 4),
        )
        save_checkpoint(
            Checkpoint(
                model_config,
                model.state_dict(),
                sentencepiece_spec(src_spm),
                sentencepiece_spec(tgt_spm),
                info,
            ),
            out,
        )
        return True

    def run_eval() -> bool:
        """Evaluate, maybe save; True when training should stop early."""
        valid_loss = evaluate()
        improved = save_if_best(valid_loss)
        state["bad_evals"] = 0 if improved else state["bad_evals"] + 1
        if not improved and config.lr_decay < 1.0:
            for group in optimizer.param_groups:
                group["lr"] *= config.lr_decay
        history.append({"step": state["step"], "valid_loss": valid_loss})
        if callback:
            callback(
                Progress(
                    step=state["step"],
                    epoch=state["epoch"],
                    total_steps=total_steps,
                    loss=window_loss(),
                    tokens_per_second=rate(),
                    elapsed=time.perf_counter() - start,
                    valid_loss=valid_loss,
                    best_valid_loss=best,
                    event="eval",
                )
            )
        return config.patience > 0 and state["bad_evals"] >= config.patience

    recent: list[tuple[float, int]] = []
    tokens_seen = 0

    def window_loss() -> float:
        loss_sum = sum(value for value, _ in recent[-50:])
        token_sum = sum(count for _, count in recent[-50:])
        return loss_sum / max(token_sum, 1)

    def rate() -> float:
        return tokens_seen / max(time.perf_counter() - start, 1e-9)

    interrupted = stopped_early = False
    model.train()
    try:
        done = False
        while not done:
            state["epoch"] += 1
            for indices in _batches(lengths, config.batch_sentences, config.batch_tokens, rng):
                src, src_len, tgt_in, tgt_out = tensors(indices, train_data)
                logits, _ = model(src, src_len, tgt_in)
                loss = loss_fn(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1))
                n_tokens = int((tgt_out != model_config.pad_id).sum())
                optimizer.zero_grad(set_to_none=True)
                (loss / n_tokens).backward()
                if config.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                state["step"] += 1
                tokens_seen += n_tokens + int(src_len.sum())
                recent.append((loss.item(), n_tokens))
                if callback:
                    callback(
                        Progress(
                            step=state["step"],
                            epoch=state["epoch"],
                            total_steps=total_steps,
                            loss=window_loss(),
                            tokens_per_second=rate(),
                            elapsed=time.perf_counter() - start,
                            best_valid_loss=None if math.isinf(best) else best,
                        )
                    )
                out_of_time = (
                    config.max_time is not None and time.perf_counter() - start >= config.max_time
                )
                at_end = state["step"] >= total_steps
                evaluate_now = state["step"] % eval_every == 0 or at_end or out_of_time
                if evaluate_now and run_eval():
                    stopped_early = True
                    done = True
                    break
                if at_end or out_of_time:
                    done = True
                    break
    except KeyboardInterrupt:
        interrupted = True
        if math.isinf(best):
            save_if_best(evaluate())
    return TrainResult(
        path=out,
        steps=state["step"],
        epochs_done=state["step"] / steps_per_epoch,
        best_valid_loss=best,
        seconds=time.perf_counter() - start,
        interrupted=interrupted,
        stopped_early=stopped_early,
        history=history,
    )


def _tokenizer_for(side: str, lines: list[str], vocab_size: int, config: TrainConfig) -> bytes:
    from attnviz.errors import TokenizerError
    from attnviz.tokenizer import train_sentencepiece

    try:
        return train_sentencepiece(lines, vocab_size, model_type=config.spm_type, seed=config.seed)
    except TokenizerError as err:
        message = str(err).replace(
            "--vocab-size", "--src-vocab-size" if side == "source" else "--tgt-vocab-size"
        )
        raise TokenizerError(f"{side} side: {message}") from err


def _check(config: TrainConfig) -> None:
    if config.vocab_size < 8:
        raise UsageError(f"vocabulary size must be at least 8, not {config.vocab_size}")
    if config.spm_type not in ("unigram", "bpe"):
        raise UsageError(f"unknown tokenizer type {config.spm_type!r}; valid: unigram, bpe")
    if config.learning_rate <= 0:
        raise UsageError("learning rate must be positive")
    if config.batch_sentences < 1 or (config.batch_tokens is not None and config.batch_tokens < 1):
        raise UsageError("batch size must be at least 1")
    if config.epochs < 1 and not config.max_steps:
        raise UsageError("epochs must be at least 1")
    if config.max_steps is not None and config.max_steps < 1:
        raise UsageError(f"steps must be at least 1, not {config.max_steps}")
    if config.threads is not None and config.threads < 1:
        raise UsageError(f"threads must be at least 1, not {config.threads}")
    if not 0.0 < config.lr_decay <= 1.0:
        raise UsageError("learning-rate decay must be in (0, 1]; 1 turns it off")
    if not 0.0 < config.valid_fraction < 1.0:
        raise UsageError("valid fraction must be between 0 and 1")
