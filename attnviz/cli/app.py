"""The Typer application object; command modules register themselves on it."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from attnviz import __version__


def _stdout_file() -> tuple[int, int] | None:
    try:
        info = os.fstat(1)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class _Typer(typer.Typer):
    def __call__(self, *args, **kwargs):
        before = _stdout_file()
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as end:
            # When stdout's reader goes away (`attnviz --help | head -1`), rich points stdout at
            # the null device and click wraps it, both ending with status 1; like every command
            # here, end quietly with 0 instead.
            gone = _stdout_file() != before or type(sys.stdout).__name__ == "PacifyFlushWrapper"
            if end.code == 1 and before is not None and gone:
                raise SystemExit(0) from None
            raise


app = _Typer(
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
