"""The Typer application object; command modules register themselves on it."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from attnviz import __version__


def _stdout_file() -> tuple[int, int] | None:
    try:
        info = os.fstat(1)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _is_click_error(err: BaseException, name: str) -> bool:
    return any(kind.__name__ == name for kind in type(err).__mro__)


class _Group(TyperGroup):
    """Every error is one line: click's usage errors (a bad option value, an unknown option)
    too, and a reader closing stdout early (`attnviz --help | head -1`) ends quietly with 0."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        _ignore_zero_terminal_size()
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        before = _stdout_file()
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except SystemExit as end:
            # rich points stdout at the null device, click wraps it; both then exit with 1
            gone = _stdout_file() != before or type(sys.stdout).__name__ == "PacifyFlushWrapper"
            if end.code == 1 and before is not None and gone:
                raise SystemExit(0) from None
            raise
        except Exception as err:
            if _is_click_error(err, "NoArgsIsHelpError"):
                return super().main(*args, standalone_mode=True, **kwargs)  # the help text
            if _is_click_error(err, "ClickException"):
                context = getattr(err, "ctx", None)
                hint = f" (see {context.command_path} --help)" if context is not None else ""
                _one_line(f"{err.format_message()}{hint}", err.exit_code)
            if _is_click_error(err, "Abort"):
                _one_line("aborted", 1)
            if isinstance(err, OSError):  # writing --help or --version (e.g. to a full disk)
                _quiet_stdout()
                _one_line(f"cannot write to stdout: {err.strerror or err}", 1)
            raise
        sys.exit(code if isinstance(code, int) else 0)


def _ignore_zero_terminal_size() -> None:
    """COLUMNS=0 (or LINES=0) would make rich print nothing at all, errors included."""
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) == 0:
            del os.environ[name]


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _one_line(message: str, code: int) -> None:
    from attnviz.cli.common import fail

    try:
        fail(message, code)
    except typer.Exit as end:
        sys.exit(end.exit_code)


app = typer.Typer(
    cls=_Group,
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
