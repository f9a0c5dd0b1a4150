"""``attnviz train``: tokenizers and a model from parallel text."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import DeviceOption, errors, safe_text, stderr_console
from attnviz.errors import AttnvizError

if TYPE_CHECKING:
    from attnviz.train import Trainer


@app.command()
def train(
    data: Annotated[
        Path,
        typer.Argument(
            help="TSV file (source<TAB>target per line), or the source file with --target."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write.")],
    target: Annotated[
        Path | None, typer.Option("--target", help="Target-side file parallel to DATA.")
    ] = None,
    valid: Annotated[
        Path | None,
        typer.Option("--valid", help="Validation TSV (default: hold out part of DATA)."),
    ] = None,
    vocab_size: Annotated[int, typer.Option(help="SentencePiece vocabulary size per side.")] = 1000,
    src_vocab_size: Annotated[
        int | None, typer.Option(help="Source vocabulary size (default: --vocab-size).")
    ] = None,
    tgt_vocab_size: Annotated[
        int | None, typer.Option(help="Target vocabulary size (default: --vocab-size).")
    ] = None,
    spm_type: Annotated[
        str, typer.Option(help="SentencePiece model type: unigram or bpe.")
    ] = "unigram",
    attention: Annotated[str, typer.Option(help="additive, dot or general.")] = "additive",
    rnn: Annotated[str, typer.Option(help="gru or lstm.")] = "gru",
    embedding_size: Annotated[int, typer.Option(help="Embedding size.")] = 128,
    hidden_size: Annotated[int, typer.Option(help="Encoder hidden size per direction.")] = 256,
    decoder_hidden_size: Annotated[
        int | None, typer.Option(help="Decoder hidden size (default: encoder output size).")
    ] = None,
    attention_size: Annotated[int, typer.Option(help="Additive attention size D.")] = 256,
    layers: Annotated[int, typer.Option(help="RNN layers in encoder and decoder.")] = 1,
    dropout: Annotated[float, typer.Option(help="Dropout probability.")] = 0.1,
    bidirectional: Annotated[
        bool, typer.Option("--bidirectional/--unidirectional", help="Encoder direction.")
    ] = True,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 2e-3,
    lr_decay: Annotated[
        float,
        typer.Option(help="Multiply the learning rate by this after an evaluation without gain."),
    ] = 0.5,
    batch_size: Annotated[int, typer.Option(help="Sentences per batch.")] = 64,
    batch_tokens: Annotated[
        int | None, typer.Option(help="Tokens per batch (overrides --batch-size).")
    ] = None,
    clip: Annotated[float, typer.Option(help="Gradient norm clipping (0: off).")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Passes over the data.")] = 10,
    steps: Annotated[int | None, typer.Option(help="Stop after this many updates.")] = None,
    max_time: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    patience: Annotated[
        int, typer.Option(help="Stop after this many evaluations without improvement (0: off).")
    ] = 3,
    eval_every: Annotated[
        int | None, typer.Option(help="Evaluate every N updates (default: each epoch).")
    ] = None,
    max_length: Annotated[
        int, typer.Option(help="Leave out pairs with more tokens than this on a side.")
    ] = 150,
    seed: Annotated[int, typer.Option(help="Random seed (0 to 4294967295).")] = 1,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOption = "cpu",
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it is an existing file.")
    ] = False,
) -> None:
    """Train tokenizers and an attentive seq2seq model; write the best checkpoint."""
    with errors(), _flag_names():
        from attnviz.train import ModelSpec, TrainConfig, Trainer, check_out_path

        spec = ModelSpec(
            attention=attention,
            rnn=rnn,
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            decoder_hidden_size=decoder_hidden_size,
            attention_size=attention_size,
            layers=layers,
            dropout=dropout,
            bidirectional=bidirectional,
        )
        config = TrainConfig(
            vocab_size=vocab_size,
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            spm_type=spm_type,
            learning_rate=lr,
            lr_decay=lr_decay,
            batch_sentences=batch_size,
            batch_tokens=batch_tokens,
            clip=clip,
            epochs=epochs,
            max_steps=steps,
            max_time=max_time,
            patience=patience,
            eval_every=eval_every,
            max_length=max_length,
            seed=seed,
            threads=threads,
        )
        trainer = Trainer(spec, config, device=device)  # every option checked: nothing read yet
        check_out_path(out, overwrite=force)
        _train(trainer, data, target, valid, out, force)


def _train(
    trainer: Trainer, data: Path, target: Path | None, valid: Path | None, out: Path, force: bool
) -> None:
    """Read the data, train with the progress bar, say what was written."""
    from attnviz.cli.progress import TrainingBar
    from attnviz.train import read_parallel, read_tsv

    pairs = read_parallel(data, target) if target else read_tsv(data)
    trainer.prepare(pairs, read_tsv(valid) if valid else None)
    command = " ".join(["attnviz", *sys.argv[1:]])
    with TrainingBar(stderr_console()) as progress:
        result = trainer.fit(
            out,
            overwrite=force,
            metadata={"command": command, "data": str(data)},
            callback=progress.update,
        )
    if result.interrupted:
        status = "interrupted"
    else:
        status = "stopped early" if result.stopped_early else "done"
    stderr_console().print(
        safe_text(
            f"{status}: {result.steps} steps in {result.seconds:.0f}s, best validation loss "
            f"{result.best_valid_loss:.4f}; wrote {result.path}"
        )
    )
    if result.interrupted:
        raise typer.Exit(130)


#: Library field names (TrainConfig, ModelSpec) -> the flags that set them.
FLAGS = {
    "vocab_size": "--vocab-size",
    "src_vocab_size": "--src-vocab-size",
    "tgt_vocab_size": "--tgt-vocab-size",
    "spm_type": "--spm-type",
    "attention": "--attention",
    "rnn": "--rnn",
    "embedding_size": "--embedding-size",
    "hidden_size": "--hidden-size",
    "decoder_hidden_size": "--decoder-hidden-size",
    "attention_size": "--attention-size",
    "layers": "--layers",
    "dropout": "--dropout",
    "learning_rate": "--lr",
    "lr_decay": "--lr-decay",
    "batch_sentences": "--batch-size",
    "batch_tokens": "--batch-tokens",
    "clip": "--clip",
    "epochs": "--epochs",
    "max_steps": "--steps",
    "max_time": "--max-time",
    "patience": "--patience",
    "eval_every": "--eval-every",
    "max_length": "--max-length",
    "seed": "--seed",
    "threads": "--threads",
}


@contextlib.contextmanager
def _flag_names() -> Iterator[None]:
    """The one place where a library error's field name becomes the flag that sets it."""
    try:
        yield
    except AttnvizError as err:
        name = getattr(err, "field", None)
        if name in FLAGS:
            err.args = (re.sub(rf"\b{name}\b", FLAGS[name], str(err)),)
        raise
