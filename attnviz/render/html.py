"""A self-contained interactive HTML view of many sentences' attention.

One file, no network: the CSS and JavaScript in ``html_assets/`` are inlined, the data is
embedded as JSON in a ``<script type="application/json">`` element and drawn by the page with
DOM calls (``textContent`` only), so a token such as ``<script>`` shows as text. A
Content-Security-Policy forbids the page any request.

Matrices are stored exactly, as base64 of their little-endian float32 bytes: cheap to write,
and decoded by the page only for the sentence on screen, so a page of thousands of sentences
opens at once. :func:`read_page` gives back what was written, bit for bit.

The page is written sentence by sentence (:class:`HtmlPage` gives the head, one entry per
sentence and the tail), so an export can stream it; :func:`render_html` writes a whole page
atomically. Word-level merging is done in the page, as :meth:`Alignment.to_words` does it.

numpy only, like every renderer.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from attnviz import __version__
from attnviz.alignment import DEFAULT_WORD_RULES, Alignment
from attnviz.errors import InputError
from attnviz.options import RenderOptions

#: Vector dimensions stored per intermediate of an explained decoder step.
EXPLAIN_DIMS = 8
EXPLAIN_DECIMALS = 6
#: Largest page :func:`read_page` reads.
MAX_PAGE_BYTES = 1 << 31
_DATA_OPEN = '<script type="application/json" id="attnviz-data">'
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
    if "</style" in css.lower() or "</script" in script.lower():
        raise RuntimeError("the HTML view's assets must not close their own element")
    return css, script


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_JSON_ESCAPES)


def _packed(array: np.ndarray) -> str:
    """float32 little-endian bytes as base64: exact, NaN and infinities included."""
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return base64.b64encode(data).decode("ascii")


def _unpacked(text: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        data = base64.b64decode(str(text), validate=True)
    except ValueError as err:
        raise ValueError(f"{name} is not base64") from err
    size = math.prod(shape)
    if len(data) != 4 * size:
        raise ValueError(f"{name} holds {len(data) // 4} values, expected {size}")
    return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_ready(values: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers that are not finite become null (JSON has no NaN)."""
    return {
        key: _finite(value) if isinstance(value, float) else value for key, value in values.items()
    }


def _hypothesis(
    alignment: Alignment,
    explanation: Sequence[Any] | None = None,
    explain_dims: int = EXPLAIN_DIMS,
) -> dict[str, Any]:
    """One hypothesis as the page reads it (and :func:`read_page` gives back)."""
    entry: dict[str, Any] = {
        "translation": alignment.translation,
        "src": list(alignment.src_tokens),
        "tgt": list(alignment.tgt_tokens),
        "w": _packed(alignment.weights),
        "s": _packed(alignment.scores),
        "lp": _packed(alignment.token_logprobs),
        "score": _finite(alignment.score),
        "rank": alignment.rank,
        "level": alignment.level,
    }
    if alignment.word_rules != DEFAULT_WORD_RULES:
        entry["word_rules"] = list(alignment.word_rules)
    if alignment.meta:
        entry["meta"] = alignment.meta
    if explanation:
        entry["explain"] = [
            step.to_dict(dims=explain_dims, decimals=EXPLAIN_DECIMALS)
            if hasattr(step, "to_dict")
            else step
            for step in explanation
        ]
    return entry


def _alignment(entry: Mapping[str, Any]) -> Alignment:
    src, tgt = [str(t) for t in entry["src"]], [str(t) for t in entry["tgt"]]
    shape = (len(tgt), len(src))
    score = entry.get("score")
    return Alignment(
        source=str(entry.get("source", "")),
        translation=str(entry["translation"]),
        src_tokens=src,
        tgt_tokens=tgt,
        weights=_unpacked(entry["w"], shape, "weights"),
        scores=_unpacked(entry["s"], shape, "scores"),
        token_logprobs=_unpacked(entry["lp"], (len(tgt),), "log-probabilities"),
        score=math.nan if score is None else float(score),
        rank=int(entry.get("rank", 0)),
        level=str(entry.get("level", "pieces")),
        meta=dict(entry.get("meta") or {}),
        word_rules=tuple(entry.get("word_rules", DEFAULT_WORD_RULES)),
    )


def _as_alignment(item: Alignment | Mapping[str, Any]) -> Alignment:
    return item if isinstance(item, Alignment) else Alignment.from_dict(dict(item))


def sentence_group(item: Any) -> tuple[list[Alignment], str | None, str | None]:
    """Normalise one sentence: its hypotheses, best first, its source, and an error message.

    ``item`` is a list of Alignments (or of ``to_dict`` records), one Alignment, an object
    with ``alignments``/``source``/``error`` (an export's sentence group), or one export
    record (with ``nbest`` for the other hypotheses, or ``error`` for a failed line).
    """
    if isinstance(item, Alignment):
        return [item], item.source, None
    if hasattr(item, "alignments") and hasattr(item, "error"):
        return list(item.alignments), str(item.source), item.error
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


