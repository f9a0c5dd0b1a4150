"""The figure and batch commands: ``attnviz heatmap`` and ``attnviz export``."""

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
    safe_text,
    sentences_from,
    stderr_console,
)
from attnviz.errors import InputError, UsageError
from attnviz.io import check_output
from attnviz.options import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_LINES


def _numbered(out: Path, number: int, total: int) -> Path:
    if total == 1:
        return out
    width = len(str(total))
    return out.with_name(f"{out.stem}-{number:0{width}d}{out.suffix}")


def _alignments_from(source: str, index: int | None, words: bool) -> list:
    from attnviz.export import read_jsonl

    if source == "-" and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError("--from - reads alignments from stdin, but nothing is piped in")
    groups = list(read_jsonl(source))
    if index is not None:
        if not 0 <= index < len(groups):
            raise UsageError(f"--index {index} is out of range: {len(groups)} records (0-based)")
        if groups[index].error is not None:
            raise InputError(f"record {index} holds no alignment: {groups[index].error}")
        groups = [groups[index]]
    alignments = [a for group in groups for a in group.alignments]
    return [a.to_words() for a in alignments] if words else alignments


@app.command()
def heatmap(
    text: TextArgument = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Figure file: .png, .svg or .pdf.")
    ] = Path("attention.png"),
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    threads: ThreadsOption = None,
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    ref: RefOption = None,
    prefix: PrefixOption = None,
    words: WordsOption = False,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from", help="Render alignments saved by `translate --json` or `export` ('-': stdin)."
        ),
    ] = None,
    index: Annotated[
        int | None, typer.Option("--index", help="With --from: render only record N (0-based).")
    ] = None,
    values: ValuesOption = False,
    scores: ScoresOption = False,
    cmap: Annotated[str | None, typer.Option("--cmap", help="Matplotlib colormap name.")] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of PNG output.")] = 150,
    title: Annotated[str | None, typer.Option("--title", help="Figure title.")] = None,
    font: Annotated[
        str | None, typer.Option("--font", help="Font family name or .ttf/.otf file.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace figure files that already exist.")
    ] = False,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Draw attention heatmaps to PNG, SVG or PDF files."""
    with errors():
        from attnviz.render.figure import FigureRenderer, figure_format
        from attnviz.render.values import render_options

        figure_format(out)  # fail on a bad suffix before any work
        look = render_options(
            values=values, scores=scores, cmap=cmap, dpi=dpi, title=title, font=font
        )
        if not out.parent.exists():
            raise UsageError(f"{out.parent}: folder does not exist")
        if from_file is not None:
            if text:
                raise UsageError("give either TEXT or --from, not both")
            if prefix is not None:
                raise UsageError("--prefix decodes anew; it does not combine with --from")
            alignments = _alignments_from(from_file, index, words)
        else:
            if index is not None:
                raise UsageError("--index works only with --from")
            sentences = sentences_from(text)
            check_refs(ref, sentences)
            options = decode_options(beam=beam, nbest=nbest, words=words, prefix=prefix)
            translator = load_translator(model, device, precision, src_spm, tgt_spm, threads)
            alignments = translator.translate(sentences, refs=ref, options=options)
        drawable = [a for a in alignments if a.shape[0] and a.shape[1]]
        if not drawable:
            raise InputError("nothing to draw: every alignment is empty")
        paths = [_numbered(out, number, len(drawable)) for number in range(1, len(drawable) + 1)]
        for path in paths:  # refuse before drawing anything
            check_output(path, overwrite=force)
        console = stderr_console()
        with FigureRenderer(look) as renderer:
            for alignment, path in zip(drawable, paths, strict=True):
                renderer.render(alignment, path)
                console.print(safe_text(f"wrote {path}"))


@app.command()
def export(
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="One sentence per line (with --refs: source<TAB>reference).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    threads: ThreadsOption = None,
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    refs: Annotated[
        bool, typer.Option("--refs", help="Lines are source<TAB>reference; force the references.")
    ] = False,
    words: WordsOption = False,
    npz: Annotated[bool, typer.Option("--npz", help="Also write attention.npz.")] = False,
    html: Annotated[
        bool, typer.Option("--html", help="Also write view.html, the interactive HTML view.")
    ] = False,
    topk: TopkOption = 0,
    figures: Annotated[
        str | None, typer.Option("--figures", help="Also draw figures/<id>.png or .svg.")
    ] = None,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Processes decoding chunks, one CPU thread each (1: this process decodes).",
        ),
    ] = 1,
    figure_workers: Annotated[
        int, typer.Option("--figure-workers", help="Processes drawing figures.")
    ] = 2,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of PNG figures.")] = 100,
    chunk_lines: Annotated[
        int,
        typer.Option(
            "--chunk-lines",
            help="Lines decoded and committed together (resume granularity, unit of work).",
        ),
    ] = DEFAULT_CHUNK_LINES,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted export in OUT.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export in OUT.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first line that cannot be handled.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="K/N: export only chunks K, K+N, … into OUT/shard-K-of-N (join the shards "
            "with `attnviz merge`); auto: K and N from RANK/WORLD_SIZE (torchrun) or "
            "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT.",
        ),
    ] = None,
    links: LinksOption = "argmax",
    diagnostics: DiagnosticsOption = False,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
) -> None:
    """Export the alignments of a whole file: JSONL, Pharaoh, NPZ, HTML and figures."""
    with errors():
        from attnviz.cli.progress import ExportBar
        from attnviz.export import Exporter, ExportOptions
        from attnviz.export.shards import parse_shard, shard_folder
        from attnviz.export.source import check_input

        part = parse_shard(shard) if shard is not None else (0, 1)
        if shard is not None:
            out = shard_folder(out, *part)

        options = ExportOptions(
            decode=decode_options(
                beam=beam, nbest=nbest, words=words, batch_size=batch_size, topk=topk
            ),
            refs=refs,
            npz=npz,
            html=html,
            figures=figures,
            chunk_lines=chunk_lines,
            strict=strict,
            workers=workers,
            figure_workers=figure_workers,
            dpi=dpi,
            shard=part,
            links=links,
            diagnostics=diagnostics,
        )
        if resume and overwrite:
            raise UsageError("--resume and --overwrite exclude each other")
        check_input(input_file)  # before the model loads
        translator = load_translator(model, device, precision, src_spm, tgt_spm, threads)
        console = stderr_console()
        exporter = Exporter(
            translator,
            input_file,
            out,
            options,
            resume=resume,
            overwrite=overwrite,
            on_warning=lambda message: console.print(safe_text(message, "warning:", "yellow")),
        )
        with exporter:
            exporter.start()  # folder and input problems show before the progress bar
            if exporter.already_complete:
                console.print(safe_text(f"{out}: this export is already complete; nothing to do"))
                return
            with ExportBar(console) as bar:
                exporter.on_progress = bar.update
                stats = exporter.run()
        console.print(
            safe_text(
                f"exported {stats.records} sentences ({stats.empty} empty, {stats.failed} failed"
                f"{', ' + str(stats.figures) + ' figures' if figures else ''}) in "
                f"{stats.seconds:.1f}s to {out}"
            )
        )
