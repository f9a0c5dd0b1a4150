"""The terminal heatmap: golden text, width splitting, wide characters, literal markup."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console

from attnviz.alignment import Alignment
from attnviz.options import RenderOptions
from attnviz.render.terminal import MAX_LINES, MAX_MARK, MAX_ROWS, AttentionTable, render_text

NUMBERS = RenderOptions(numbers=True)

GOLDEN = Path(__file__).parent / "golden"
# set to rewrite the golden files from the current output (then check them by eye)
UPDATE = os.environ.get("ATTNVIZ_UPDATE_GOLDEN") == "1"

SRC = ["▁the", "▁hou", "se", "▁is", "▁big", "▁.", "</s>"]
TGT = ["▁집", "이", "▁크다", "▁.", "</s>"]
WEIGHTS = np.array(
    [
        [0.05, 0.60, 0.25, 0.04, 0.02, 0.02, 0.02],
        [0.10, 0.20, 0.50, 0.10, 0.04, 0.03, 0.03],
        [0.02, 0.03, 0.05, 0.20, 0.65, 0.03, 0.02],
        [0.01, 0.01, 0.01, 0.02, 0.05, 0.85, 0.05],
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.10, 0.90],
    ],
    np.float32,
)


def alignment(src=SRC, tgt=TGT, weights=WEIGHTS, **extra) -> Alignment:
    weights = np.asarray(weights, np.float32)
    return Alignment(
        source=extra.pop("source", "the house is big ."),
        translation=extra.pop("translation", "집이 크다 ."),
        src_tokens=list(src),
        tgt_tokens=list(tgt),
        weights=weights,
        scores=extra.pop("scores", None) if "scores" in extra else np.log(weights + 1e-3),
        token_logprobs=np.full(len(tgt), -0.5),
        score=extra.pop("score", -2.5),
        **extra,
    )


def render(renderable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def token_right_edges(header: str, tokens: list[str]) -> list[int]:
    """Cell position just after each header token, found left to right."""
    edges, start = [], 0
    for token in tokens:
        index = header.index(token, start)
        start = index + len(token)
        edges.append(cell_len(header[:start]))
    return edges


# -- golden ----------------------------------------------------------------------------------


def test_golden_table():
    text = render(AttentionTable(alignment()))
    check_golden("terminal_table.txt", text)


def test_golden_table_values():
    text = render(AttentionTable(alignment(), NUMBERS))
    check_golden("terminal_table_values.txt", text)


def test_table_layout():
    lines = render(AttentionTable(alignment())).splitlines()
    header, rows = lines[0], lines[1:]
    assert header.split() == SRC
    assert [row.split()[0] for row in rows] == TGT
    edges = token_right_edges(header, SRC)
    for row, weights in zip(rows, WEIGHTS, strict=True):
        # exactly one maximum mark per row, right-aligned under the argmax source token
        assert row.count(MAX_MARK) == 1
        mark_end = cell_len(row[: row.index(MAX_MARK) + 1])
        assert mark_end == edges[int(np.argmax(weights))]
    # shades follow the weights: 0.90 -> ▓, 0.60 -> ▒, 0.50 -> ░ (round half to even)
    assert "▓▓●" in rows[4]
    assert "▒▒●" in rows[0]
    assert "░░●" in rows[1]


def test_values_cells():
    lines = render(AttentionTable(alignment(), NUMBERS)).splitlines()
    first = lines[1].split()
    assert first == ["▁집", ".05", ".60●", ".25", ".04", ".02", ".02", ".02"]
    one = alignment(
        src=["▁a", "</s>"],
        tgt=["▁b", "</s>"],
        weights=[[1.0, 0.0], [0.25, 0.75]],
        scores=np.zeros((2, 2)),
    )
    lines = render(AttentionTable(one, NUMBERS)).splitlines()
    assert lines[1].split() == ["▁b", "1.0●", ".00"]
    assert lines[2].split() == ["</s>", ".25", ".75●"]


# -- width -----------------------------------------------------------------------------------


def long_alignment() -> Alignment:
    rng = np.random.default_rng(0)
    src = [f"▁w{i}" for i in range(59)] + ["</s>"]
    tgt = ["▁나는", "▁학교에", "▁갔다", "▁.", "</s>"]
    weights = rng.random((len(tgt), len(src))).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    return alignment(src=src, tgt=tgt, weights=weights, scores=np.zeros_like(weights))


def split_blocks(text: str, tgt_count: int) -> tuple[list[list[str]], list[str]]:
    """(header + rows per block, whitespace-normalised captions)."""
    lines = text.splitlines()
    blocks, captions, index = [], [], 0
    while index < len(lines):
        block = lines[index : index + 1 + tgt_count]
        blocks.append(block)
        index += 1 + tgt_count
        caption = []
        while index < len(lines) and not lines[index].startswith(" "):
            caption.append(lines[index].strip())
            index += 1
        captions.append(" ".join(caption))
    return blocks, captions


@pytest.mark.parametrize("values", [False, True])
def test_wide_table_splits_into_blocks(values):
    long = long_alignment()
    text = render(AttentionTable(long, RenderOptions(numbers=values)), width=80)
    assert all(cell_len(line) <= 80 for line in text.splitlines())

    blocks, captions = split_blocks(text, len(long.tgt_tokens))
    assert len(blocks) >= 3
    shown = []
    for block, caption in zip(blocks, captions, strict=True):
        tokens = block[0].split()
        assert caption == f"source {len(shown) + 1}–{len(shown) + len(tokens)} of 60 (split to fit)"
        shown.extend(tokens)
        assert [row.split()[0] for row in block[1:]] == long.tgt_tokens
        assert len({cell_len(line) for line in block}) == 1, block
    assert shown == long.src_tokens

    # each row's maximum is marked exactly once across all blocks
    for row in range(len(long.tgt_tokens)):
        assert sum(block[1 + row].count(MAX_MARK) for block in blocks) == 1


def test_narrow_table_is_not_split():
    text = render(AttentionTable(alignment()), width=100)
    assert "split to fit" not in text
    assert len(text.splitlines()) == 1 + len(TGT)


# -- wide characters -------------------------------------------------------------------------


def test_wide_characters_stay_aligned():
    src = ["▁소년이", "▁사과를", "▁먹었다", "▁.", "</s>"]
    tgt = ["▁the", "▁boy", "▁ate", "▁an", "▁apple", "▁.", "</s>"]
    rng = np.random.default_rng(3)
    weights = rng.random((len(tgt), len(src))).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    for values in (False, True):
        lines = render(
            AttentionTable(alignment(src, tgt, weights), RenderOptions(numbers=values))
        ).splitlines()
        assert len(lines) == 1 + len(tgt)
        assert len({cell_len(line) for line in lines}) == 1, lines
        edges = token_right_edges(lines[0], src)
        for row, line in enumerate(lines[1:]):
            mark_end = cell_len(line[: line.index(MAX_MARK) + 1])
            assert mark_end == edges[int(np.argmax(weights[row]))]


def test_long_tokens_are_shortened():
    src = ["▁" + "가" * 20, "▁short", "</s>"]
    tgt = ["▁x", "</s>"]
    weights = [[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]
    lines = render(AttentionTable(alignment(src, tgt, weights))).splitlines()
    assert "…" in lines[0]
    assert len({cell_len(line) for line in lines}) == 1


# -- markup ----------------------------------------------------------------------------------


def test_markup_in_tokens_is_literal():
    src = ["[bold]", "[red]x[/red]", "</s>"]
    tgt = ["▁[i]", "[/]", "</s>"]
    weights = [[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]
    table = AttentionTable(alignment(src, tgt, weights), RenderOptions(title="[b]title"))
    text = render(table)
    for token in ["[bold]", "[red]x[/red]", "▁[i]", "[/]", "[b]title"]:
        assert token in text, token

    console = Console(
        file=io.StringIO(), width=100, color_system="truecolor", force_terminal=True, record=True
    )
    console.print(table)
    plain = console.export_text()
    for token in ["[bold]", "[red]x[/red]", "▁[i]", "[/]", "[b]title"]:
        assert token in plain, token


def test_render_text_prints_translation_then_table():
    console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
    render_text([alignment(translation="[bold]집이[/bold] 크다 .")], console)
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "[bold]집이[/bold] 크다 .  (score -2.500)"
    assert lines[1].split() == SRC


def test_empty_alignment():
    empty = Alignment("", "", [], [], np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), 0.0)
    assert render(AttentionTable(empty)).strip() == "(empty: nothing to show)"


def test_no_color_on_a_terminal_still_shades_with_glyphs(monkeypatch):
    """NO_COLOR strips colours, so the shading must come from glyphs, as when piped."""
    monkeypatch.setenv("NO_COLOR", "1")
    src, tgt = ["▁the", "▁boy", "</s>"], ["▁소년이", "</s>"]
    weights = np.array([[0.05, 0.9, 0.05], [0.1, 0.1, 0.8]], np.float32)
    alignment = globals()["alignment"](src=src, tgt=tgt, weights=weights, scores=weights)
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, legacy_windows=False)
    assert console.no_color
    console.print(AttentionTable(alignment))
    text = buffer.getvalue()
    assert "▓▓●" in text and "···" in text


# -- narrow consoles, long sentences, values that are not finite --------------------------------


def marked_columns(text: str, tgt_count: int) -> list[list[int]]:
    """For each target row, the source columns (0-based, over all blocks) holding a mark."""
    blocks, captions = split_blocks(text, tgt_count)
    marked: list[list[int]] = [[] for _ in range(tgt_count)]
    for block, caption in zip(blocks, captions, strict=True):
        first = int(caption.split()[1].split("–")[0]) - 1 if caption else 0
        header = block[0].split()
        edges = token_right_edges(block[0], header)
        for row, line in enumerate(block[1:]):
            for position, char in enumerate(line):
                if char == MAX_MARK:
                    end = cell_len(line[: position + 1])
                    marked[row].append(first + edges.index(end))
    return marked


@pytest.mark.parametrize("width", [20, 40, 60])
@pytest.mark.parametrize(
    "options",
    [RenderOptions(), NUMBERS, RenderOptions(values="scores", numbers=True)],
    ids=["shades", "weights", "scores"],
)
def test_every_row_keeps_its_mark_at_narrow_widths(width, options):
    long_tokens = alignment(
        src=["▁" + "가" * 20, "▁extraordinarily", "▁x", "</s>"],
        tgt=["▁" + "나" * 20, "▁y", "</s>"],
        weights=[[0.1, 0.8, 0.05, 0.05], [0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.1, 0.9]],
    )
    for case in (alignment(), long_tokens, long_alignment()):
        text = render(AttentionTable(case, options), width=width)
        assert all(cell_len(line) <= width for line in text.splitlines()), text
        # a long sentence at a narrow width may be cut; the note says from which column
        cut = re.search(r"… source tokens (\d+)–(\d+) of (\d+) not shown", " ".join(text.split()))
        shown = int(cut.group(1)) - 1 if cut else len(case.src_tokens)
        assert shown >= min(16, len(case.src_tokens))
        expected = [[int(c)] if c < shown else [] for c in case.weights.argmax(axis=1)]
        assert marked_columns(text, len(case.tgt_tokens)) == expected, text


def test_too_narrow_console_says_so():
    text = render(AttentionTable(alignment(), NUMBERS), width=5)
    message = "(the console is too narrow for the table: 5 cells)"
    assert "".join(text.split()) == "".join(message.split())  # wrapped to 5 cells
    assert all(cell_len(line) <= 5 for line in text.splitlines())


def test_very_long_sentence_is_capped_with_a_note():
    n_source, n_target = 999, 150
    weights = np.full((n_target, n_source), 1 / n_source, np.float32)
    weights[np.arange(n_target), np.arange(n_target) * 6] = 0.5  # row r peaks at column 6r
    weights /= weights.sum(axis=1, keepdims=True)
    long = alignment(
        src=[f"▁s{i}" for i in range(n_source)],
        tgt=[f"▁t{i}" for i in range(n_target)],
        weights=weights,
        scores=np.zeros_like(weights),
    )
    text = render(AttentionTable(long), width=100)
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES + 5
    assert all(cell_len(line) <= 100 for line in lines)
    notes = " ".join(text.split())
    cut = re.search(r"… source tokens (\d+)–999 of 999 not shown \(at most 400 lines\)", notes)
    assert cut, notes[-300:]
    assert f"… target tokens {MAX_ROWS + 1}–150 of 150 not shown (at most {MAX_ROWS} rows)" in notes
    assert "`attnviz heatmap` draws every token" in notes
    # the rows shown are the first MAX_ROWS, each marked where it peaks (if that column shows)
    shown = int(cut.group(1)) - 1
    marked = marked_columns(text, MAX_ROWS)
    assert marked == [[6 * row] if 6 * row < shown else [] for row in range(MAX_ROWS)]
    assert any(marked) and not all(marked)


def test_non_finite_values_render_as_text():
    weights = np.array([[np.nan, 0.7, 0.3], [0.2, np.inf, 0.8], [-np.inf, 0.4, 0.6]], np.float32)
    scores = np.array([[1.0, np.nan, -2.0], [np.inf, 0.5, -np.inf], [0.0, 0.0, 0.0]], np.float32)
    odd = alignment(
        src=["▁a", "▁b", "</s>"], tgt=["▁x", "▁y", "</s>"], weights=weights, scores=scores
    )
    rows = render(AttentionTable(odd, NUMBERS)).splitlines()[1:]
    assert rows[0].split() == ["▁x", "nan", ".70●", ".30"]
    assert rows[1].split() == ["▁y", ".20", "inf", ".80●"]  # the largest *finite* weight
    assert rows[2].split() == ["</s>", "-inf", ".40", ".60●"]
    scores_table = AttentionTable(odd, RenderOptions(values="scores", numbers=True))
    rows = render(scores_table).splitlines()[1:]
    assert rows[0].split() == ["▁x", "1.00", "nan●", "-2.00"]  # marks follow the weights
    assert rows[1].split() == ["▁y", "inf", "0.50", "-inf●"]
    assert rows[2].split() == ["</s>", "0.00", "0.00", "0.00●"]
    shades = render(AttentionTable(odd)).splitlines()[1:]
    assert shades[0].split()[1] == "nan" and shades[1].split()[2] == "inf"
    assert shades[2].split()[1] == "-inf"
    assert [row.count(MAX_MARK) for row in shades] == [1, 1, 1]
    console = Console(file=io.StringIO(), width=100, color_system="truecolor", force_terminal=True)
    console.print(AttentionTable(odd, NUMBERS))
    assert "nan" in console.file.getvalue() and "-inf" in console.file.getvalue()


# -- untrusted text ----------------------------------------------------------------------------

HOSTILE = ["\x1b[31mred", "\x1b]0;t\x07", "\x9b2J", "a\u202eb", "\x00\x7f"]
SHOWN = ["\\x1b[31mred", "\\x1b]0;t\\x07", "\\x9b2J", "a\\u202eb", "\\x00\\x7f"]


def control_characters(text: str) -> set[str]:
    return {char for char in text if not char.isprintable() and char != "\n"}


@pytest.mark.parametrize("color", [None, "truecolor"])
def test_escape_sequences_in_tokens_and_translation_are_shown_not_sent(color):
    src = [*HOSTILE, "</s>"]
    tgt = [*HOSTILE, "</s>"]
    rng = np.random.default_rng(1)
    weights = rng.random((len(tgt), len(src))).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    hostile = alignment(
        src=src, tgt=tgt, weights=weights, translation="ok \x1b[2J\x1b]0;x\x07 done"
    )
    console = Console(
        file=io.StringIO(), width=200, color_system=color, force_terminal=color is not None
    )
    render_text([hostile], console, RenderOptions(title="\x1b[5mtitle"))
    text = console.file.getvalue()
    if color is None:
        assert control_characters(text) == set()
        lines = text.splitlines()
        assert lines[0] == "ok \\x1b[2J\\x1b]0;x\\x07 done  (score -2.500)"
        assert lines[1] == "\\x1b[5mtitle"
        assert lines[2].split() == [*SHOWN, "</s>"]
        assert [line.split()[0] for line in lines[3:-1]] == [*SHOWN, "</s>"]
    else:
        # rich writes its own colour codes (ESC [ ... m); nothing else may get through
        assert control_characters(re.sub(r"\x1b\[[0-9;]*m", "", text)) == set()
        for shown in [*SHOWN, "\\x1b[2J", "\\x1b[5mtitle"]:
            assert shown in text


def test_render_text_takes_options_or_keywords():
    outputs = []
    for kwargs in (
        {"options": RenderOptions(values="scores", numbers=True)},
        {"values": True, "scores": True},
    ):
        console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
        render_text([alignment()], console, **kwargs)
        outputs.append(console.file.getvalue())
    assert outputs[0] == outputs[1]
    assert "-0.51●" in outputs[0]  # log(0.60 + 1e-3), the row's largest weight
    console = Console(file=io.StringIO(), width=100, color_system=None)
    render_text([alignment()], console, show_table=False)
    assert console.file.getvalue() == "집이 크다 .  (score -2.500)\n"
