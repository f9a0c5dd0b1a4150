"""``attnviz info`` and ``attnviz models``: what a model is, and which ones ship."""

from __future__ import annotations

from typing import Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import SrcSpmOption, TgtSpmOption, errors, load_any_model
from attnviz.errors import AttnvizError


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Checkpoint path or bundled model name, or a model of OpenNMT-py or JoeyNMT."
        ),
    ] = None,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Show a model's config, size, vocabularies, origin and training metadata."""
    with errors():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from attnviz.checkpoint import describe_checkpoint
        from attnviz.text import visible

        checkpoint = load_any_model(model, src_spm, tgt_spm)
        title = Text(visible(checkpoint.path or model or ""))
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in describe_checkpoint(checkpoint):
            table.add_row(Text(visible(key)), Text(visible(value)))
        Console(highlight=False).print(table)


@app.command()
def models() -> None:
    """List the bundled sample models."""
    with errors():
        from attnviz.samples import DEFAULT_MODEL, sample_models
        from attnviz.text import visible

        found = sample_models()
        if not found:
            raise AttnvizError("no bundled sample models found in this installation")
        for sample in found:
            marker = " (default)" if sample.name == DEFAULT_MODEL else ""
            typer.echo(visible(f"{sample.name}{marker}: {sample.description}"))
