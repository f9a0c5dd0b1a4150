"""Rich panels for one explained decoder step (:class:`attnviz.explain.StepExplanation`).

Every intermediate is drawn with its formula and its shape as in the course notes
(``[B,1,Q]→[B,1,D]``) and its size in numbers; long vectors show their first ``dims`` values
then "…".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from attnviz.explain import StepExplanation
from attnviz.text import visible

DEFAULT_DIMS = 6
BAR_CELLS = 20
SOURCE_BAR_CELLS = 10


def safe_text(token: str) -> str:
    """A token as printable text: hidden characters made visible, an empty piece as ∅."""
    return visible(token) or "∅"


def vector_text(values: np.ndarray, dims: int, *, total: bool = True) -> str:
    """First ``dims`` values, then "…" (and the total) when there are more."""
    shown = "  ".join(f"{v:+.3f}" for v in values[:dims])
    if len(values) <= dims:
        return shown
    return f"{shown}  … ({len(values)} values)" if total else f"{shown} …"


def probability_text(probability: float) -> str:
    return f"{probability:.4f}" if probability >= 1e-4 else f"{probability:.2e}"


def _title(label: dict[str, str]) -> Text:
    title = Text(label["name"], style="bold")
    title.append(f"   {label['shape']} = {label['size']}", style="green")
    return title


def _vector_panel(label: dict[str, str], values: np.ndarray, dims: int) -> Panel:
    return Panel(Text(vector_text(values, dims)), title=_title(label), title_align="left")


def _bar(value: float, width: int = BAR_CELLS) -> Text:
    cells = round(max(0.0, min(1.0, value)) * width)
    return Text("█" * cells or "▏", style="blue")


def _per_source_table(expl: StepExplanation, dims: int) -> Table:
    """One row per source position: score and weight first (they must stay in view), then
    the first values of each intermediate, cut with "…" where the console is narrow."""
    labels = expl.labels()
    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("j", justify="right")
    table.add_column("token", no_wrap=True)
    for key, name in (("scores", "score_j"), ("weights", "α_j")):
        header = Text(f"{name}\n{labels[key]['shape']}", style="bold")
        table.add_column(header, justify="right", no_wrap=True, min_width=8)
    table.add_column("", no_wrap=True, max_width=SOURCE_BAR_CELLS)
    for key in expl.per_source:
        label = labels[key]
        table.add_column(
            Text(f"{label['name']}\n{label['shape']}", style="bold"), overflow="ellipsis"
        )
    for j, token in enumerate(expl.src_tokens):
        cells = [str(j), Text(safe_text(token))]
        weight = expl.weights[j]
        cells += [f"{expl.scores[j]:+.4f}", f"{weight:.4f}", _bar(weight, SOURCE_BAR_CELLS)]
        cells += [
            Text(vector_text(getattr(expl, key)[j], dims, total=False), no_wrap=True)
            for key in expl.per_source
        ]
        table.add_row(*cells)
    return table


def _topk_table(expl: StepExplanation) -> Table:
    table = Table(show_edge=False, pad_edge=False, show_header=False)
    table.add_column(justify="right")
    table.add_column()
    table.add_column(justify="right")
    table.add_column()
    table.add_column()
    for rank, (token, probability) in enumerate(expl.topk, start=1):
        emitted = token == expl.target_token
        table.add_row(
            str(rank),
            Text(safe_text(token)),
            probability_text(probability),
            _bar(probability),
            "← emitted" if emitted else "",
            style="bold" if emitted else None,
        )
    return table


def _header(expl: StepExplanation) -> Text:
    prefix = " ".join(safe_text(t) for t in expl.prefix_tokens) or "(none yet)"
    text = Text()
    text.append(f"{expl.scorer} attention, decoder step {expl.step}", style="bold")
    text.append(f"\nsource      {' '.join(safe_text(t) for t in expl.src_tokens)}")
    text.append(f"\nso far      {prefix}")
    how = "forced" if expl.forced else "greedy"
    text.append(
        f"\nthis step   {safe_text(expl.target_token)}  "
        f"(log-prob {expl.target_logprob:.4f}, p = {np.exp(expl.target_logprob):.4f}, {how})"
    )
    sizes = "  ".join(f"{k}={v}" for k, v in expl.sizes.items())
    text.append(f"\nsizes       B=1  {sizes}", style="green")
    return text


def explanation_view(expl: StepExplanation, dims: int = DEFAULT_DIMS) -> RenderableType:
    """The whole step, top to bottom, as the computation runs."""
    if dims < 1:
        raise ValueError(f"dims must be at least 1, not {dims}")
    labels = expl.labels()
    parts: list[RenderableType] = [_header(expl)]
    parts.append(_vector_panel(labels["query"], expl.query, dims))
    if expl.projected_query is not None:
        parts.append(_vector_panel(labels["projected_query"], expl.projected_query, dims))
    if expl.v is not None:
        parts.append(_vector_panel(labels["v"], expl.v, dims))
    parts.append(
        Panel(
            _per_source_table(expl, dims),
            title=Text(f"{expl.score_formula}, then α = softmax(score)", style="bold"),
            title_align="left",
        )
    )
    parts.append(_vector_panel(labels["context"], expl.context, dims))
    parts.append(_vector_panel(labels["attentional"], expl.attentional, dims))
    parts.append(Panel(_topk_table(expl), title=_title(labels["topk"]), title_align="left"))
    return Group(*parts)


def explanation_views(
    explained: Sequence[StepExplanation], dims: int = DEFAULT_DIMS
) -> RenderableType:
    return Group(*(explanation_view(e, dims) for e in explained))
