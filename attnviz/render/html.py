"""A self-contained interactive HTML view of many sentences' attention.

One file, no network: the CSS and JavaScript in ``html_assets/`` are inlined, the data is
embedded as JSON in a ``<script type="application/json">`` element and drawn by the page with
DOM calls (``textContent`` only), so a token such as ``<script>`` shows as text. A
Content-Security-Policy forbids the page any request.

The page is written sentence by sentence (:class:`HtmlPage` gives the head, one entry per
sentence and the tail), so an export can stream it; :func:`render_html` writes a whole page
atomically. Word-level merging is done in the page, exactly as :meth:`Alignment.to_words`.

numpy only, like every renderer.
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from attnviz import __version__
from attnviz.alignment import LEVELS, Alignment

MODES = ("weights", "scores")
EXPLAIN_DIMS = 8  # vector dimensions stored per intermediate of an explained step
# stored precision: the page shows 4 decimals, so these round-trip what a person reads
WEIGHT_DECIMALS = 5
SCORE_DECIMALS = 4
EXPLAIN_DECIMALS = 6
_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    folder = resources.files("attnviz.render") / "html_assets"
    css = (folder / "view.css").read_text(encoding="utf-8")
    script = (folder / "view.js").read_text(encoding="utf-8")
    # inlined verbatim: neither may end its element early
    assert "</style" not in css.lower() and "</script" not in script.lower()
    return css, script


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _rounded(array: np.ndarray, decimals: int) -> list[Any]:
    values = np.round(np.asarray(array, dtype=np.float64), decimals)
    if np.isfinite(values).all():
        return values.tolist()
    # NaN/inf are not JSON: they become null, drawn as missing cells
    return np.where(np.isfinite(values), values, None).tolist()


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _topk(steps: Any, length: int) -> list[list[list[Any]]] | None:
    """Per step, the alternatives as [token, probability] pairs; None when absent or malformed."""
    if not isinstance(steps, list) or len(steps) != length:
        return None
    result = []
    for step in steps:
        if not isinstance(step, list):
            return None
        pairs = []
        for item in step:
            if isinstance(item, Mapping):
                token, probability = item.get("token"), item.get("prob")
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                token, probability = item
            else:
                return None
            if not isinstance(probability, (int, float)):
                return None
            pairs.append([str(token), round(float(probability), WEIGHT_DECIMALS)])
        result.append(pairs)
    return result


def _hypothesis(alignment: Alignment, explanation: Sequence[Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "translation": alignment.translation,
        "src": list(alignment.src_tokens),
        "tgt": list(alignment.tgt_tokens),
        "w": _rounded(alignment.weights, WEIGHT_DECIMALS),
        "s": _rounded(alignment.scores, SCORE_DECIMALS),
        "lp": _rounded(alignment.token_logprobs, WEIGHT_DECIMALS),
        "score": _finite(alignment.score),
        "rank": alignment.rank,
        "level": alignment.level,
    }
    topk = _topk(alignment.meta.get("topk"), len(alignment.tgt_tokens))
    if topk is not None:
        entry["topk"] = topk
    if explanation:
        entry["explain"] = [
            step.to_dict(dims=EXPLAIN_DIMS, decimals=EXPLAIN_DECIMALS)
            if hasattr(step, "to_dict")
            else step
            for step in explanation
        ]
    return entry


def _as_alignment(item: Alignment | Mapping[str, Any]) -> Alignment:
    return item if isinstance(item, Alignment) else Alignment.from_dict(dict(item))


def sentence_group(item: Any) -> tuple[list[Alignment], str | None, str | None]:
    """Normalise one sentence: its hypotheses, best first, its source, and an error message.

    ``item`` is a list of Alignments (or of ``to_dict`` records), one Alignment, or one
    export record (with ``nbest`` for the other hypotheses, or ``error`` for a failed line).
    """
    if isinstance(item, Alignment):
        return [item], item.source, None
    if isinstance(item, Mapping):
        if "error" in item:
            return [], str(item.get("source", "")), str(item["error"])
        record = {k: v for k, v in item.items() if k not in ("nbest", "id")}
        others = [
            {k: v for k, v in other.items() if k != "id"} for other in item.get("nbest") or []
        ]
        hyps = [_as_alignment(record), *(_as_alignment(o) for o in others)]
        return hyps, hyps[0].source, None
    hyps = [_as_alignment(a) for a in item]
    return hyps, (hyps[0].source if hyps else ""), None


def _diagnostics(hyps: list[Alignment]) -> dict[str, Any] | None:
    if not hyps:
        return None
    values = hyps[0].meta.get("diagnostics")
    if not isinstance(values, Mapping):
        return None
    kept = {}
    for key, value in values.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            kept[str(key)] = _finite(float(value))
        elif isinstance(value, (str, list)):
            kept[str(key)] = value
    return kept or None


class HtmlPage:
    """The page in three parts, so that it can be streamed: head, one entry per sentence, tail.

    ``models`` names the model (and the compared one); ``mode`` (weights or scores) and
    ``level`` (pieces or words) are what the page shows first.
    """

    def __init__(
        self,
        *,
        title: str = "attnviz",
        models: Sequence[str] = ("model",),
        mode: str = "weights",
        level: str = "pieces",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        self.title = title
        self.models = [str(m) for m in models]
        self.mode = mode
        self.level = level

    def head(self) -> str:
        css, _ = _assets()
        meta = {
            "title": self.title,
            "models": self.models,
            "mode": self.mode,
            "level": self.level,
            "generator": f"attnviz {__version__}",
        }
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="attnviz {html.escape(__version__)}">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>\n{css}</style>\n</head>\n"
            "<body>\n"
            '<header><h1 id="title"></h1><span class="models" id="models"></span></header>\n'
            '<div class="app"><aside id="list-pane"><div class="list-controls">'
            '<input type="search" id="search" placeholder="search source and translations" '
            'aria-label="search">'
            '<select id="sort-key" aria-label="sort by"></select>'
            '<button type="button" id="sort-dir" data-dir="asc">\u2191 ascending</button>'
            '<span id="list-count"></span></div>'
            '<div id="list"><div id="list-spacer"></div></div></aside>'
            '<main id="detail"></main></div>\n'
            '<div id="tooltip" role="tooltip"></div>\n'
            '<script type="application/json" id="attnviz-data">'
            f'{{"meta":{script_json(meta)},"sentences":[\n'
        )

    def sentence(
        self,
        sentence_id: int,
        hypotheses: Any,
        *,
        compare: Any = None,
        explanations: Sequence[Sequence[Any] | None] | None = None,
    ) -> str:
        """One sentence's entry (ends with a comma and a newline).

        ``hypotheses`` and ``compare`` are as :func:`sentence_group` takes them;
        ``explanations`` holds, per hypothesis, its explained decoder steps (objects with
        ``to_dict(dims=...)``, or such dicts) or None.
        """
        hyps, source, error = sentence_group(hypotheses)
        entry: dict[str, Any] = {"id": int(sentence_id), "source": source or ""}
        if error is not None:
            entry["error"] = error
        else:
            explained = list(explanations or [])
            entry["hyps"] = [
                _hypothesis(a, explained[k] if k < len(explained) else None)
                for k, a in enumerate(hyps)
            ]
            diagnostics = _diagnostics(hyps)
            if diagnostics:
                entry["diag"] = diagnostics
        if compare is not None:
            other, _, other_error = sentence_group(compare)
            entry["cmp"] = [_hypothesis(a, None) for a in other]
            if other_error is not None:
                entry["cmp_error"] = other_error
        return script_json(entry) + ",\n"

    def tail(self) -> str:
        _, script = _assets()
        return f"null]}}</script>\n<script>\n{script}</script>\n</body>\n</html>\n"


def render_html(
    groups: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    compare: Iterable[Any] | None = None,
    explanations: Iterable[Sequence[Sequence[Any] | None] | None] | None = None,
    title: str = "attnviz",
    models: Sequence[str] = ("model",),
    mode: str = "weights",
    level: str = "pieces",
) -> Path:
    """Write the page for ``groups`` (one item per sentence, see :func:`sentence_group`).

    ``compare``: the same sentences from a second model, in the same order.
    ``explanations``: per sentence, per hypothesis, the explained decoder steps.
    The file appears complete or not at all (a temporary file beside it, then a rename).
    """
    page = HtmlPage(title=title, models=models, mode=mode, level=level)
    groups = list(groups)
    others = list(compare) if compare is not None else None
    explained = list(explanations) if explanations is not None else None
    if others is not None and len(others) != len(groups):
        raise ValueError(f"{len(others)} compared sentences for {len(groups)} sentences")
    if explained is not None and len(explained) != len(groups):
        raise ValueError(f"explanations for {len(explained)} sentences, not {len(groups)}")

    def write(stream: Any) -> None:
        stream.write(page.head())
        for index, group in enumerate(groups):
            stream.write(
                page.sentence(
                    index,
                    group,
                    compare=others[index] if others is not None else None,
                    explanations=explained[index] if explained is not None else None,
                )
            )
        stream.write(page.tail())

    target = Path(path)
    write_text_atomically(target, write)
    return target


def write_text_atomically(path: Path, write: Any) -> None:
    """Call ``write(stream)`` on a new file beside ``path``, then rename it into place."""
    folder = path.parent if str(path.parent) else Path(".")
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # as a plain open() would create it
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
