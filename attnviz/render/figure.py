"""Attention heatmaps as PNG, SVG or PDF files, drawn with matplotlib's object API.

Source tokens run along the top (columns), target tokens down the left (rows), with a colour
bar on the right. What is drawn, on which scale and colormap, comes from
:func:`attnviz.render.values.view`: weights on a fixed 0-1 scale (Blues), raw scores on limits
symmetric around 0 (RdBu_r). Values that are not finite are grey. The largest weight of each
row gets a thin outline.

The layout (:mod:`attnviz.render.layout`) is computed from measured label widths. Every artist
is placed in figure inches, without Axes, and one figure serves many calls, which keeps export
fast; labels are drawn by :mod:`attnviz.render.textlayer`. Files are written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from attnviz.alignment import Alignment
from attnviz.errors import AttnvizError, InputError, UsageError
from attnviz.fonts import font_families
from attnviz.io import atomic_write
from attnviz.options import RenderOptions
from attnviz.render.layout import (
    COLORBAR_FONT_SIZE,
    LABEL_GAP,
    LINE,
    PAD,
    TICK,
    TICK_PAD,
    TITLE_FONT_SIZE,
    TITLE_LINE,
    Content,
    Layout,
    colorbar_label_offset,
    plan,
)
from attnviz.render.textlayer import TextLayer
from attnviz.render.values import (
    SCORES_CMAP,
    WEIGHTS_CMAP,
    View,
    colormap_name,
    render_options,
    view,
)
from attnviz.text import visible

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

FORMATS = ("png", "svg", "pdf")
MAX_LABEL_CHARS = 40
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
    options: RenderOptions | None = None,
    **keywords: Any,
) -> Path:
    """Draw one alignment as a heatmap to ``path`` (.png, .svg or .pdf) and return the path.

    Pass ``options`` (RenderOptions) or keywords: ``values=True`` writes each cell's number
    in it; ``scores=True`` shows the raw pre-softmax energies instead of the weights; ``cmap``
    overrides the colormap (default Blues for weights, RdBu_r for scores); ``dpi``; ``title``;
    ``font`` is a font family or font file for the labels, with DejaVu Sans and the shipped
    CJK font as fallbacks. To draw many alignments with the same options, use one
    FigureRenderer instead.
    """
    with FigureRenderer(options, **keywords) as renderer:
        return renderer.render(alignment, path)


class FigureRenderer:
    """Draws alignments to files, reusing one figure, its fonts and label bitmaps.

    Takes RenderOptions, or the keywords of :func:`render_figure`. One renderer serves one
    thread; call :meth:`close` (or use it as a context manager) to release the figure.
    """

    def __init__(self, options: RenderOptions | None = None, **keywords: Any) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection, QuadMesh
        from matplotlib.figure import Figure
        from matplotlib.transforms import Affine2D

        self.options = render_options(options, **keywords)
        self.title = visible(" ".join((self.options.title or "").split()))
        self._cmap = _colormap(colormap_name(self.options))
        self._text = TextLayer(font_families(self.options.font))

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
        if not isinstance(alignment, Alignment):
            raise UsageError(f"render needs an Alignment, not {type(alignment).__name__}")
        if not isinstance(path, str | os.PathLike):
            raise UsageError(f"the figure path must be text or a path, not {type(path).__name__}")
        path = Path(path)
        fmt = figure_format(path)
        n_target, n_source = alignment.shape
        if n_target == 0 or n_source == 0:
            raise InputError(
                f"cannot draw an empty alignment ({n_target} target × {n_source} source tokens)"
            )
        values = view(alignment, self.options)
        src_labels = [_label(token) for token in alignment.src_tokens]
        tgt_labels = [_label(token) for token in alignment.tgt_tokens]
        cell_text = _cell_text(values) if self.options.numbers else None
        layout = self.plan(values, src_labels, tgt_labels, cell_text)
        self._draw(layout, values, src_labels, tgt_labels, cell_text, fmt)
        return atomic_write(path, lambda file: self._save(file, fmt, layout.dpi))

    def plan(
        self,
        values: View,
        src_labels: list[str],
        tgt_labels: list[str],
        cell_text: np.ndarray | None = None,
    ) -> Layout:
        """The layout of a figure of ``values`` with these labels and cell numbers."""
        em = self._text.em_width
        content = Content(
            shape=values.matrix.shape,
            src_em=max(em(label) for label in src_labels),
            tgt_em=max(em(label) for label in tgt_labels),
            value_em=0.0 if cell_text is None else max(em(text) for text in np.unique(cell_text)),
            scale=(values.low, values.high),
            title=self.title,
        )
        return plan(content, self._text, float(self.options.dpi))

    def _save(self, file: IO[bytes], fmt: str, dpi: float) -> None:
        """Save with no timestamps and fixed SVG ids, so equal input gives equal bytes."""
        import matplotlib

        metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
        with matplotlib.rc_context({"svg.hashsalt": "attnviz"}):
            self._figure.savefig(file, format=fmt, dpi=dpi, metadata=metadata)

    # -- drawing ----------------------------------------------------------------------------

    def _draw(
        self,
        layout: Layout,
        values: View,
        src_labels: list[str],
        tgt_labels: list[str],
        cell_text: np.ndarray | None,
        fmt: str,
    ) -> None:
        """Fit the reused figure to ``layout`` and fill it."""
        figure = self._figure
        figure.set_size_inches(layout.width, layout.height, forward=False)
        figure.set_dpi(layout.dpi)
        left, bottom, _, height = layout.heatmap
        self._cells.clear().scale(layout.cell, -layout.cell).translate(left, bottom + height)
        dark = self._draw_cells(values, fmt)
        self._draw_outlines(values.maxima, dark, layout.cell)
        self._text.clear()
        self._draw_labels(layout, src_labels, tgt_labels, cell_text, dark)
        self._draw_colorbar(layout, values.label)
        for index, line in enumerate(layout.title_lines):
            y = layout.height - PAD - index * TITLE_LINE
            self._text.add(line, layout.width / 2, y, TITLE_FONT_SIZE, ha="center", va="top")

    def _draw_cells(self, values: View, fmt: str) -> np.ndarray:
        """Colour the cells; returns [T, S] True where a cell is dark (white text on it)."""
        from matplotlib.collections import QuadMesh

        n_target, n_source = values.matrix.shape
        position = np.ma.masked_invalid(values.position())  # [T, S], not finite: masked
        colors = self._cmap(position)  # [T, S, 4], masked cells get _BAD
        corners = np.zeros((n_target + 1, n_source + 1, 2))  # [T+1, S+1, (x, y)] in cells
        corners[..., 0] = np.arange(n_source + 1)[None, :]
        corners[..., 1] = np.arange(n_target + 1)[:, None]
        if self._mesh is not None:
            self._mesh.remove()
        self._mesh = QuadMesh(corners, transform=self._cells + self._figure.dpi_scale_trans)
        self._mesh.set_facecolor(colors.reshape(-1, 4))  # [T*S, 4], row-major like the mesh
        self._figure.add_artist(self._mesh)
        for mesh in (self._mesh, self._gradient):
            mesh.set_antialiased(False)
            # Vector viewers anti-alias each cell on its own; a hairline edge in the cell's
            # colour hides the seams that would show between neighbours.
            mesh.set_edgecolor("face")
            mesh.set_linewidth(0 if fmt == "png" else 0.25)
        return _luminance(colors) < _DARK

    def _draw_outlines(self, maxima: np.ndarray, dark: np.ndarray, cell: float) -> None:
        """One outline per row around its largest weight; rows without one get none."""
        rows = np.flatnonzero(maxima >= 0)
        best = maxima[rows]
        inset = 0.07
        far = 1 - inset
        square = np.array([[inset, inset], [far, inset], [far, far], [inset, far], [inset, inset]])
        offsets = np.stack([best, rows], axis=1)[:, None, :]  # [R, 1, (x, y)]
        self._argmax.set_segments(list(offsets + square[None]))  # R × [5, 2]
        self._argmax.set_color(["white" if is_dark else "black" for is_dark in dark[rows, best]])
        self._argmax.set_linewidth(min(1.2, 0.05 * cell * 72))

    def _draw_labels(
        self,
        layout: Layout,
        src_labels: list[str],
        tgt_labels: list[str],
        cell_text: np.ndarray | None,
        dark: np.ndarray,
    ) -> None:
        text = self._text
        left, bottom, _, height = layout.heatmap
        top = bottom + height
        cell, size = layout.cell, layout.font_size
        rotation = 90 if layout.rotate_source else 0
        for index, label in enumerate(src_labels):
            x = left + (index + 0.5) * cell
            text.add(label, x, top + LABEL_GAP, size, ha="center", va="bottom", rotation=rotation)
        for index, label in enumerate(tgt_labels):
            text.add(label, left - LABEL_GAP, top - (index + 0.5) * cell, size, ha="right")
        if cell_text is None:
            return
        for (row, col), string in np.ndenumerate(cell_text):
            text.add(
                string,
                left + (col + 0.5) * cell,
                top - (row + 0.5) * cell,
                layout.value_font_size,
                ha="center",
                color="white" if dark[row, col] else "black",
            )

    def _draw_colorbar(self, layout: Layout, caption: str) -> None:
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
        label_x = right + TICK + TICK_PAD
        low, high = layout.scale
        for value, label in layout.ticks:
            y = bottom + (value - low) / (high - low) * height
            segments.append(np.array([[right, y], [right + TICK, y]]))
            self._text.add(label, label_x, y, COLORBAR_FONT_SIZE, ha="left")
        self._colorbar_lines.set_segments(segments)
        self._text.add(
            caption,
            right + colorbar_label_offset(layout.tick_em) + LINE * COLORBAR_FONT_SIZE / 144,
            bottom + height / 2,
            COLORBAR_FONT_SIZE,
            ha="center",
            rotation=90,
        )


def _cell_text(values: View) -> np.ndarray:
    """[T, S] strings for the cells: two decimals for weights in [0, 1], one otherwise; ``nan``,
    ``inf`` and ``−inf`` where the value is not finite."""
    matrix = values.matrix
    decimals = 2 if values.bounded else 1
    finite = np.isfinite(matrix)
    rounded = np.round(np.where(finite, matrix, 0.0), decimals) + 0.0  # + 0.0: -0.0 -> 0.0
    text = np.char.mod(f"%.{decimals}f", rounded).astype(object)
    text = np.where(np.isnan(matrix), "nan", text)
    text = np.where(np.isposinf(matrix), "inf", text)
    text = np.where(np.isneginf(matrix), "-inf", text)
    return np.char.replace(text.astype(str), "-", "\u2212")  # a typographic minus


def _label(token: str) -> str:
    """A token as drawn: control characters made visible, very long ones shortened."""
    label = visible(token) or "∅"
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "…"
    return label


def _colormap(name: str) -> Colormap:
    import matplotlib

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
