"""The Typer application object; command modules register themselves on it."""

from __future__ import annotations

from typing import Annotated

import typer

from attnviz import __version__

app = typer.Typer(
    name="attnviz",
    help="See where an attentive seq2seq model looks: translate, heatmaps, alignment export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"attnviz {__version__}")
        raise typer.Exit(0)
