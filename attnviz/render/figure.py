"""Attention heatmaps as PNG, SVG or PDF files, drawn with matplotlib's object API.

Source tokens run along the top (columns), target tokens down the left (rows), with a
colour bar on the right. Weights use a sequential colormap on a fixed 0-1 scale, so the
figures of one export compare at a glance; raw scores use a diverging colormap on limits
symmetric around 0. The largest weight of each row gets a thin outline.

The layout is computed from measured label widths, not ``bbox_inches="tight"``: cells
and fonts shrink as token counts grow, source labels turn vertical when they would
collide, and no image side passes ``MAX_PIXELS``. Every artist is placed in figure
inches, without Axes, and one figure serves many calls, which keeps export fast.
"""

from __future__ import annotations

import functools
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from attnviz.alignment import Alignment
from attnviz.errors import AttnvizError, InputError, UsageError
from attnviz.fonts import font_families

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

FORMATS = ("png", "svg", "pdf")
WEIGHTS_CMAP = "Blues"
SCORES_CMAP = "RdBu_r"
MAX_PIXELS = 16_000  # longest image side, in pixels at the dpi used

# Sizes in points (pt) or inches (in).
FONT_SIZE = 10.0  # pt, token labels while there is room
MIN_FONT_SIZE = 5.0  # pt, the floor labels shrink to on large inputs
VALUE_FONT_RATIO = 0.8  # cell values relative to the label size
TITLE_FONT_SIZE = 11.0  # pt
COLORBAR_FONT_SIZE = 9.0  # pt
TARGET_SIDE = 6.0  # in, heatmap side that cells grow towards on short inputs
MAX_CELL = 0.6  # in
MAX_LABEL_CHARS = 40

_LINE = 1.05  # height of one line of text, in multiples of its font size
_PAD = 0.12  # in, figure border
_LABEL_GAP = 4 / 72  # in, between labels and the heatmap
_COLORBAR_GAP = 0.15  # in
_COLORBAR_WIDTH = 0.15  # in
_MIN_COLORBAR_HEIGHT = 1.5  # in
_TICK = 3.5 / 72  # in, colour bar tick length
_TICK_PAD = 3 / 72  # in, between a tick and its label
_MIN_TITLE_WIDTH = 4.0  # in
_MEASURE_SIZE = 100.0  # pt, at 72 dpi: large enough that hinting barely rounds widths
_BAD = "#d9d9d9"  # cells whose value is not finite
# Below this relative luminance white text contrasts more than black (WCAG contrast ratio).
_DARK = 0.179


def figure_format(path: str | os.PathLike[str]) -> str:
    """The output format named by the file suffix: one of FORMATS."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UsageError(
            f"cannot tell the figure format of {os.fspath(path)!r}: "
            f"use a file name ending in {', '.join('.' + fmt for fmt in FORMATS)}"
        )
    return suffix


def render_figure(
    alignment: Alignment,
    path: str | os.PathLike[str],
    *,
    values: bool = False,
    scores: bool = False,
    cmap: str | None = None,
    dpi: float = 150,
    title: str | None = None,
    font: str | None = None,
) -> Path:
    """Draw one alignment as a heatmap to ``path`` (.png, .svg or .pdf) and return the path.

    ``values`` writes each cell's number in it; ``scores`` shows the raw pre-softmax
    energies instead of the weights; ``cmap`` overrides the colormap (default Blues for
    weights, RdBu_r for scores); ``font`` is a font family or font file for the labels,
    with DejaVu Sans and the shipped CJK font as fallbacks. To draw many alignments with
    the same options, use one FigureRenderer instead.
    """
    with FigureRenderer(
        values=values, scores=scores, cmap=cmap, dpi=dpi, title=title, font=font
    ) as renderer:
        return renderer.render(alignment, path)


@dataclass(frozen=True)
class _Layout:
    """Where everything goes. Lengths in inches from the figure's bottom left corner."""

    width: float
    height: float
    dpi: float  # the requested dpi, or less where the image would pass MAX_PIXELS
    cell: float
    font_size: float  # pt, token labels
    value_font_size: float  # pt
    rotate_source: bool
    heatmap: tuple[float, float, float, float]  # left, bottom, width, height
    colorbar: tuple[float, float, float, float]
    ticks: tuple[tuple[float, str], ...]  # (value, label) on the colour bar
    title_lines: tuple[str, ...]


