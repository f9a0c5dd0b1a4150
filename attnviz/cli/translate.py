"""``attnviz translate``: translations and the terminal heatmap table (or JSON lines).

Sentences from stdin are streamed: read in batches of ``--batch-size`` lines, each batch
decoded and printed (and flushed) before the next is read, so memory stays flat however long
the input, a pipe sees output at once, and Ctrl-C keeps what was printed. A batch is also cut
short when no further line is waiting, so an interactive producer gets each answer promptly.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from attnviz.cli.app import app
from attnviz.cli.common import (
    BatchSizeOption,
    BeamOption,
    DeviceOption,
    DiagnosticsOption,
    LinksOption,
    ModelOption,
    NbestOption,
    PrecisionOption,
    PrefixOption,
    RefOption,
    ScoresOption,
    SrcSpmOption,
    TextArgument,
    TgtSpmOption,
    ThreadsOption,
    TopkOption,
    ValuesOption,
    WordsOption,
    check_refs,
    decode_options,
    errors,
    load_translator,
    stdout_console,
)
from attnviz.errors import InputError, UsageError
from attnviz.options import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    from attnviz.alignment import Alignment
    from attnviz.options import RenderOptions


@app.command()
def translate(
    text: TextArgument = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    threads: ThreadsOption = None,
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    ref: RefOption = None,
    prefix: PrefixOption = None,
    topk: TopkOption = 0,
    words: WordsOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per hypothesis per line on stdout.")
    ] = False,
    values: ValuesOption = False,
    scores: ScoresOption = False,
    table: Annotated[
        bool, typer.Option("--table/--no-table", help="Show the heatmap table.")
    ] = True,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    links: LinksOption = "argmax",
    diagnostics: DiagnosticsOption = False,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Translate sentences and show where the decoder looked."""
    with errors():
        from attnviz.eval import parse_link_method
        from attnviz.render.values import render_options

        options = decode_options(
            beam=beam, nbest=nbest, words=words, batch_size=batch_size, prefix=prefix, topk=topk
        )
        links = str(parse_link_method(links))
        from_stdin = not text or text == ["-"]
        if from_stdin:
            batches = _stdin_batches(batch_size, ref)
        else:
            check_refs(ref, text)
            batches = _chunks(list(text), batch_size)
        translator = load_translator(model, device, precision, src_spm, tgt_spm, threads)
        look = render_options(values=values, scores=scores, show_table=table)
        show = _json_printer(links, diagnostics) if as_json else _table_printer(look, diagnostics)
        number = 1
        for sentences in batches:
            refs = ref[number - 1 : number - 1 + len(sentences)] if ref is not None else None
            groups = translator.translate_grouped(
                sentences, refs=refs, options=options, number_from=number
            )
            for group in groups:
                if not isinstance(group, list):
                    raise InputError(group.message)  # what came before it stays printed
                show(group, number, numbered=from_stdin or len(text) > 1)
                number += 1
            sys.stdout.flush()


def _json_printer(links: str, diagnostics: bool) -> Callable[..., None]:
    def show(group: list, number: int, numbered: bool) -> None:
        for alignment in group:
            sys.stdout.write(alignment.to_json(links=links, diagnostics=diagnostics) + "\n")

    return show


def _table_printer(look: RenderOptions, diagnostics: bool) -> Callable[..., None]:
    from rich.text import Text

    from attnviz.alignment import NON_WORDS, WORD_START
    from attnviz.cli.common import safe_text
    from attnviz.render.terminal import render_text
    from attnviz.text import visible

    console = stdout_console()

    def diagnosis(alignment: Alignment) -> Text:
        real = [t.removeprefix(WORD_START) for t in alignment.src_tokens if t not in NON_WORDS]
        return safe_text(alignment.diagnostics().summary(real), "diagnostics:", "dim")

    def show(group: list, number: int, numbered: bool) -> None:
        if numbered:
            title = Text(f"[{number}] {visible(group[0].source) if group else ''}")
            console.rule(title, style="dim")
        render_text(group, console, look, after=diagnosis if diagnostics else None)

    return show


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stdin_batches(size: int, refs: list[str] | None) -> Iterator[list[str]]:
    """Batches of stdin lines; with ``--ref``, exactly one line per reference is read."""
    from attnviz.io import STDIN, iter_lines

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("no text given: pass TEXT or pipe sentences on stdin, one per line")
    lines = iter_lines(STDIN)
    if refs is not None:
        head = list(itertools.islice(lines, len(refs) + 1))
        if len(head) > len(refs):
            raise UsageError(
                f"got {len(refs)} --ref for more than {len(refs)} sentences; give one per sentence"
            )
        check_refs(refs, head)
        lines = iter(head)
    return _nonempty(_batches(lines, size, _input_waiting(sys.stdin)))


def _nonempty(batches: Iterator[list[str]]) -> Iterator[list[str]]:
    first = next(batches, None)
    if first is None:
        raise InputError("stdin is empty: no sentences to translate")
    yield first
    yield from batches


def _batches(lines: Iterator[str], size: int, waiting: Callable[[], bool]) -> Iterator[list[str]]:
    """Lines in lists of ``size``, a list cut short when ``waiting()`` says no line is ready.

    An input error (a line that is too long or not UTF-8) ends the stream only after the
    lines before it have been handed on.
    """
    batch: list[str] = []
    try:
        for line in lines:
            batch.append(line)
            if len(batch) >= size or not waiting():
                yield batch
                batch = []
    except InputError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _input_waiting(stream: Any) -> Callable[[], bool]:
    """A check that more input can be read from ``stream`` without blocking.

    Where that cannot be known (no file descriptor, no ``select`` on it), input counts as
    waiting and batches are always full. Lines already in the reader's buffer may be missed,
    which only makes a batch smaller, never makes anything wait.
    """
    import select

    try:
        descriptor = stream.fileno()
        select.select([descriptor], [], [], 0)
    except (AttributeError, OSError, ValueError):
        return lambda: True

    def waiting() -> bool:
        try:
            return bool(select.select([descriptor], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    return waiting