class HtmlPage:
    """The page in three parts, so that it can be streamed: head, one entry per sentence, tail.

    ``models`` names the model (and the compared one); ``options.values`` (weights or scores)
    is what the page shows first, ``words`` whether it starts at the word level;
    ``explain_dims`` the values kept of each vector of a step breakdown; ``diagnostics``
    adds each sentence's attention diagnostics (its best hypothesis's), to sort by.
    """

    def __init__(
        self,
        *,
        title: str = "attnviz",
        models: Sequence[str] = (),
        options: RenderOptions | None = None,
        words: bool = False,
        explain_dims: int = EXPLAIN_DIMS,
        diagnostics: bool = False,
    ) -> None:
        options = options or RenderOptions()
        self.explain_dims = explain_dims
        self.diagnostics = diagnostics
        self.title = options.title or title
        self.models = [str(m) for m in models]
        self.mode = options.values
        self.level = "words" if words else "pieces"

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
            f'{_DATA_OPEN}{{"meta":{script_json(meta)},"sentences":[\n'
        )

    def sentence(
        self,
        sentence_id: int,
        hypotheses: Any,
        *,
        compare: Any = None,
        compare_forced: Alignment | None = None,
        explanations: Sequence[Sequence[Any] | None] | None = None,
    ) -> str:
        """One sentence's entry (ends with a comma and a newline).

        ``hypotheses`` and ``compare`` are as :func:`sentence_group` takes them;
        ``compare_forced`` is the compared model forced along the best hypothesis (its
        difference heatmap when the compared model's own translation differs);
        ``explanations`` holds, per hypothesis, its explained decoder steps (objects with
        ``to_dict(dims=..., decimals=...)``, or such dicts) or None.
        """
        hyps, source, error = sentence_group(hypotheses)
        entry: dict[str, Any] = {"id": int(sentence_id), "source": source or ""}
        if error is not None:
            entry["error"] = error
        else:
            explained = list(explanations or [])
            entry["hyps"] = [
                _hypothesis(a, explained[k] if k < len(explained) else None, self.explain_dims)
                for k, a in enumerate(hyps)
            ]
            if self.diagnostics and hyps and hyps[0].shape[0] and hyps[0].shape[1]:
                entry["diag"] = _json_ready(hyps[0].diagnostics().to_dict())
        if compare is not None:
            other, _, other_error = sentence_group(compare)
            entry["cmp"] = [_hypothesis(a) for a in other]
            if other_error is not None:
                entry["cmp_error"] = other_error
        if compare_forced is not None:
            entry["cmp_forced"] = _hypothesis(compare_forced)
        return script_json(entry) + ",\n"

    def tail(self) -> str:
        _, script = _assets()
        return f"null]}}</script>\n<script>\n{script}</script>\n</body>\n</html>\n"


def render_html(
    groups: Iterable[Any],
    path: str | os.PathLike[str],
    options: RenderOptions | None = None,
    *,
    compare: Iterable[Any] | None = None,
    compare_forced: Iterable[Alignment | None] | None = None,
    explanations: Iterable[Sequence[Sequence[Any] | None] | None] | None = None,
    title: str = "attnviz",
    models: Sequence[str] = (),
    words: bool = False,
    explain_dims: int = EXPLAIN_DIMS,
    diagnostics: bool = False,
) -> Path:
    """Write the page for ``groups`` (one item per sentence, see :func:`sentence_group`).

    ``compare``: the same sentences from a second model, in the same order;
    ``compare_forced``: per sentence, that model forced along the best hypothesis;
    ``diagnostics``: attention diagnostics per sentence, to sort by.
    ``explanations``: per sentence, per hypothesis, the explained decoder steps.
    The file appears complete or not at all (see :func:`attnviz.io.atomic_write`).
    """
    from attnviz.io import atomic_write

    page = HtmlPage(
        title=title,
        models=models,
        options=options,
        words=words,
        explain_dims=explain_dims,
        diagnostics=diagnostics,
    )
    groups = list(groups)
    others = list(compare) if compare is not None else None
    forced = list(compare_forced) if compare_forced is not None else None
    explained = list(explanations) if explanations is not None else None
    for name, extra in (
        ("compared", others),
        ("forced compared", forced),
        ("explained", explained),
    ):
        if extra is not None and len(extra) != len(groups):
            raise ValueError(f"{len(extra)} {name} sentences for {len(groups)} sentences")

    def write(stream: Any) -> None:
        stream.write(page.head().encode("utf-8"))
        for index, group in enumerate(groups):
            entry = page.sentence(
                index,
                group,
                compare=others[index] if others is not None else None,
                compare_forced=forced[index] if forced is not None else None,
                explanations=explained[index] if explained is not None else None,
            )
            stream.write(entry.encode("utf-8"))
        stream.write(page.tail().encode("utf-8"))

    return atomic_write(path, write)


# -- reading a page back ------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSentence:
    """One sentence read back from a page: its hypotheses (and a compared model's), or why it
    failed."""

    index: int
    source: str
    alignments: tuple[Alignment, ...] = ()
    compare: tuple[Alignment, ...] | None = None
    error: str | None = None


def read_page(path: str | os.PathLike[str]) -> list[PageSentence]:
    """The sentences of a page written by attnviz, exactly as they were written."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_PAGE_BYTES + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror or err})") from err
    if len(data) > MAX_PAGE_BYTES:
        raise InputError(f"{path}: larger than {MAX_PAGE_BYTES:,} bytes")
    text = data.decode("utf-8", errors="replace")
    match = re.search(re.escape(_DATA_OPEN) + r"(.*?)</script>", text, re.S)
    if match is None:
        raise InputError(f"{path}: not an attnviz HTML page (no data element)")
    try:
        value = json.loads(match.group(1))
        return [_page_sentence(s) for s in value["sentences"] if s is not None]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: damaged attnviz HTML page ({err})") from err


def _page_sentence(entry: Mapping[str, Any]) -> PageSentence:
    source = str(entry.get("source", ""))
    if "error" in entry:
        return PageSentence(int(entry["id"]), source, error=str(entry["error"]))

    def hypotheses(key: str) -> tuple[Alignment, ...]:
        return tuple(_alignment({**h, "source": source}) for h in entry[key])

    compare = hypotheses("cmp") if "cmp" in entry else None
    return PageSentence(int(entry["id"]), source, hypotheses("hyps"), compare)
