"""The terminal heatmap: a rich renderable of one Alignment.

Rows are target tokens, columns source tokens. Each cell is shaded by its weight (a background
colour on colour terminals, shade glyphs ``·░▒▓█`` otherwise) and each row's maximum is marked
with ``●``. When the table is wider than the console, the source columns are split into
several blocks, each captioned with the columns it shows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from rich.cells import cell_len
from rich.color import Color
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.table import Table
from rich.text import Text

from attnviz.alignment import Alignment

SHADES = " ·░▒▓█"
MAX_MARK = "●"
MAX_TOKEN_CELLS = 14
# perceptually ordered ramp (dark blue -> teal -> yellow), as in viridis
_RAMP = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def _ramp(value: float) -> tuple[int, int, int]:
    value = min(max(value, 0.0), 1.0) * (len(_RAMP) - 1)
    low = int(np.floor(value))
    high = min(low + 1, len(_RAMP) - 1)
    frac = value - low
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


def _display(token: str) -> str:
    # printable even for control characters or empty pieces
    shown = "".join(ch if ch.isprintable() else "\ufffd" for ch in token)
    return _shorten(shown or "∅")


class AttentionTable:
    """Rich renderable heatmap. ``values`` prints the weights (or scores) in the cells."""

    def __init__(
        self,
        alignment: Alignment,
        *,
        values: bool = False,
        scores: bool = False,
        title: str | None = None,
    ) -> None:
        self.alignment = alignment
        self.values = values
        self.scores = scores
        self.title = title

    # -- layout -----------------------------------------------------------------------------

    def _matrix(self) -> np.ndarray:
        return self.alignment.scores if self.scores else self.alignment.weights

    def _cell_width(self) -> int:
        if not self.values:
            return 3
        if self.scores:
            return max(5, max((len(f"{v:.2f}") for v in self._matrix().ravel()), default=5))
        return 4

    def _column_widths(self, tokens: list[str]) -> list[int]:
        return [max(cell_len(t), self._cell_width()) for t in tokens]

    def _blocks(self, width: int) -> list[range]:
        """Split source columns so each block fits in ``width`` cells."""
        src = [_display(t) for t in self.alignment.src_tokens]
        tgt = [_display(t) for t in self.alignment.tgt_tokens]
        label = max((cell_len(t) for t in tgt), default=1)
        widths = self._column_widths(src)
        blocks: list[range] = []
        start, used = 0, label + 4  # borders and padding of the label column
        for index, column in enumerate(widths):
            need = column + 3
            if index > start and used + need > width:
                blocks.append(range(start, index))
                start, used = index, label + 4
            used += need
        blocks.append(range(start, len(widths)))
        return blocks

    # -- cells ------------------------------------------------------------------------------

    def _cell(self, value: float, weight: float, is_max: bool, width: int, color: bool) -> Text:
        body = ""
        if self.values:
            body = f"{value:.2f}" if self.scores else _weight_text(value)
        if color:
            red, green, blue = _ramp(weight)
            background = Color.from_rgb(red, green, blue)
            foreground = "black" if weight > 0.55 else "white"
            text = (body + (MAX_MARK if is_max else "")) if body else (MAX_MARK if is_max else "")
            return Text(
                text.center(width), style=Style(bgcolor=background, color=foreground, bold=is_max)
            )
        shade = SHADES[min(round(weight * (len(SHADES) - 1)), len(SHADES) - 1)]
        if body:
            text = body + (MAX_MARK if is_max else " ")
        else:
            text = shade * 2 + (MAX_MARK if is_max else shade)
        return Text(text.rjust(width))

    def _weights_for_shading(self) -> np.ndarray:
        if not self.scores:
            return self.alignment.weights
        matrix = self.alignment.scores
        if matrix.size == 0:
            return matrix
        low, high = float(matrix.min()), float(matrix.max())
        return (matrix - low) / (high - low) if high > low else np.zeros_like(matrix)

    def _table(self, columns: range, color: bool, caption: str | None) -> Table:
        alignment = self.alignment
        src = [_display(t) for t in alignment.src_tokens]
        tgt = [_display(t) for t in alignment.tgt_tokens]
        widths = self._column_widths(src)
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
                Text(src[index]), justify="right", no_wrap=True, min_width=widths[index]
            )
        matrix = self._matrix()
        shading = self._weights_for_shading()
        for row, token in enumerate(tgt):
            best = int(np.argmax(alignment.weights[row])) if alignment.weights.shape[1] else -1
            cells = [
                self._cell(
                    float(matrix[row, col]),
                    float(shading[row, col]),
                    col == best,
                    widths[col],
                    color,
                )
                for col in columns
            ]
            table.add_row(Text(token), *cells)
        return table

    # -- rich protocol ----------------------------------------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        alignment = self.alignment
        if not alignment.src_tokens or not alignment.tgt_tokens:
            yield Text("(empty: nothing to show)")
            return
        color = console.color_system is not None and not console.no_color
        blocks = self._blocks(options.max_width)
        total = len(alignment.src_tokens)
        tables: list[Table] = []
        for block in blocks:
            caption = None
            if len(blocks) > 1:
                caption = f"source {block.start + 1}–{block.stop} of {total} (split to fit)"
            tables.append(self._table(block, color, caption))
        renderables: list = [Text(self.title, style="bold")] if self.title else []
        renderables.extend(tables)
        yield Group(*renderables)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def render_text(
    alignments: Iterable[Alignment],
    console: Console,
    *,
    values: bool = False,
    scores: bool = False,
    show_table: bool = True,
) -> None:
    """Print each alignment's translation, then its heatmap table."""
    alignments = list(alignments)
    numbered = len(alignments) > 1
    for alignment in alignments:
        header = Text()
        if numbered:
            header.append(f"#{alignment.rank + 1} ", style="bold")
        header.append(alignment.translation)
        if not np.isnan(alignment.score):
            header.append(f"  (score {alignment.score:.3f})", style="dim")
        console.print(header, soft_wrap=True)
        if show_table:
            console.print(AttentionTable(alignment, values=values, scores=scores))
            console.print()
