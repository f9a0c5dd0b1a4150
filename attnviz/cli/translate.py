"""``attnviz translate``: translations and the terminal heatmap table (or JSON lines)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import (
    BatchSizeOption,
    BeamOption,
    DeviceOption,
    ModelOption,
    NbestOption,
    PrecisionOption,
    RefOption,
    ScoresOption,
    TextArgument,
    ValuesOption,
    WordsOption,
    check_refs,
    decode_options,
    errors,
    load_translator,
    sentences_from,
    stdout_console,
)
from attnviz.errors import InputError


@app.command()
def translate(
    text: TextArgument = None,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    ref: RefOption = None,
    words: WordsOption = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per hypothesis per line on stdout.")
    ] = False,
    values: ValuesOption = False,
    scores: ScoresOption = False,
    table: Annotated[
        bool, typer.Option("--table/--no-table", help="Show the heatmap table.")
    ] = True,
    batch_size: BatchSizeOption = 32,
) -> None:
    """Translate sentences and show where the decoder looked."""
    with errors():
        options = decode_options(beam=beam, nbest=nbest, words=words, batch_size=batch_size)
        sentences = sentences_from(text)
        check_refs(ref, sentences)
        translator = load_translator(model, device, precision)
        groups = translator.translate_grouped(sentences, refs=ref, options=options)
        for group in groups:
            if not isinstance(group, list):
                raise InputError(group.message)
        if as_json:
            for group in groups:
                for alignment in group:
                    sys.stdout.write(alignment.to_json() + "\n")
            sys.stdout.flush()
            return
        from rich.text import Text

        from attnviz.render.terminal import render_text

        console = stdout_console()
        for index, group in enumerate(groups):
            if len(groups) > 1:
                title = Text(f"[{index + 1}] {group[0].source if group else ''}")
                console.rule(title, style="dim")
            render_text(group, console, values=values, scores=scores, show_table=table)
