"""``attnviz html`` (the interactive HTML view) and ``attnviz explain`` (one decoder step)."""

from __future__ import annotations

import sys
from pathlib import Path
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
    PrefixOption,
    ScoresOption,
    SrcSpmOption,
    TextArgument,
    TgtSpmOption,
    ThreadsOption,
    decode_options,
    errors,
    load_translator,
    safe_text,
    sentences_from,
    stderr_console,
    stdout_console,
)
from attnviz.errors import InputError, UsageError
from attnviz.options import DEFAULT_BATCH_SIZE

DEFAULT_HTML_TOPK = 5


def _model_name(model: str | None, translator) -> str:
    path = translator.path
    if model is None and path is not None:
        return path.stem
    return Path(model).stem if model else "model"


@app.command()
def html(
    text: TextArgument = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "view.html"
    ),
    model: ModelOption = None,
    compare_model: Annotated[
        str | None,
        typer.Option(
            "--compare-model", help="A second model on the same sentences: side by side and A − B."
        ),
    ] = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    prefix: PrefixOption = None,
    topk: Annotated[
        int, typer.Option("--topk", help="Alternatives recorded per step (0: none).")
    ] = DEFAULT_HTML_TOPK,
    words: Annotated[
        bool, typer.Option("--words/--pieces", help="Open the view at the word level.")
    ] = False,
    scores: ScoresOption = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain/--no-explain",
            help="Store every decoder step's breakdown (click a row to open it).",
        ),
    ] = True,
    dims: Annotated[
        int, typer.Option("--dims", help="Vector values stored per step breakdown.")
    ] = 8,
    title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    threads: ThreadsOption = None,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Write one self-contained interactive HTML page (opens from disk, no network)."""
    with errors():
        from attnviz.io import check_output
        from attnviz.render.html import render_html
        from attnviz.render.values import render_options

        if dims < 1:
            raise UsageError(f"--dims must be at least 1, not {dims}")
        check_output(out, overwrite=force)  # before any work
        look = render_options(scores=scores, title=title)
        # decoded at the piece level: the page merges words itself, and step breakdowns
        # follow the pieces the decoder emitted
        options = decode_options(
            beam=beam, nbest=nbest, batch_size=batch_size, prefix=prefix, topk=topk
        )
        sentences = sentences_from(text)
        translator = load_translator(model, device, precision, src_spm, tgt_spm, threads)
        groups = _decoded(translator, sentences, options)
        names = [_model_name(model, translator)]
        compare = compare_forced = None
        if compare_model is not None:
            other = load_translator(compare_model, device, precision, threads=threads)
            compare = _decoded(other, sentences, options)
            # the compared model made to say the first one's best translation: a difference
            # heatmap even where its own translation differs
            compare_forced = [_forced(other, group[0], topk) for group in groups]
            names.append(_model_name(compare_model, other))
            if names[0] == names[1]:
                names = [f"A: {names[0]}", f"B: {names[1]}"]
        explanations = _explained(translator, groups, topk) if explain else None
        render_html(
            groups,
            out,
            look,
            compare=compare,
            compare_forced=compare_forced,
            explanations=explanations,
            models=names,
            words=words,
            explain_dims=dims,
            diagnostics=True,
        )
        count = f"{len(groups)} sentence{'s' if len(groups) != 1 else ''}"
        stderr_console().print(safe_text(f"wrote {out} ({count})"))


def _decoded(translator, sentences: list[str], options) -> list:
    groups = translator.translate_grouped(sentences, options=options)
    for group in groups:
        if not isinstance(group, list):
            raise InputError(group.message)
    return groups


def _forced(translator, best, topk: int):
    """``translator``'s model forced along ``best``'s pieces; None where it cannot be (an
    empty sentence, a piece its vocabulary lacks)."""
    if not best.tgt_tokens:
        return None
    try:
        return translator.force_pieces(best.source, best.tgt_tokens, topk=topk)
    except InputError:
        return None


def _explained(translator, groups: list, topk: int) -> list:
    from attnviz.explain import DEFAULT_TOPK, explain_steps

    return [
        [
            explain_steps(
                translator,
                hypothesis.source,
                forced_tokens=hypothesis.tgt_tokens,
                topk=topk or DEFAULT_TOPK,
            )
            if hypothesis.tgt_tokens
            else None
            for hypothesis in group
        ]
        for group in groups
    ]


@app.command()
def explain(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="One sentence (quote it).")],
    step: Annotated[
        int,
        typer.Option("--step", "-s", help="Decoder step to explain, 0-based (row of the table)."),
    ] = 0,
    dims: Annotated[
        int, typer.Option("--dims", help="Values shown of each long vector before '…'.")
    ] = 6,
    as_json: Annotated[
        bool, typer.Option("--json", help="Every intermediate in full, as one JSON object.")
    ] = False,
    prefix: PrefixOption = None,
    topk: Annotated[
        int, typer.Option("--topk", help="Most likely next tokens listed.")
    ] = DEFAULT_HTML_TOPK,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Lay out one decoder step with the model's real numbers.

    The query q, W q and U h_j (additive), the scores and their softmax, the context, the
    attentional state and the most likely next tokens, each with its shape.
    """
    with errors():
        from attnviz.explain import explain_step
        from attnviz.options import MAX_TOPK

        if dims < 1:
            raise UsageError(f"--dims must be at least 1, not {dims}")
        if not 1 <= topk <= MAX_TOPK:
            raise UsageError(f"--topk must be between 1 and {MAX_TOPK}, not {topk}")
        if step < 0:
            raise UsageError(f"--step must be 0 or more, not {step}")
        translator = load_translator(model, device, precision, src_spm, tgt_spm)
        explained = explain_step(translator, text, step, prefix=prefix, topk=topk)
        if as_json:
            from attnviz.text import json_safe

            sys.stdout.write(json_safe(explained.to_json()) + "\n")
            return
        from attnviz.render.explain import explanation_view

        stdout_console().print(explanation_view(explained, dims))
