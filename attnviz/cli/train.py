"""``attnviz train``: tokenizers and a model from parallel text."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import DeviceOption, errors, stderr_console
from attnviz.errors import UsageError


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
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    device: DeviceOption = "cpu",
) -> None:
    """Train tokenizers and an attentive seq2seq model; write the best checkpoint."""
    with errors():
        from attnviz.train import TrainConfig, read_parallel, read_tsv
        from attnviz.train import train as run_training

        if out.is_dir():
            raise UsageError(f"{out}: is a folder; give a checkpoint file name")
        out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out.parent, os.W_OK):
            raise UsageError(f"{out.parent}: folder is not writable")
        pairs = read_parallel(data, target) if target else read_tsv(data)
        valid_pairs = read_tsv(valid) if valid else None
        model_options = {
            "attention": attention,
            "rnn": rnn,
            "embedding_size": embedding_size,
            "hidden_size": hidden_size,
            "decoder_hidden_size": decoder_hidden_size or hidden_size * (2 if bidirectional else 1),
            "attention_size": attention_size,
            "encoder_layers": layers,
            "decoder_layers": layers,
            "dropout": dropout,
            "bidirectional": bidirectional,
        }
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
            seed=seed,
            threads=threads,
        )
        command = " ".join(["attnviz", *sys.argv[1:]])
        from attnviz.cli.progress import TrainingProgress

        with TrainingProgress() as progress:
            result = run_training(
                pairs,
                out,
                model_options=model_options,
                config=config,
                valid_pairs=valid_pairs,
                device=device,
                metadata={"command": command, "data": str(data)},
                callback=progress.update,
            )
        from rich.markup import escape

        status = (
            "interrupted"
            if result.interrupted
            else ("stopped early" if result.stopped_early else "done")
        )
        stderr_console().print(
            escape(
                f"{status}: {result.steps} steps in {result.seconds:.0f}s, best validation loss "
                f"{result.best_valid_loss:.4f}; wrote {result.path}"
            )
        )
        if result.interrupted:
            raise typer.Exit(130)
