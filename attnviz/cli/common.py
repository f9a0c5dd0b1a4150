"""Pieces shared by the CLI modules: option types, error translation, stdin reading."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from attnviz.errors import AttnvizError, InputError, MissingModelFile, OutputExistsError, UsageError

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Checkpoint path or bundled model name (see `attnviz models`), or a model of "
        "OpenNMT-py or JoeyNMT. Default: enko-additive.",
    ),
]
SrcSpmOption = Annotated[
    Path | None,
    typer.Option(
        "--src-spm",
        help="Source SentencePiece model of a foreign model that names one it does not hold.",
    ),
]
TgtSpmOption = Annotated[
    Path | None,
    typer.Option(
        "--tgt-spm",
        help="Target SentencePiece model of a foreign model that names one it does not hold.",
    ),
]
DeviceOption = Annotated[
    str, typer.Option("--device", "-d", help="auto, cpu, cuda, cuda:N or mps.")
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        help="float32 (default; auto means the same) or float64 (the same attention, to the "
        "bit, whatever the batch).",
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for decoding. Default: 1 for models up to 20 M parameters, else "
        "torch's choice; 0: torch's choice.",
    ),
]
BeamOption = Annotated[int, typer.Option("--beam", "-b", help="Beam size; 1 is greedy.")]
NbestOption = Annotated[
    int, typer.Option("--nbest", "-n", help="Hypotheses per sentence (≤ beam).")
]
RefOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ref", "-r", help="Reference translation for forced decoding; one per sentence."
    ),
]
TextArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="TEXT", help="Sentences to translate; none or '-' reads stdin, one per line."
    ),
]
ValuesOption = Annotated[bool, typer.Option("--values", help="Write the numbers in the cells.")]
ScoresOption = Annotated[
    bool, typer.Option("--scores", help="Show raw pre-softmax energies instead of weights.")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", help="Sentences per batch.")]
PrefixOption = Annotated[
    str | None,
    typer.Option(
        "--prefix",
        help="Target words to force first (what if the translation began so?); "
        "then decoding is free.",
    ),
]
TopkOption = Annotated[
    int,
    typer.Option("--topk", help="Record the K most likely next tokens at every step (0: none)."),
]
LinksOption = Annotated[
    str,
    typer.Option(
        "--links",
        help="Hard links read off the attention: argmax (each target token to the source "
        "token it attends to most), argmax-target (each source token to a target token), both "
        "(links found both ways) or threshold:X (every weight ≥ X). </s> is never linked.",
    ),
]
DiagnosticsOption = Annotated[
    bool,
    typer.Option(
        "--diagnostics",
        help="Attention diagnostics: entropy, coverage deviation and absentmindedness "
        "penalties, weight on </s>, crossings, source words left unattended or over-attended.",
    ),
]
WordsOption = Annotated[
    bool,
    typer.Option(
        "--words/--pieces", help="Merge SentencePiece pieces into words (tokens, attention, links)."
    ),
]


def stdout_console():
    """A console for data on stdout that ends quietly (exit 0) when the reader goes away."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0)

    return _PipeConsole(highlight=False, emoji=False)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def safe_text(text: object, label: str = "", style: str = ""):
    """A console line of untrusted ``text`` after an optional styled ``label``: control
    characters made visible, nothing read as markup or emoji codes."""
    from rich.text import Text

    from attnviz.text import visible

    line = Text.assemble((label, style), " ") if label else Text()
    line.append(visible(text))
    return line


def fail(message: str, code: int = 1) -> None:
    stderr_console().print(safe_text(message, "attnviz: error:", "bold red"))
    raise typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """The one place where domain errors become a red line on stderr and an exit code."""
    try:
        yield
    except AttnvizError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, OutputExistsError):  # the library names no flags; the CLI does
            message = message.replace("refusing to replace it", "pass --force to replace it")
        fail(message, err.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); stop quietly
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        fail(f"{where}{err.strerror or err}")
    except MemoryError:
        fail("out of memory; try a smaller --batch-size or shorter input")


def read_stdin_lines() -> list[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no text given: pass TEXT or pipe sentences on stdin, one per line")
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"stdin is not UTF-8 text (bad byte at offset {err.start})") from err
    return split_lines(text)


def sentences_from(text: list[str] | None) -> list[str]:
    if not text or text == ["-"]:
        lines = read_stdin_lines()
        if not lines:
            raise InputError("stdin is empty: no sentences to translate")
        return lines
    return list(text)  # text that is not valid UTF-8 is refused by the translator


def decode_options(**values):
    """A DecodeOptions from CLI values; its errors name the library's fields, mapped to flags."""
    from attnviz.options import DecodeOptions

    return DecodeOptions(**values)


def load_translator(
    model: str | None,
    device: str,
    precision: str = "auto",
    src_spm: Path | None = None,
    tgt_spm: Path | None = None,
    threads: int | None = None,
):
    from attnviz.translator import load_model

    _quick_exit()
    with flag_names():
        return load_model(
            model,
            device=device,
            precision=precision,
            threads=threads,
            src_spm=src_spm,
            tgt_spm=tgt_spm,
        )


def _quick_exit() -> None:
    """At exit, skip the final garbage-collection sweep over the objects torch creates when it
    is imported (about 0.3 s of a command's wall time); everything is still flushed and
    closed as usual, and exit handlers run."""
    import atexit
    import gc

    atexit.register(gc.freeze)  # runs before the handlers registered earlier


def load_any_model(model: str | None, src_spm: Path | None = None, tgt_spm: Path | None = None):
    """The checkpoint of ``model`` (attnviz's own or a recognised foreign one), on the CPU."""
    from attnviz.importers import load_any
    from attnviz.samples import resolve_model_path

    with flag_names():
        return load_any(resolve_model_path(model), src_spm=src_spm, tgt_spm=tgt_spm)


@contextlib.contextmanager
def flag_names() -> Iterator[None]:
    """Library errors that name an argument of load_model, told with the CLI's flag."""
    try:
        yield
    except MissingModelFile as err:
        flag = "--" + err.argument.replace("_", "-")
        raise MissingModelFile(f"{err}; give it with {flag}", err.argument) from err
    except UsageError as err:
        message = str(err).replace("src_spm and tgt_spm", "--src-spm and --tgt-spm")
        raise UsageError(message) from err


def check_refs(refs: list[str] | None, sentences: list[str]) -> None:
    if refs is not None and len(refs) != len(sentences):
        raise UsageError(
            f"got {len(refs)} --ref for {len(sentences)} sentences; give one per sentence"
        )


def split_lines(text: str) -> list[str]:
    """Lines split on \\n only (str.splitlines also splits on form feeds, U+2028, ...)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
