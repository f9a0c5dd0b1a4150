"""The figure and batch commands: ``attnviz heatmap`` and ``attnviz export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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
    errors,
    load_translator,
    sentences_from,
    split_lines,
    stderr_console,
)
from attnviz.errors import InputError, UsageError


def _numbered(out: Path, number: int, total: int) -> Path:
    if total == 1:
        return out
    width = len(str(total))
    return out.with_name(f"{out.stem}-{number:0{width}d}{out.suffix}")


def _read_records(source: str) -> list[dict]:
    import json

    if source == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("--from - reads alignments from stdin, but nothing is piped in")
        data = sys.stdin.buffer.read()
        name = "stdin"
    else:
        path = Path(source)
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not an alignment file")
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        data = path.read_bytes()
        name = str(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not UTF-8 text (bad byte at offset {err.start})") from err
    records = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{name}:{number}: not a JSON alignment record ({err.msg})") from err
        if not isinstance(record, dict):
            raise InputError(f"{name}:{number}: not a JSON alignment record")
        records.append(record)
    if not records:
        raise InputError(f"{name}: no alignment records")
    return records


def _alignments_from(source: str, index: int | None, words: bool) -> list:
    from attnviz.alignment import Alignment

    records = _read_records(source)
    if index is not None:
        if not 0 <= index < len(records):
            raise UsageError(f"--index {index} is out of range: {len(records)} records (0-based)")
        records = [records[index]]
    alignments = []
    for record in records:
        if "error" in record:
            if index is not None:
                raise InputError(f"record {index} holds no alignment: {record['error']}")
            continue
        others = record.get("nbest", [])
        if not isinstance(others, list) or not all(isinstance(o, dict) for o in others):
            raise InputError("bad alignment record: 'nbest' must be a list of records")
        for item in [record, *others]:
            try:
                alignment = Alignment.from_dict(item)
            except (ValueError, TypeError) as err:
                raise InputError(f"bad alignment record: {err}") from err
            alignments.append(alignment.to_words() if words else alignment)
    return alignments


@app.command()
def heatmap(
    text: TextArgument = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Figure file: .png, .svg or .pdf.")
    ] = Path("attention.png"),
    model: ModelOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    ref: RefOption = None,
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
) -> None:
    """Draw attention heatmaps to PNG, SVG or PDF files."""
    with errors():
        from attnviz.render.figure import FigureRenderer, figure_format

        figure_format(out)  # fail on a bad suffix before any work
        if not out.parent.exists():
            raise UsageError(f"{out.parent}: folder does not exist")
        if from_file is not None:
            if text:
                raise UsageError("give either TEXT or --from, not both")
            alignments = _alignments_from(from_file, index, words)
        else:
            if index is not None:
                raise UsageError("--index works only with --from")
            sentences = sentences_from(text)
            check_refs(ref, sentences)
            translator = load_translator(model, device, precision)
            alignments = translator.translate(
                sentences, beam_size=beam, nbest=nbest, refs=ref, words=words
            )
        drawable = [a for a in alignments if a.shape[0] and a.shape[1]]
        if not drawable:
            raise InputError("nothing to draw: every alignment is empty")
        console = stderr_console()
        with FigureRenderer(
            values=values, scores=scores, cmap=cmap, dpi=dpi, title=title, font=font
        ) as renderer:
            for number, alignment in enumerate(drawable, start=1):
                path = renderer.render(alignment, _numbered(out, number, len(drawable)))
                console.print(f"wrote {escape(str(path))}")


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
    beam: BeamOption = 1,
    nbest: NbestOption = 1,
    refs: Annotated[
        bool, typer.Option("--refs", help="Lines are source<TAB>reference; force the references.")
    ] = False,
    words: WordsOption = False,
    npz: Annotated[bool, typer.Option("--npz", help="Also write attention.npz.")] = False,
    figures: Annotated[
        str | None, typer.Option("--figures", help="Also draw figures/<id>.png or .svg.")
    ] = None,
    batch_size: BatchSizeOption = 32,
    workers: Annotated[int, typer.Option("--workers", help="Processes drawing figures.")] = 2,
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of PNG figures.")] = 100,
    chunk_lines: Annotated[
        int, typer.Option("--chunk-lines", help="Lines committed together (resume granularity).")
    ] = 256,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted export in OUT.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export in OUT.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first line that cannot be handled.")
    ] = False,
) -> None:
    """Export the alignments of a whole file: JSONL, Pharaoh, NPZ and figures."""
    with errors():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from attnviz.export import Exporter, ExportOptions

        options = ExportOptions(
            refs=refs,
            words=words,
            npz=npz,
            figures=figures,
            beam=beam,
            nbest=nbest,
            batch_size=batch_size,
            chunk_lines=chunk_lines,
            strict=strict,
            workers=workers,
            dpi=dpi,
        )
        if input_file.is_dir():
            raise InputError(f"{input_file}: is a folder, not a text file")
        if not input_file.is_file():
            raise InputError(f"{input_file}: no such file")
        translator = load_translator(model, device, precision)
        console = stderr_console()
        exporter = Exporter(
            translator,
            input_file,
            out,
            options,
            resume=resume,
            overwrite=overwrite,
            on_warning=lambda message: console.print(f"[yellow]warning:[/] {escape(message)}"),
        )
        exporter.start()  # folder and input problems show before the progress bar
        bar = Progress(
            TextColumn("[bold]export"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} sent/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        with bar:
            task = bar.add_task("export", total=None, rate="0.0")

            def progress(report) -> None:
                rate = report.done / max(report.elapsed, 1e-9)
                bar.update(task, total=report.total, completed=report.done, rate=f"{rate:.1f}")

            exporter.on_progress = progress
            stats = exporter.run()
        console.print(
            f"exported {stats.records} sentences ({stats.empty} empty, {stats.failed} failed"
            f"{', ' + str(stats.figures) + ' figures' if figures else ''}) in "
            f"{stats.seconds:.1f}s to {escape(str(out))}"
        )
