"""Where everything in a figure goes, computed from measured label widths.

Not ``bbox_inches="tight"``: cells and fonts shrink as token counts grow, source labels turn
vertical when they would collide, and no image side passes ``MAX_PIXELS``. Lengths are in
inches from the figure's bottom left corner unless they say otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attnviz.render.textlayer import TextLayer

MAX_PIXELS = 16_000  # longest image side, in pixels at the dpi used

# Sizes in points (pt) or inches (in).
FONT_SIZE = 10.0  # pt, token labels while there is room
MIN_FONT_SIZE = 5.0  # pt, the floor labels shrink to on large inputs
VALUE_FONT_RATIO = 0.8  # cell values relative to the label size
TITLE_FONT_SIZE = 11.0  # pt
COLORBAR_FONT_SIZE = 9.0  # pt
TARGET_SIDE = 6.0  # in, heatmap side that cells grow towards on short inputs
MAX_CELL = 0.6  # in

LINE = 1.05  # height of one line of text, in multiples of its font size
PAD = 0.12  # in, figure border
LABEL_GAP = 4 / 72  # in, between labels and the heatmap
TITLE_LINE = 1.2 * LINE * TITLE_FONT_SIZE / 72  # in, from one title line to the next
TICK = 3.5 / 72  # in, colour bar tick length
TICK_PAD = 3 / 72  # in, between a tick and its label
_COLORBAR_GAP = 0.15  # in
_COLORBAR_WIDTH = 0.15  # in
_MIN_COLORBAR_HEIGHT = 1.5  # in
_MIN_TITLE_WIDTH = 4.0  # in
_TICK_STEPS = [1, 2, 2.5, 5, 10]  # round tick spacings, times a power of ten
_MAX_TICKS = 8


@dataclass(frozen=True)
class Content:
    """What a figure must make room for. Widths in em (multiples of the font size)."""

    shape: tuple[int, int]  # (T, S)
    src_em: float  # widest source label
    tgt_em: float  # widest target label
    value_em: float  # widest cell number; 0 without numbers
    scale: tuple[float, float]  # the colour bar's ends
    title: str


@dataclass(frozen=True)
class Layout:
    """Where everything goes."""

    width: float
    height: float
    dpi: float  # the requested dpi, or less where the image would pass MAX_PIXELS
    cell: float
    font_size: float  # pt, token labels
    value_font_size: float  # pt
    rotate_source: bool
    heatmap: tuple[float, float, float, float]  # left, bottom, width, height
    colorbar: tuple[float, float, float, float]
    scale: tuple[float, float]  # the colour bar's ends
    ticks: tuple[tuple[float, str], ...]  # (value, label) on the colour bar
    tick_em: float  # widest tick label
    title_lines: tuple[str, ...]


def plan(content: Content, text: TextLayer, dpi: float) -> Layout:
    """Shrink the label font from FONT_SIZE towards MIN_FONT_SIZE until the image fits."""
    font_size = FONT_SIZE
    while True:
        layout = _layout(content, text, font_size, dpi)
        longest = max(layout.width, layout.height)
        if longest * dpi <= MAX_PIXELS or font_size <= MIN_FONT_SIZE:
            break
        font_size = max(MIN_FONT_SIZE, font_size * 0.85)
    while longest * layout.dpi > MAX_PIXELS and layout.dpi > 1:
        # Even the smallest labels make too large an image: lower the dpi instead.
        lower = max(1, min(layout.dpi - 1, math.floor(MAX_PIXELS / longest)))
        layout = _layout(content, text, font_size, lower)
        longest = max(layout.width, layout.height)
    return layout


def _layout(content: Content, text: TextLayer, font_size: float, dpi: float) -> Layout:
    n_target, n_source = content.shape
    line = LINE * font_size / 72
    cell_min = line + 2 / 72
    value_font_size = VALUE_FONT_RATIO * font_size
    if content.value_em:
        cell_min = max(cell_min, (content.value_em * value_font_size + 4) / 72)
    cell = min(max(TARGET_SIDE / max(content.shape), cell_min), max(MAX_CELL, cell_min))
    slack = 4 / dpi  # hinting at small pixel sizes can widen text a little
    src_width = content.src_em * font_size / 72 + slack
    rotate_source = src_width > cell - 2 / 72
    labels_height = src_width if rotate_source else line
    heatmap_width, heatmap_height = n_source * cell, n_target * cell
    colorbar_height = max(heatmap_height, _MIN_COLORBAR_HEIGHT)
    tick_marks = ticks(content.scale, colorbar_height)
    tick_em = max(text.em_width(label) for _, label in tick_marks)
    colorbar_labels = colorbar_label_offset(tick_em) + LINE * COLORBAR_FONT_SIZE / 72
    left = PAD + content.tgt_em * font_size / 72 + slack + LABEL_GAP
    width = left + heatmap_width + _COLORBAR_GAP + _COLORBAR_WIDTH + colorbar_labels + PAD
    title_lines: tuple[str, ...] = ()
    title_height = 0.0
    if content.title:
        wrap_em = max(width - 2 * PAD, _MIN_TITLE_WIDTH) * 72 / TITLE_FONT_SIZE
        title_lines = tuple(text.wrap(content.title, wrap_em))
        title_em = max(text.em_width(line) for line in title_lines)
        width = max(width, title_em * TITLE_FONT_SIZE / 72 + 2 * PAD)
        title_height = len(title_lines) * TITLE_LINE + 6 / 72
    top = PAD + title_height + labels_height + LABEL_GAP
    height = top + max(heatmap_height, colorbar_height) + PAD
    heatmap_top = height - top
    colorbar_left = left + heatmap_width + _COLORBAR_GAP
    return Layout(
        width=width,
        height=height,
        dpi=dpi,
        cell=cell,
        font_size=font_size,
        value_font_size=value_font_size,
        rotate_source=rotate_source,
        heatmap=(left, heatmap_top - heatmap_height, heatmap_width, heatmap_height),
        colorbar=(colorbar_left, heatmap_top - colorbar_height, _COLORBAR_WIDTH, colorbar_height),
        scale=content.scale,
        ticks=tick_marks,
        tick_em=tick_em,
        title_lines=title_lines,
    )


def colorbar_label_offset(tick_em: float) -> float:
    """From the colour bar's right edge to the end of its tick labels, in inches."""
    return TICK + TICK_PAD + (tick_em * COLORBAR_FONT_SIZE + 4) / 72


def ticks(scale: tuple[float, float], colorbar_height: float) -> tuple[tuple[float, str], ...]:
    """Round values for the colour bar, about one per 0.4 in, with their labels."""
    from matplotlib.ticker import MaxNLocator

    low, high = scale
    bins = max(2, min(_MAX_TICKS, int(colorbar_height / 0.4)))
    locator = MaxNLocator(nbins=bins, steps=_TICK_STEPS)
    span = high - low
    values = [
        float(v)
        for v in locator.tick_values(low, high)
        if low - 1e-9 * span <= v <= high + 1e-9 * span
    ]
    decimals = next(
        (d for d in range(6) if all(abs(round(v, d) - v) <= 1e-9 * span for v in values)), 6
    )
    return tuple((v, number(v, decimals)) for v in values)


def number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals and a typographic minus; -0 shows as 0."""
    return f"{value + 0.0:.{decimals}f}".replace("-", "\u2212")
