"""Single-line text placed in figure inches and drawn by one matplotlib artist.

On the Agg canvas (PNG) each distinct label is rasterised once and copied into place; other
backends (SVG, PDF) get ordinary Text artists, so their text stays text. matplotlib is imported
inside the functions that need it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

_MEASURE_SIZE = 100.0  # pt, at 72 dpi: large enough that hinting barely rounds widths


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


class TextLayer:
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
    """The Artist that draws a TextLayer; made on first use so that importing this module
    does not import matplotlib."""
    from matplotlib.artist import Artist

    class TextLayerArtist(Artist):
        def __init__(self, layer: TextLayer) -> None:
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