class FigureRenderer:
    """Draws alignments to files, reusing one figure, its fonts and label bitmaps.

    Options are those of :func:`render_figure`. One renderer serves one thread; call
    :meth:`close` (or use it as a context manager) to release the figure.
    """

    def __init__(
        self,
        *,
        values: bool = False,
        scores: bool = False,
        cmap: str | None = None,
        dpi: float = 150,
        title: str | None = None,
        font: str | None = None,
    ) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection, QuadMesh
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
        from matplotlib.transforms import Affine2D

        if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 0 < dpi < 10_000:
            raise UsageError(f"dpi must be a number between 1 and 9999, not {dpi!r}")
        self.values = values
        self.scores = scores
        self.dpi = float(dpi)
        self.title = " ".join((title or "").split())
        self._cmap = _colormap(cmap or (SCORES_CMAP if scores else WEIGHTS_CMAP))
        self._norm = Normalize(-1.0, 1.0) if scores else Normalize(0.0, 1.0)
        self._text = _TextLayer(font_families(font))

        self._figure: Any = Figure(facecolor="white")
        FigureCanvasAgg(self._figure)
        inches = self._figure.dpi_scale_trans
        # heatmap cell units -> inches: x right, rows downwards from the top edge
        self._cells = Affine2D()
        self._mesh: Any = None
        self._argmax = LineCollection([], transform=self._cells + inches, zorder=3)
        self._argmax.set_capstyle("projecting")
        # colour bar: a fixed 1 x 256 gradient in a unit square, scaled into place
        self._colorbar_box = Affine2D()
        levels = np.linspace(0.0, 1.0, 257)
        gradient = np.zeros((257, 2, 2))  # [257, 2, (x, y)]
        gradient[:, 1, 0] = 1.0
        gradient[:, :, 1] = levels[:, None]
        self._gradient = QuadMesh(gradient, transform=self._colorbar_box + inches)
        self._gradient.set_facecolor(self._cmap((levels[:-1] + levels[1:]) / 2))
        self._colorbar_lines = LineCollection(
            [], transform=inches, colors="black", linewidths=0.8, zorder=3
        )
        for artist in (self._argmax, self._gradient, self._colorbar_lines, self._text.artist):
            self._figure.add_artist(artist)

    def __enter__(self) -> FigureRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the figure; the renderer cannot draw afterwards."""
        if self._figure is not None:
            self._figure.clear()
            self._figure = None
            self._mesh = None

    def render(self, alignment: Alignment, path: str | os.PathLike[str]) -> Path:
        """Draw ``alignment`` to ``path`` (format from the suffix) and return the path.

        The file is written under a temporary name in the same folder and renamed into
        place, so ``path`` never holds a half-written figure.
        """
        if self._figure is None:
            raise AttnvizError("this figure renderer is closed")
        path = Path(path)
        fmt = figure_format(path)
        n_target, n_source = alignment.shape
        if n_target == 0 or n_source == 0:
            raise InputError(
                f"cannot draw an empty alignment ({n_target} target × {n_source} source tokens)"
            )
        src_labels = [_label(token) for token in alignment.src_tokens]
        tgt_labels = [_label(token) for token in alignment.tgt_tokens]
        matrix = np.ma.masked_invalid(alignment.scores if self.scores else alignment.weights)
        if self.scores:
            magnitudes = np.abs(matrix.compressed())
            limit = float(magnitudes.max()) if magnitudes.size else 0.0
            self._norm.vmin, self._norm.vmax = -(limit or 1.0), limit or 1.0
        cell_text = self._cell_text(matrix) if self.values else None
        layout = self._plan(src_labels, tgt_labels, cell_text)
        self._draw(layout, matrix, alignment.weights, src_labels, tgt_labels, cell_text, fmt)
        _write_atomically(path, lambda file: self._save(file, fmt, layout.dpi))
        return path

    def _save(self, file: IO[bytes], fmt: str, dpi: float) -> None:
        """Save with no timestamps and fixed SVG ids, so equal input gives equal bytes."""
        import matplotlib

        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
        with matplotlib.rc_context({"svg.hashsalt": "attnviz"}):
            self._figure.savefig(file, format=fmt, dpi=dpi, metadata=metadata)

    # -- layout -----------------------------------------------------------------------------

    def _plan(
        self, src_labels: list[str], tgt_labels: list[str], cell_text: np.ndarray | None
    ) -> _Layout:
        """Shrink the label font from FONT_SIZE towards MIN_FONT_SIZE until the image fits."""
        em = self._text.em_width
        src_em = max(em(label) for label in src_labels)
        tgt_em = max(em(label) for label in tgt_labels)
        value_em = 0.0 if cell_text is None else max(em(text) for text in np.unique(cell_text))
        shape = (len(tgt_labels), len(src_labels))
        font_size = FONT_SIZE
        while True:
            layout = self._layout(shape, font_size, src_em, tgt_em, value_em, self.dpi)
            longest = max(layout.width, layout.height)
            if longest * self.dpi <= MAX_PIXELS or font_size <= MIN_FONT_SIZE:
                break
            font_size = max(MIN_FONT_SIZE, font_size * 0.85)
        while longest * layout.dpi > MAX_PIXELS and layout.dpi > 1:
            # Even the smallest labels make too large an image: lower the dpi instead.
            dpi = max(1, min(layout.dpi - 1, math.floor(MAX_PIXELS / longest)))
            layout = self._layout(shape, font_size, src_em, tgt_em, value_em, dpi)
            longest = max(layout.width, layout.height)
        return layout

    def _layout(
        self,
        shape: tuple[int, int],
        font_size: float,
        src_em: float,
        tgt_em: float,
        value_em: float,
        dpi: float,
    ) -> _Layout:
        n_target, n_source = shape
        line = _LINE * font_size / 72
        cell_min = line + 2 / 72
        value_font_size = VALUE_FONT_RATIO * font_size
        if self.values:
            cell_min = max(cell_min, (value_em * value_font_size + 4) / 72)
        cell = min(max(TARGET_SIDE / max(shape), cell_min), max(MAX_CELL, cell_min))
        slack = 4 / dpi  # hinting at small pixel sizes can widen text a little
        src_width = src_em * font_size / 72 + slack
        rotate_source = src_width > cell - 2 / 72
        labels_height = src_width if rotate_source else line
        heatmap_width, heatmap_height = n_source * cell, n_target * cell
        colorbar_height = max(heatmap_height, _MIN_COLORBAR_HEIGHT)
        ticks = self._ticks(colorbar_height)
        tick_em = max(self._text.em_width(label) for _, label in ticks)
        colorbar_labels = (
            _TICK
            + _TICK_PAD
            + (tick_em * COLORBAR_FONT_SIZE + 4) / 72
            + _LINE * COLORBAR_FONT_SIZE / 72
        )
        left = _PAD + tgt_em * font_size / 72 + slack + _LABEL_GAP
        width = left + heatmap_width + _COLORBAR_GAP + _COLORBAR_WIDTH + colorbar_labels + _PAD
        title_lines: tuple[str, ...] = ()
        title_height = 0.0
        if self.title:
            wrap_em = max(width - 2 * _PAD, _MIN_TITLE_WIDTH) * 72 / TITLE_FONT_SIZE
            title_lines = tuple(self._text.wrap(self.title, wrap_em))
            title_em = max(self._text.em_width(text) for text in title_lines)
            width = max(width, title_em * TITLE_FONT_SIZE / 72 + 2 * _PAD)
            title_height = (len(title_lines) * 1.2 * _LINE * TITLE_FONT_SIZE + 6) / 72
        top = _PAD + title_height + labels_height + _LABEL_GAP
        height = top + max(heatmap_height, colorbar_height) + _PAD
        heatmap_top = height - top
        return _Layout(
            width=width,
            height=height,
            dpi=dpi,
            cell=cell,
            font_size=font_size,
            value_font_size=value_font_size,
            rotate_source=rotate_source,
            heatmap=(left, heatmap_top - heatmap_height, heatmap_width, heatmap_height),
            colorbar=(
                left + heatmap_width + _COLORBAR_GAP,
                heatmap_top - colorbar_height,
                _COLORBAR_WIDTH,
                colorbar_height,
            ),
            ticks=ticks,
            title_lines=title_lines,
        )

    def _ticks(self, colorbar_height: float) -> tuple[tuple[float, str], ...]:
        """Round values for the colour bar, about one per 0.4 in, with their labels."""
        from matplotlib.ticker import MaxNLocator

        vmin, vmax = self._norm.vmin, self._norm.vmax
        bins = max(2, min(8 if self.scores else 5, int(colorbar_height / 0.4)))
        steps = [1, 2, 2.5, 5, 10] if self.scores else [1, 2, 5, 10]
        locator = MaxNLocator(nbins=bins, steps=steps)
        span = vmax - vmin
        values = [
            float(v)
            for v in locator.tick_values(vmin, vmax)
            if vmin - 1e-9 * span <= v <= vmax + 1e-9 * span
        ]
        decimals = next(
            (d for d in range(6) if all(abs(round(v, d) - v) <= 1e-9 * span for v in values)), 6
        )
        return tuple((v, _number(v, decimals)) for v in values)

    # -- drawing ----------------------------------------------------------------------------

    def _cell_text(self, matrix: np.ma.MaskedArray) -> np.ndarray:
        """[T, S] strings for the cells: two decimals for weights, one for scores."""
        decimals = 1 if self.scores else 2
        rounded = np.round(matrix.filled(0.0), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        text = np.char.mod(f"%.{decimals}f", rounded)
        text = np.char.replace(text, "-", "\u2212")  # a typographic minus, as on the colour bar
        text[np.ma.getmaskarray(matrix)] = ""
        return text

    def _draw(
        self,
        layout: _Layout,
        matrix: np.ma.MaskedArray,
        weights: np.ndarray,
        src_labels: list[str],
        tgt_labels: list[str],
        cell_text: np.ndarray | None,
        fmt: str,
    ) -> None:
        """Fit the reused figure to ``layout`` and fill it. ``matrix``, ``weights``: [T, S]."""
        from matplotlib.collections import QuadMesh

        n_target, n_source = matrix.shape
        figure = self._figure
        figure.set_size_inches(layout.width, layout.height, forward=False)
        figure.set_dpi(layout.dpi)
        left, bottom, _, height = layout.heatmap
        top = bottom + height
        cell = layout.cell
        self._cells.clear().scale(cell, -cell).translate(left, top)

        colors = self._cmap(self._norm(matrix))  # [T, S, 4], masked cells get _BAD
        dark = _luminance(colors) < _DARK  # [T, S]
        corners = np.zeros((n_target + 1, n_source + 1, 2))  # [T+1, S+1, (x, y)] in cells
        corners[..., 0] = np.arange(n_source + 1)[None, :]
        corners[..., 1] = np.arange(n_target + 1)[:, None]
        if self._mesh is not None:
            self._mesh.remove()
        self._mesh = QuadMesh(corners, transform=self._cells + figure.dpi_scale_trans)
        self._mesh.set_facecolor(colors.reshape(-1, 4))  # [T*S, 4], row-major like the mesh
        figure.add_artist(self._mesh)
        for mesh in (self._mesh, self._gradient):
            mesh.set_antialiased(False)
            # Vector viewers anti-alias each cell on its own; a hairline edge in the cell's
            # colour hides the seams that would show between neighbours.
            mesh.set_edgecolor("face")
            mesh.set_linewidth(0 if fmt == "png" else 0.25)

        # One outline per row around its largest weight; rows of zeros get none.
        rows = np.flatnonzero(np.nan_to_num(weights).max(axis=1) > 0)
        best = np.nan_to_num(weights[rows]).argmax(axis=1)
        inset = 0.07
        far = 1 - inset
        square = np.array([[inset, inset], [far, inset], [far, far], [inset, far], [inset, inset]])
        offsets = np.stack([best, rows], axis=1)[:, None, :]  # [R, 1, (x, y)]
        self._argmax.set_segments(list(offsets + square[None]))  # R × [5, 2]
        self._argmax.set_color(["white" if is_dark else "black" for is_dark in dark[rows, best]])
        self._argmax.set_linewidth(min(1.2, 0.05 * cell * 72))

        text = self._text
        text.clear()
        size = layout.font_size
        for index, label in enumerate(src_labels):
            x = left + (index + 0.5) * cell
            if layout.rotate_source:
                text.add(label, x, top + _LABEL_GAP, size, ha="center", va="bottom", rotation=90)
            else:
                text.add(label, x, top + _LABEL_GAP, size, ha="center", va="bottom")
        for index, label in enumerate(tgt_labels):
            text.add(label, left - _LABEL_GAP, top - (index + 0.5) * cell, size, ha="right")
        if cell_text is not None:
            for (row, col), string in np.ndenumerate(cell_text):
                text.add(
                    string,
                    left + (col + 0.5) * cell,
                    top - (row + 0.5) * cell,
                    layout.value_font_size,
                    ha="center",
                    color="white" if dark[row, col] else "black",
                )
        self._draw_colorbar(layout)
        for index, line in enumerate(layout.title_lines):
            y = layout.height - _PAD - index * 1.2 * _LINE * TITLE_FONT_SIZE / 72
            text.add(line, layout.width / 2, y, TITLE_FONT_SIZE, ha="center", va="top")

    def _draw_colorbar(self, layout: _Layout) -> None:
        left, bottom, width, height = layout.colorbar
        self._colorbar_box.clear().scale(width, height).translate(left, bottom)
        right = left + width
        outline = [
            [left, bottom],
            [right, bottom],
            [right, bottom + height],
            [left, bottom + height],
        ]
        segments = [np.array([*outline, outline[0]])]
        label_x = right + _TICK + _TICK_PAD
        for value, label in layout.ticks:
            y = bottom + float(self._norm(value)) * height
            segments.append(np.array([[right, y], [right + _TICK, y]]))
            self._text.add(label, label_x, y, COLORBAR_FONT_SIZE, ha="left")
        self._colorbar_lines.set_segments(segments)
        tick_em = max(self._text.em_width(label) for _, label in layout.ticks)
        self._text.add(
            "score (pre-softmax)" if self.scores else "attention weight",
            label_x + (tick_em * COLORBAR_FONT_SIZE + 4) / 72 + _LINE * COLORBAR_FONT_SIZE / 144,
            bottom + height / 2,
            COLORBAR_FONT_SIZE,
            ha="center",
            rotation=90,
        )


# -- text ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextItem:
    string: str
    x: float  # in
    y: float  # in
    size: float  # pt
    ha: str
    va: str
    rotation: int  # 0, or 90 for text that reads upwards
    color: str


class _TextLayer:
    """Single-line strings placed in figure inches, drawn by one artist (``.artist``).

    On the Agg canvas (PNG) each distinct (string, size, dpi, rotation, colour) is
    rasterised once and then copied into place: tokens repeat across an export, and
    matplotlib would otherwise lay out and render every glyph of every label anew. Other
    backends (SVG, PDF) get ordinary Text artists, so their text stays text.

    Alignment: along the text, ``left``/``center``/``right`` (``bottom``/``center``/``top``
    when rotated) refer to the inked extent; across it, to the font's line box.
    """

    _MAX_WIDTHS = 50_000  # cached string widths
    _MAX_BITMAP_BYTES = 64 * 1024 * 1024  # cached text pixels

    def __init__(self, families: list[str]) -> None:
        from matplotlib import font_manager

        self.families = families
        self.artist = _text_layer_artist_class()(self)
        self._paths = [
            font_manager.fontManager.findfont(font_manager.FontProperties(family=family))
            for family in families
        ]
        self._items: list[_TextItem] = []
        self._bitmaps: dict[tuple[Any, ...], tuple[np.ndarray, float, float]] = {}
        self._bitmap_bytes = 0
        self._line_boxes: dict[tuple[float, float], tuple[float, float]] = {}
        self._widths: dict[str, float] = {}

    # building

    def clear(self) -> None:
        self._items.clear()
        self.artist.stale = True

    def add(
        self,
        string: str,
        x: float,
        y: float,
        size: float,
        *,
        ha: str = "left",
        va: str = "center",
        rotation: int = 0,
        color: str = "black",
    ) -> None:
        if string:
            self._items.append(_TextItem(string, x, y, size, ha, va, rotation, color))

    # measuring

    def _font(self, size: float, dpi: float) -> Any:
        from matplotlib import font_manager

        font = font_manager.get_font(self._paths)
        font.clear()
        font.set_size(size, dpi)
        return font

    def em_width(self, string: str) -> float:
        """Inked width of ``string`` set in a 1 pt font, in points."""
        width = self._widths.get(string)
        if width is None:
            from matplotlib.backends.backend_agg import get_hinting_flag

            if len(self._widths) >= self._MAX_WIDTHS:
                self._widths.clear()
            font = self._font(_MEASURE_SIZE, 72)
            font.set_text(string, 0.0, flags=get_hinting_flag())
            width = self._widths[string] = font.get_width_height()[0] / 64 / _MEASURE_SIZE
        return width

    def wrap(self, string: str, max_em: float) -> list[str]:
        """Break ``string`` into lines at most ``max_em`` em wide, at spaces where possible."""
        lines: list[str] = []
        current = ""
        for word in string.split():
            candidate = f"{current} {word}" if current else word
            if self.em_width(candidate) <= max_em:
                current = candidate
                continue
            if current:
                lines.append(current)
            current = ""
            for char in word:  # words wider than a line (or unspaced scripts) break anywhere
                if current and self.em_width(current + char) > max_em:
                    lines.append(current)
                    current = ""
                current += char
        if current:
            lines.append(current)
        return lines

    def _line_box(self, size: float, dpi: float) -> tuple[float, float]:
        """(ascent, descent) in pixels of the line box, taken from "lp" as matplotlib does."""
        key = (size, dpi)
        box = self._line_boxes.get(key)
        if box is None:
            from matplotlib.backends.backend_agg import get_hinting_flag

            font = self._font(size, dpi)
            font.set_text("lp", 0.0, flags=get_hinting_flag())
            height = font.get_width_height()[1] / 64
            descent = font.get_descent() / 64
            box = self._line_boxes[key] = (height - descent, descent)
        return box

    def _bitmap(self, item: _TextItem, dpi: float) -> tuple[np.ndarray, float, float]:
        """RGBA pixels of ``item``, the inked length along the text, and where the baseline
        sits: rows below the top edge, or for rotated text columns right of the left edge."""
        key = (item.string, item.size, dpi, item.rotation, item.color)
        cached = self._bitmaps.get(key)
        if cached is None:
            from matplotlib.backends.backend_agg import get_hinting_flag
            from matplotlib.colors import to_rgb

            if self._bitmap_bytes >= self._MAX_BITMAP_BYTES:
                self._bitmaps.clear()
                self._bitmap_bytes = 0
            font = self._font(item.size, dpi)
            font.set_text(item.string, 0.0, flags=get_hinting_flag())
            font.draw_glyphs_to_bitmap(antialiased=True)
            coverage = np.asarray(font.get_image())  # [H, W] 0-255, text upright
            width, height = (value / 64 for value in font.get_width_height())
            baseline = 1 + height - font.get_descent() / 64  # the bitmap has 1 px above
            if item.rotation:
                coverage = np.rot90(coverage)  # reads upwards; ascenders to the left
            rgba = np.empty((*coverage.shape, 4), np.uint8)
            rgba[..., :3] = np.round(np.array(to_rgb(item.color)) * 255).astype(np.uint8)
            rgba[..., 3] = coverage
            rgba = np.ascontiguousarray(rgba[::-1])  # draw_image takes the bottom row first
            cached = self._bitmaps[key] = (rgba, width, baseline)
            self._bitmap_bytes += rgba.nbytes
        return cached

    # drawing

    def draw(self, renderer: Any) -> None:
        from matplotlib.backends.backend_agg import RendererAgg

        if isinstance(renderer, RendererAgg):
            self._blit(renderer)
        else:
            for text in self._text_artists():
                text.draw(renderer)

    def _blit(self, renderer: Any) -> None:
        dpi = self.artist.figure.dpi
        gc = renderer.new_gc()
        try:
            for item in self._items:
                rgba, length, baseline = self._bitmap(item, dpi)
                ascent, descent = self._line_box(item.size, dpi)
                x, y = item.x * dpi, item.y * dpi  # pixels from the bottom left
                if item.rotation:
                    # across the text (x): the line box; along it (y): the ink
                    base_x = x - _shift(item.ha, ascent + descent, "left") + ascent
                    left = base_x - baseline
                    bottom = y - _shift(item.va, length, "bottom")
                else:
                    base_y = y - _shift(item.va, ascent + descent, "bottom") + descent
                    bottom = base_y + baseline - rgba.shape[0]
                    left = x - _shift(item.ha, length, "left")
                renderer.draw_image(gc, round(left), round(bottom), rgba)
        finally:
            gc.restore()

    def _text_artists(self) -> Iterator[Any]:
        from matplotlib.font_manager import FontProperties
        from matplotlib.text import Text

        figure = self.artist.figure
        fonts: dict[float, FontProperties] = {}
        for item in self._items:
            font = fonts.get(item.size)
            if font is None:
                font = fonts[item.size] = FontProperties(family=self.families, size=item.size)
            text = Text(
                item.x,
                item.y,
                item.string,
                color=item.color,
                fontproperties=font,
                horizontalalignment=item.ha,
                verticalalignment=item.va,
                rotation=item.rotation,
                parse_math=False,  # tokens such as "$5" are not TeX
                usetex=False,
                transform=figure.dpi_scale_trans,
                clip_on=False,
            )
            text.set_figure(figure)
            yield text


@functools.cache
def _text_layer_artist_class() -> type:
    """The Artist that draws a _TextLayer; made on first use so that importing this module
    does not import matplotlib."""
    from matplotlib.artist import Artist

    class TextLayerArtist(Artist):
        def __init__(self, layer: _TextLayer) -> None:
            super().__init__()
            self.layer = layer
            self.set_zorder(4)  # above the cells and their outlines

        def draw(self, renderer: Any) -> None:
            if self.get_visible():
                self.layer.draw(renderer)
            self.stale = False

    return TextLayerArtist


def _shift(align: str, extent: float, start: str) -> float:
    """How far the ``start`` edge of a box ``extent`` long lies before the anchor."""
    if align == start:
        return 0.0
    if align == "center":
        return extent / 2
    return extent


def _label(token: str) -> str:
    """A token as drawn: control characters made visible, very long ones shortened."""
    label = token.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "…"
    return label


def _number(value: float, decimals: int) -> str:
    return f"{value + 0.0:.{decimals}f}".replace("-", "\u2212")


def _colormap(name: str | Colormap) -> Colormap:
    import matplotlib

    if not isinstance(name, str):
        return name.with_extremes(bad=_BAD)
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise UsageError(
            f"unknown colormap {name!r}; use a matplotlib colormap name such as "
            f"{WEIGHTS_CMAP}, viridis, magma or {SCORES_CMAP}"
        ) from None
    return cmap.with_extremes(bad=_BAD)


def _luminance(rgba: np.ndarray) -> np.ndarray:
    """Relative luminance of [..., 4] RGBA colours with channels in 0-1."""
    rgb = rgba[..., :3]
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def _write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``."""
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder")
    temporary = folder / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        # os.open applies the umask, so the figure gets the usual file permissions
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise AttnvizError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
