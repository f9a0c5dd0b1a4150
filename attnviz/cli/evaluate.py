"""``attnviz eval``: word alignments read off attention, scored against gold; diagnostics.

Inputs are streamed: records are read, or pairs force-decoded, a chunk at a time and scored
into running totals, so memory stays flat however long the file. Every row of the summary is
one way of reading links (a model, an export, or two directions symmetrised) over one pass.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from attnviz.cli.app import app
from attnviz.cli.common import (
    BatchSizeOption,
    DeviceOption,
    LinksOption,
    PrecisionOption,
    SrcSpmOption,
    TgtSpmOption,
    ThreadsOption,
    errors,
    load_translator,
    safe_text,
    stderr_console,
    stdout_console,
)
from attnviz.cli.progress import ProgressBar
from attnviz.errors import UsageError
from attnviz.options import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from rich.console import Console

    from attnviz.eval import Gold, Hypotheses, RowScorer

SYM_ALL = "all"
GOLD_KEYS = ("aer", "precision", "recall", "f1")


class EvalBar(ProgressBar):
    """Sentences scored, with sentences per second; gone when the run ends."""

    label = "eval"
    transient = True


@dataclass
class Pass:
    """One walk over the inputs, feeding several rows."""

    hypotheses: Callable[[], Hypotheses]
    rows: list[RowScorer]
    total: int | None
    reverse: Callable[[], Hypotheses] | None = None
    translators: list[Any] = field(default_factory=list)


@app.command(name="eval")
def eval_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Export folders or JSONL files of alignments ('-': stdin); with --model, "
            "one TSV file of source<TAB>reference pairs to force-decode.",
            show_default=False,
        ),
    ],
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold",
            "-g",
            help="Gold word alignments, one sentence per line: Pharaoh 'i-j' (sure) and "
            "'i?j' or 'ipj' (possible), or NAACL/WPT 'sentence i j [S|P]' lines.",
        ),
    ] = None,
    gold_format: Annotated[
        str, typer.Option("--gold-format", help="auto, pharaoh or naacl.")
    ] = "auto",
    one_indexed: Annotated[
        bool, typer.Option("--one-indexed", help="Pharaoh gold indices count from 1.")
    ] = False,
    reverse_gold: Annotated[
        bool, typer.Option("--reverse", help="The gold links are target-source ('j-i').")
    ] = False,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Force-decode INPUT's pairs with this model (path or bundled name); repeat "
            "for one row per model.",
        ),
    ] = None,
    reverse_model: Annotated[
        str | None,
        typer.Option(
            "--reverse-model",
            help="Target→source model: decodes the same pairs the other way, for --sym.",
        ),
    ] = None,
    sym: Annotated[
        list[str] | None,
        typer.Option(
            "--sym",
            help="Symmetrise the two directions: intersection, union, grow-diag, "
            "grow-diag-final, grow-diag-final-and, or all; repeat for several rows. Needs "
            "--reverse-model, or two INPUTs (forward, then reverse).",
        ),
    ] = None,
    links: LinksOption = "argmax",
    worst: Annotated[
        int, typer.Option("--worst", help="List the N worst sentences of each row.")
    ] = 0,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="What makes a sentence bad: aer, recall, precision, f1, confidence, cdp, "
            "ap_out, ap_in, entropy, eos_weight, crossings, unattended, overattended "
            "(default: aer with --gold, else confidence).",
        ),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option("--figures", help="Draw a heatmap of each worst sentence into this folder."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as one JSON object.")
    ] = False,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    threads: ThreadsOption = None,
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
) -> None:
    """Score the word alignments in attention against gold, and diagnose attention."""
    with errors():
        from attnviz.eval import SORT_KEYS, parse_link_method

        method = str(parse_link_method(links))
        methods = _sym_methods(sym)
        sort = sort or ("aer" if gold is not None else "confidence")
        if sort not in SORT_KEYS:
            raise UsageError(f"unknown --sort {sort!r}; choose from {', '.join(SORT_KEYS)}")
        if sort in GOLD_KEYS and gold is None:
            raise UsageError(f"--sort {sort} needs gold alignments (--gold)")
        if worst < 0:
            raise UsageError(f"--worst must be at least 0, not {worst}")
        if figures is not None and not worst:
            raise UsageError("--figures draws the worst sentences: give --worst N")
        if figures is not None:
            _check_figure_folder(figures)
        golds = _gold_reader(gold, gold_format, one_indexed, reverse_gold)
        settings = {"links": method, "worst": worst, "sort": sort}
        if models:

            def load(model: str | None, reverse: bool = False):
                # the reverse model reads the target language: the SentencePiece models swap
                spm = (tgt_spm, src_spm) if reverse else (src_spm, tgt_spm)
                return load_translator(model, device, precision, *spm, threads)

            passes = _model_passes(
                inputs, models, reverse_model, methods, settings, load, batch_size
            )
        else:
            if reverse_model is not None:
                raise UsageError("--reverse-model needs --model (and one TSV file of pairs)")
            passes = _record_passes(inputs, methods, settings)
            if gold is not None:
                _warn_free_translations(inputs)
        if golds is not None and len(passes) > 1:
            gold_list = list(golds())  # read once: several passes, and the file may be a pipe
            golds = lambda: gold_list  # noqa: E731
        rows = _run(passes, golds)
        if as_json:
            _print_json(rows, gold, method, sort)
        else:
            _print_tables(rows, gold, method, sort)
        if figures is not None:
            _draw(rows, figures)


def _sym_methods(sym: list[str] | None) -> list[str]:
    from attnviz.eval import SYMMETRISATIONS

    chosen: list[str] = []
    for value in sym or []:
        for name in SYMMETRISATIONS if value == SYM_ALL else (value,):
            if name not in SYMMETRISATIONS:
                raise UsageError(
                    f"unknown --sym {name!r}; choose from {', '.join(SYMMETRISATIONS)} or all"
                )
            if name not in chosen:
                chosen.append(name)
    return chosen


def _gold_reader(
    gold: Path | None, gold_format: str, one_indexed: bool, reverse: bool
) -> Callable[[], Iterable[Gold]] | None:
    from attnviz import io
    from attnviz.eval import GOLD_FORMATS, read_gold

    if gold is None:
        if one_indexed or reverse or gold_format != "auto":
            raise UsageError("--one-indexed, --reverse and --gold-format describe --gold")
        return None
    if gold_format not in GOLD_FORMATS:
        raise UsageError(f"--gold-format must be one of {', '.join(GOLD_FORMATS)}")
    io.check_input_file(gold, "gold alignment file")
    return lambda: read_gold(gold, format=gold_format, one_indexed=one_indexed, reverse=reverse)


def _check_figure_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: --figures needs a folder, and this is not one")
    if not folder.exists() and not folder.parent.is_dir():
        raise UsageError(f"{folder}: its folder {folder.parent} does not exist")


def _rows_for(
    forward: str, reverse: str | None, methods: list[str], settings: dict[str, Any]
) -> list[RowScorer]:
    from attnviz.eval import RowScorer

    rows = [RowScorer(forward, **settings)]
    if reverse is not None:
        rows.append(RowScorer(reverse, use="reverse", **settings))
        rows += [RowScorer(name, use="both", sym=name, **settings) for name in methods]
    return rows


def _model_passes(
    inputs: list[str],
    models: list[str],
    reverse_model: str | None,
    methods: list[str],
    settings: dict[str, Any],
    load: Callable[..., Any],
    batch_size: int,
) -> list[Pass]:
    from attnviz import io
    from attnviz.eval import decode_pairs

    if len(inputs) != 1:
        raise UsageError(f"with --model, give one TSV file of pairs, not {len(inputs)} inputs")
    pairs = Path(inputs[0])
    io.check_input_file(pairs, "TSV file of source<TAB>reference pairs")
    if reverse_model is not None:
        if len(models) != 1:
            raise UsageError("--reverse-model goes with one --model")
        if not methods:
            raise UsageError("--reverse-model needs --sym (a heuristic, or all)")
    elif methods:
        raise UsageError("--sym needs --reverse-model (or two export INPUTs)")
    total = _count_lines(pairs)
    backward = None
    if reverse_model is not None:
        back_translator = load(reverse_model, reverse=True)
        backward = lambda: decode_pairs(  # noqa: E731
            back_translator, pairs, reverse=True, batch_size=batch_size
        )
    passes = []
    for model in models:
        translator = load(model)
        passes.append(
            Pass(
                hypotheses=lambda t=translator: decode_pairs(t, pairs, batch_size=batch_size),
                rows=_rows_for(_model_label(model), _model_label(reverse_model), methods, settings)
                if reverse_model is not None
                else _rows_for(_model_label(model), None, [], settings),
                total=total,
                reverse=backward,
            )
        )
    return passes


def _model_label(model: str | None) -> str | None:
    if model is None:
        return None
    path = Path(model)
    return path.stem if path.suffix == ".pt" else model


def _record_passes(inputs: list[str], methods: list[str], settings: dict[str, Any]) -> list[Pass]:
    from attnviz.eval import read_records, records_path

    paths = [records_path(source) for source in inputs]  # each checked before any work
    if inputs.count("-") > 1:
        raise UsageError("stdin ('-') can be read only once")
    if methods:
        if len(inputs) != 2:
            raise UsageError(
                f"--sym with exported alignments needs two INPUTs (forward, reverse), "
                f"not {len(inputs)}"
            )
        forward, reverse = inputs
        return [
            Pass(
                hypotheses=lambda: read_records(forward),
                rows=_rows_for(forward, reverse, methods, settings),
                total=_count_lines(paths[0]),
                reverse=lambda: read_records(reverse),
            )
        ]
    return [
        Pass(
            hypotheses=lambda source=source: read_records(source),
            rows=_rows_for(source, None, [], settings),
            total=_count_lines(path),
        )
        for source, path in zip(inputs, paths, strict=True)
    ]


def _warn_free_translations(inputs: list[str]) -> None:
    """Gold links index the references: say so when an export decoded something else."""
    for source in inputs:
        manifest = Path(source) / "manifest.json"
        if not Path(source).is_dir() or not manifest.is_file():
            continue
        try:
            options = json.loads(manifest.read_text(encoding="utf-8")).get("options", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(options, dict) and options.get("refs") is False:
            message = (
                f"{source}: exported without --refs; the gold indexes the references, not "
                "these translations"
            )
            stderr_console().print(safe_text(message, "warning:", "yellow"))


def _count_lines(path: Path) -> int | None:
    """Lines of a file (the progress bar's total); None for stdin."""
    if str(path) == "-":
        return None
    count, last = 0, b"\n"
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _run(passes: list[Pass], golds: Callable[[], Iterable[Gold]] | None) -> list[RowScorer]:
    from attnviz.eval import zip_inputs

    rows: list[RowScorer] = []
    console = stderr_console()
    with EvalBar(console) as bar:
        for number, walk in enumerate(passes, 1):
            start = time.perf_counter()
            items = zip_inputs(
                walk.hypotheses(),
                gold=golds() if golds is not None else None,
                reverse=walk.reverse() if walk.reverse is not None else None,
            )
            for done, item in enumerate(items, 1):
                for row in walk.rows:
                    row.feed(item)
                if done % 64 == 0:
                    rate = done / max(time.perf_counter() - start, 1e-9)
                    where = f"pass {number}/{len(passes)} · " if len(passes) > 1 else ""
                    bar.show(done, walk.total, f"{where}{rate:,.0f} sent/s")
            for row in walk.rows:
                row.finish()
            rows += walk.rows
    return rows


# -- output -------------------------------------------------------------------------------------


def _table(title: str, first: str):  # a rich Table with the house style
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(first, overflow="fold")
    return table


def _quality_table(rows: list[RowScorer], gold: Path, links: str):
    from attnviz.text import visible

    scored = max(row.scorer.scored for row in rows)
    table = _table(f"alignment quality: {scored:,} sentences, {links} links", "links")
    for name in ("precision", "recall", "F1", "AER"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        summary = row.scorer.summary()
        if "aer" not in summary:
            table.add_row(visible(row.label), "–", "–", "–", "–")
            continue
        values = (summary[key] for key in ("precision", "recall", "f1", "aer"))
        table.add_row(visible(row.label), *(f"{value:.3f}" for value in values))
    return table


def _diagnostics_table(rows: list[RowScorer]):
    from attnviz.text import visible

    table = _table("attention diagnostics: means per sentence", "attention of")
    for name in ("entropy", "CDP", "APin", "</s>", "cross", "under", "over"):
        table.add_column(name, justify="right", no_wrap=True)
    table.caption = (
        "entropy = -APout (nats); cross: share of crossing links; under / over: source words "
        "with total weight < 0.5 / > 2"
    )
    table.caption_justify = "left"
    for row in rows:
        if row.use == "both":
            continue  # symmetrised rows add no attention of their own
        summary = row.scorer.summary()
        values = [summary[key] for key in ("entropy", "cdp", "ap_in", "eos_weight", "crossings")]
        cells = [f"{value:.3f}" for value in values]
        cells += [f"{summary['unattended']:.2f}", f"{summary['overattended']:.2f}"]
        table.add_row(visible(row.label), *cells)
    return table


def _worst_table(row: RowScorer, with_gold: bool, sort: str):
    from attnviz.alignment import NON_WORDS
    from attnviz.text import visible

    table = _table(f"worst by {sort}: {visible(row.label)}", "line")
    table.columns[0].justify = "right"
    table.columns[0].no_wrap = True
    table.columns[0].min_width = 5
    table.add_column(sort, justify="right", no_wrap=True, min_width=max(len(sort), 6))
    if with_gold and sort != "aer":
        table.add_column("AER", justify="right", no_wrap=True, min_width=6)
    table.add_column("source")
    table.add_column("unattended")
    for result in row.scorer.worst():
        words = result.words
        real = [token for token in words.src_tokens if token not in NON_WORDS]
        unattended = ", ".join(real[i] for i in result.diagnostics.unattended)
        cells = [str(result.index + 1), f"{result.value(sort):.3f}"]
        if with_gold and sort != "aer":
            cells.append(f"{result.counts.aer:.3f}" if result.counts is not None else "–")
        cells += [_clip(visible(result.alignment.source), 40), _clip(visible(unattended), 20)]
        table.add_row(*cells)
    return table


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_tables(rows: list[RowScorer], gold: Path | None, links: str, sort: str) -> None:
    with_gold = gold is not None
    console: Console = stdout_console()
    if with_gold:
        console.print(_quality_table(rows, gold, links))
    console.print(_diagnostics_table(rows))
    failed = sum(row.scorer.failed for row in rows)
    if failed:
        console.print(safe_text(f"{failed} sentences could not be scored (failed lines)"))
    for row in rows:
        if row.scorer.worst_n:
            console.print(_worst_table(row, with_gold, sort))
    sys.stdout.flush()


def _print_json(rows: list[RowScorer], gold: Path | None, links: str, sort: str) -> None:
    from attnviz.text import json_safe

    result = {
        "gold": str(gold) if gold is not None else None,
        "links": links,
        "sort": sort,
        "rows": [
            {
                "label": row.label,
                **row.scorer.summary(),
                "worst": [item.to_dict() for item in row.scorer.worst()],
            }
            for row in rows
        ],
    }
    sys.stdout.write(json_safe(json.dumps(result, ensure_ascii=False, allow_nan=False)) + "\n")
    sys.stdout.flush()


def _draw(rows: list[RowScorer], folder: Path) -> None:
    import re

    from attnviz.render.figure import FigureRenderer

    folder.mkdir(exist_ok=True)
    count = 0
    with FigureRenderer() as renderer:
        for number, row in enumerate(rows, 1):
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(row.label).name)[:40].strip("._")
            for result in row.scorer.worst():
                name = f"{number}-{slug or 'row'}-line{result.index + 1}.png"
                renderer.render(result.words, folder / name)
                count += 1
    stderr_console().print(safe_text(f"drew {count} figures in {folder}"))
