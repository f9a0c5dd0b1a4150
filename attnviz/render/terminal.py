"""The terminal heatmap: a rich renderable of one Alignment.

Rows are target tokens, columns source tokens. Each cell is shaded by its value (a background
colour on colour terminals, shade glyphs ``·░▒▓█`` otherwise) and each row's maximum weight is
marked with ``●``. When the table is wider than the console, the source columns are split into
several blocks, each captioned with the columns it shows; token labels shrink on narrow
consoles so that every cell keeps its mark. At most ``MAX_ROWS`` rows and ``MAX_LINES`` lines
are printed, with a note naming what was left out. Values that are not finite show as
``nan``, ``inf`` or ``-inf`` (on grey). Tokens go through :func:`attnviz.text.visible`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.cells import cell_len
from rich.color import Color
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.table import Table
from rich.text import Text

from attnviz.alignment import Alignment
from attnviz.errors import UsageError
from attnviz.options import RenderOptions
from attnviz.render.values import View, render_options, view
from attnviz.text import visible

SHADES = " ·░▒▓█"
RUNNER_UP = "runner-up"
MAX_MARK = "●"
MAX_TOKEN_CELLS = 14
#: Target rows printed at most.
MAX_ROWS = 100
#: Lines a table may take at most, all blocks together; the source tokens of the blocks that
#: would pass it are left out (with a note).
MAX_LINES = 400
_BLOCK_EXTRA_LINES = 3  # a block's header and (about) its caption
_PADDING = 2  # cells between two columns (1 on each side); the outer edges have none
_MISSING = Color.parse("grey50")  # background of cells whose value is not finite
# perceptually ordered ramp (dark blue -> teal -> yellow), as in viridis
_RAMP = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def _ramp(position: float) -> tuple[int, int, int]:
    """The colour at ``position`` (0-1, finite) of the ramp."""
    position = min(max(position, 0.0), 1.0) * (len(_RAMP) - 1)
    low = int(position)
    high = min(low + 1, len(_RAMP) - 1)
    frac = position - low
    return tuple(  # type: ignore[return-value]
        round(a + (b - a) * frac) for a, b in zip(_RAMP[low], _RAMP[high], strict=True)
    )


def _shorten(token: str, limit: int = MAX_TOKEN_CELLS) -> str:
    if cell_len(token) <= limit:
        return token
    out = ""
    for char in token:
        if cell_len(out + char) > limit - 1:
            break
        out += char
    return out + "…"


def _weight_text(value: float) -> str:
    """A weight in three cells: ".42", and "1.0" for anything that rounds to 1."""
    text = f"{value:.2f}"
    return "1.0" if text.startswith("1") else text[1:]


def _number(value: float, bounded: bool) -> str:
    """A cell's number: three cells for weights in [0, 1], two decimals otherwise."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return _weight_text(value) if bounded else f"{value:.2f}"


def _label(token: str, limit: int) -> str:
    """A token as shown: control characters made visible, empty pieces as ∅, long ones cut."""
    return _shorten(visible(token) or "∅", limit)


RUNNER_UP_TOKEN_CELLS = 10


def runner_ups(alignment: Alignment) -> list[str] | None:
    """Per target row, the most likely token the decoder did not emit and its probability
    (from the ``topk`` alternatives recorded with decoding); None when none were recorded.

    At the word level the alternatives already leave the emitted piece out.
    """
    topk = alignment.meta.get("topk")
    if not isinstance(topk, list) or len(topk) != len(alignment.tgt_tokens):
        return None
    cells = []
    for token, step in zip(alignment.tgt_tokens, topk, strict=True):
        others = [
            pair
            for pair in (step if isinstance(step, list) else [])
            if isinstance(pair, list | tuple)
            and len(pair) == 2
            and isinstance(pair[1], int | float)
            and (alignment.level == "words" or pair[0] != token)
        ]
        if others:
            name, probability = others[0]
            shown = f"{probability:.2f}" if probability >= 0.01 else f"{probability:.1e}"
            cells.append(f"{_label(str(name), RUNNER_UP_TOKEN_CELLS)} {shown}")
        else:
            cells.append("–")
    return cells


