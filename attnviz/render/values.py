"""What a renderer draws from an Alignment: the one place where weights or scores are chosen.

Every renderer asks :func:`view` for the matrix to draw, the colour scale's range, the default
colormap, the scale's caption and each row's maximum, instead of testing ``options.values``
itself. Weights are drawn on a fixed 0-1 scale, so the figures of one export compare at a
glance; raw scores on limits symmetric around 0. Values that are not finite (NaN, ±inf) keep
their place in the matrix and get no position on the scale: renderers show them apart (grey).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attnviz.alignment import Alignment
from attnviz.errors import UsageError
from attnviz.options import RenderOptions

WEIGHTS_CMAP = "Blues"
SCORES_CMAP = "RdBu_r"
#: Keywords of the keyword API (``render_figure(..., values=True)``) and the CLI flags.
KEYWORDS = ("values", "scores", "cmap", "dpi", "title", "font", "show_table")


@dataclass(frozen=True)
class View:
    """The values of one alignment as every renderer draws them.

    ``matrix``: [T, S] the numbers shown, weights or raw scores (may hold NaN or ±inf);
    ``low``, ``high``: the ends of the colour scale (finite, ``low < high``); ``cmap``: the
    colormap name, the options' or the default for the kind of values; ``label``: the scale's
    caption; ``bounded``: the values are weights and every finite one lies in [0, 1], so a
    number needs no sign or integer part; ``maxima``: [T] column of each row's largest weight,
    -1 where the row has no positive finite weight.
    """

    matrix: np.ndarray
    low: float
    high: float
    cmap: str
    label: str
    bounded: bool
    maxima: np.ndarray

    def position(self) -> np.ndarray:
        """[T, S] where each value sits on the colour scale, 0-1; NaN where it is not finite."""
        matrix = self.matrix.astype(np.float64)
        finite = np.isfinite(matrix)
        position = np.full(matrix.shape, np.nan)
        position[finite] = np.clip((matrix[finite] - self.low) / (self.high - self.low), 0, 1)
        return position


def colormap_name(options: RenderOptions) -> str:
    """The colormap ``options`` name, or the default for their kind of values."""
    return options.cmap or (SCORES_CMAP if options.scores else WEIGHTS_CMAP)


def view(alignment: Alignment, options: RenderOptions) -> View:
    """The matrix, scale, colormap, caption and row maxima that ``options`` asks for."""
    maxima = row_maxima(alignment.weights)
    cmap = colormap_name(options)
    if options.scores:
        matrix = alignment.scores
        finite = np.abs(matrix[np.isfinite(matrix)])
        limit = float(finite.max()) if finite.size else 0.0
        limit = limit or 1.0
        return View(matrix, -limit, limit, cmap, "score (pre-softmax)", False, maxima)
    weights = alignment.weights
    finite = weights[np.isfinite(weights)]
    bounded = bool(finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1))
    return View(weights, 0.0, 1.0, cmap, "attention weight", bounded, maxima)


def row_maxima(weights: np.ndarray) -> np.ndarray:
    """[T] column of each row's largest finite weight; -1 for a row with none above 0."""
    if weights.shape[1] == 0:
        return np.full(weights.shape[0], -1)
    finite = np.where(np.isfinite(weights), weights, -np.inf)  # [T, S]
    best = finite.argmax(axis=1)
    best[finite.max(axis=1) <= 0] = -1
    return best


def render_options(options: RenderOptions | None = None, **keywords: Any) -> RenderOptions:
    """``options``, or RenderOptions built from the keyword API (the CLI's flags).

    Keywords: ``values`` (bool: write the numbers in the cells), ``scores`` (bool: raw scores
    instead of weights), ``cmap``, ``dpi``, ``title``, ``font``, ``show_table``.
    """
    if options is not None:
        if not isinstance(options, RenderOptions):
            raise UsageError(f"options must be RenderOptions, not {type(options).__name__}")
        if keywords:
            raise UsageError("give either RenderOptions or keyword options, not both")
        return options
    unknown = sorted(set(keywords) - set(KEYWORDS))
    if unknown:
        raise UsageError(f"unknown render option {unknown[0]!r}; use one of {', '.join(KEYWORDS)}")
    numbers = keywords.pop("values", False)
    scores = keywords.pop("scores", False)
    for name, flag in (("values", numbers), ("scores", scores)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name} must be True or False, not {flag!r}")
    return RenderOptions(values="scores" if scores else "weights", numbers=numbers, **keywords)