@dataclass(frozen=True)
class _Plan:
    """What one table shows at one console width."""

    src: list[str]  # labels of every source token, shortened to fit
    tgt: list[str]  # labels of the target rows shown
    widths: list[int]  # cells of each source column
    blocks: list[range]  # source columns of each block shown
    hidden_columns: int  # source tokens left out after the last block


class AttentionTable:
    """Rich renderable heatmap of ``alignment``, drawn as ``options`` say."""

    def __init__(self, alignment: Alignment, options: RenderOptions | None = None) -> None:
        self.alignment = alignment
        self.options = options or RenderOptions()
        self.view: View = view(alignment, self.options)
        self._position = self.view.position()  # [T, S]
        self._runner_ups = runner_ups(alignment)

    # -- layout -----------------------------------------------------------------------------

    def _cell_width(self) -> int:
        """Cells of the widest value cell, the ● (or the space kept for it) included."""
        matrix = self.view.matrix
        finite = matrix[np.isfinite(matrix)]
        special = max(  # "nan", "inf", "-inf"
            (len(_number(v, True)) for v in np.unique(matrix[~np.isfinite(matrix)])), default=0
        )
        widest = 2  # two shade glyphs
        if self.options.numbers:
            widest = 3  # a weight: ".42"
            if finite.size and not self.view.bounded:
                widest = max(len(_number(float(v), False)) for v in (finite.min(), finite.max()))
        return max(widest, special) + 1

    def _plan(self, width: int) -> _Plan | None:
        """Labels and column blocks that fit ``width`` cells; None when not even one column
        fits."""
        cell = self._cell_width()
        if self._runner_ups is not None:  # the runner-up column ends every block
            width -= max(cell_len(t) for t in [RUNNER_UP, *self._runner_ups]) + _PADDING
        header_limit = max(cell, min(MAX_TOKEN_CELLS, (width - _PADDING) // 2))
        label_limit = min(MAX_TOKEN_CELLS, width - _PADDING - header_limit)
        if label_limit < 1:
            return None
        src = [_label(token, header_limit) for token in self.alignment.src_tokens]
        tgt = [_label(token, label_limit) for token in self.alignment.tgt_tokens[:MAX_ROWS]]
        widths = [max(cell_len(label), cell) for label in src]
        label = max(cell_len(text) for text in tgt)
        blocks: list[range] = []
        start, used = 0, label
        for index, column in enumerate(widths):
            if index > start and used + column + _PADDING > width:
                blocks.append(range(start, index))
                start, used = index, label
            used += column + _PADDING
        blocks.append(range(start, len(widths)))
        shown = blocks[: max(1, MAX_LINES // (len(tgt) + _BLOCK_EXTRA_LINES))]
        return _Plan(src, tgt, widths, shown, len(widths) - shown[-1].stop)

    # -- cells ------------------------------------------------------------------------------

    def _cell(self, value: float, position: float, is_max: bool, width: int, color: bool) -> Text:
        mark = MAX_MARK if is_max else " "
        if math.isnan(position):  # the value is not finite
            text = _number(value, True) + mark
            if color:
                return Text(text.center(width), style=Style(bgcolor=_MISSING, color="white"))
            return Text(text.rjust(width))
        body = _number(value, self.view.bounded) if self.options.numbers else ""
        if color:
            background = Color.from_rgb(*_ramp(position))
            foreground = "black" if position > 0.55 else "white"
            text = body + (MAX_MARK if is_max else "")
            return Text(
                text.center(width), style=Style(bgcolor=background, color=foreground, bold=is_max)
            )
        if not body:
            shade = SHADES[min(round(position * (len(SHADES) - 1)), len(SHADES) - 1)]
            body, mark = shade * 2, MAX_MARK if is_max else shade
        return Text((body + mark).rjust(width))

    def _table(self, plan: _Plan, columns: range, color: bool, caption: str | None) -> Table:
        table = Table(
            show_header=True,
            header_style="bold" if color else "",
            box=None,
            padding=(0, 1),
            caption=caption,
            caption_justify="left",
            collapse_padding=False,
            pad_edge=False,
        )
        table.add_column("", justify="right", no_wrap=True, style="bold" if color else "")
        for index in columns:
            table.add_column(
                Text(plan.src[index]), justify="right", no_wrap=True, min_width=plan.widths[index]
            )
        if self._runner_ups is not None:
            table.add_column(RUNNER_UP, no_wrap=True, style="dim" if color else "")
        matrix = self.view.matrix
        position = self._position
        maxima = self.view.maxima
        for row, token in enumerate(plan.tgt):
            cells = [
                self._cell(
                    float(matrix[row, col]),
                    float(position[row, col]),
                    col == maxima[row],
                    plan.widths[col],
                    color,
                )
                for col in columns
            ]
            if self._runner_ups is not None:
                cells.append(Text(self._runner_ups[row]))
            table.add_row(Text(token), *cells)
        return table

    # -- rich protocol ----------------------------------------------------------------------

    def _notes(self, plan: _Plan) -> list[Text]:
        """One line for each part of the alignment the table leaves out."""
        n_target, n_source = self.alignment.shape
        notes = []
        if plan.hidden_columns:
            first = n_source - plan.hidden_columns + 1
            notes.append(
                f"source tokens {first}–{n_source} of {n_source} not shown "
                f"(at most {MAX_LINES} lines)"
            )
        if n_target > len(plan.tgt):
            notes.append(
                f"target tokens {len(plan.tgt) + 1}–{n_target} of {n_target} not shown "
                f"(at most {MAX_ROWS} rows)"
            )
        if notes:
            notes.append("`attnviz heatmap` draws every token")
        return [Text("… " + note, style="dim") for note in notes]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        alignment = self.alignment
        if not alignment.src_tokens or not alignment.tgt_tokens:
            yield Text("(empty: nothing to show)")
            return
        plan = self._plan(options.max_width)
        if plan is None:
            yield Text(f"(the console is too narrow for the table: {options.max_width} cells)")
            return
        color = console.color_system is not None and not console.no_color
        n_source = alignment.shape[1]
        split = len(plan.blocks) > 1 or plan.hidden_columns > 0
        renderables: list = []
        if self.options.title:
            renderables.append(Text(visible(self.options.title), style="bold"))
        for block in plan.blocks:
            caption = None
            if split:
                caption = f"source {block.start + 1}–{block.stop} of {n_source} (split to fit)"
            renderables.append(self._table(plan, block, color, caption))
        renderables.extend(self._notes(plan))
        yield Group(*renderables)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def translation_line(alignment: Alignment, numbered: bool) -> Text:
    """The translation (with its rank in an n-best list) and its score, made visible."""
    header = Text()
    if numbered:
        header.append(f"#{alignment.rank + 1} ", style="bold")
    header.append(visible(alignment.translation))
    if not math.isnan(alignment.score):
        header.append(f"  (score {alignment.score:.3f})", style="dim")
    return header


def render_text(
    alignments: Alignment | Iterable[Alignment],
    console: Console,
    options: RenderOptions | None = None,
    *,
    after: Callable[[Alignment], Any] | None = None,
    **keywords: Any,
) -> None:
    """Print each alignment's translation (one Alignment or several), then (unless
    ``show_table`` is off) its table. Wrong types raise UsageError.

    Takes RenderOptions, or the keywords of :func:`attnviz.render.values.render_options`
    (``values=True`` for numbers in the cells, ``scores=True``, ``show_table``). ``after``
    gives a renderable printed under each alignment's table (e.g. a line of diagnostics).
    """
    options = render_options(options, **keywords)
    if not isinstance(console, Console):
        raise UsageError(f"console must be a rich Console, not {type(console).__name__}")
    if isinstance(alignments, Alignment):
        alignments = [alignments]
    if not isinstance(alignments, Iterable) or isinstance(alignments, str | bytes):
        raise UsageError(f"render_text needs Alignments, not {type(alignments).__name__}")
    alignments = list(alignments)
    for alignment in alignments:
        if not isinstance(alignment, Alignment):
            raise UsageError(f"render_text needs Alignments, not {type(alignment).__name__}")
    numbered = len(alignments) > 1
    for alignment in alignments:
        console.print(translation_line(alignment, numbered), soft_wrap=True)
        if options.show_table:
            console.print(AttentionTable(alignment, options))
        if after is not None:
            console.print(after(alignment), soft_wrap=True)
        if options.show_table:
            console.print()
