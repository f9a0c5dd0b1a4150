"""Figures: formats, layout growth, CJK fonts, atomic writes, and no global matplotlib state."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from attnviz.alignment import Alignment
from attnviz.errors import AttnvizError, InputError, OutputError, UsageError
from attnviz.fonts import CJK_FONT_FILE, font_families
from attnviz.options import RenderOptions
from attnviz.render.figure import FORMATS, FigureRenderer, figure_format, render_figure
from attnviz.render.values import view

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENGLISH = ["▁The", "▁weather", "▁is", "▁very", "▁nice", "▁today", ".", "</s>"]
KOREAN = ["▁오늘", "은", "▁날씨", "가", "▁매우", "▁좋", "습니다", ".", "</s>"]


def altered(alignment: Alignment, **changes: dict[tuple[int, int], float]) -> Alignment:
    """A copy of ``alignment`` with some cells of its arrays set: name={(row, col): value}."""
    arrays = {}
    for name, cells in changes.items():
        array = getattr(alignment, name).copy()
        for (row, col), value in cells.items():
            array[row, col] = value
        arrays[name] = array
    return dataclasses.replace(alignment, **arrays)


def make_alignment(src_tokens: list[str], tgt_tokens: list[str], seed: int = 0) -> Alignment:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, (len(tgt_tokens), len(src_tokens))).astype(np.float32)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))  # [T, S]
    weights /= weights.sum(axis=1, keepdims=True)
    return Alignment(
        source=" ".join(src_tokens),
        translation=" ".join(tgt_tokens),
        src_tokens=src_tokens,
        tgt_tokens=tgt_tokens,
        weights=weights,
        scores=scores,
        token_logprobs=np.zeros(len(tgt_tokens), np.float32),
        score=0.0,
    )


def synthetic_tokens(count: int, prefix: str) -> list[str]:
    return [f"▁{prefix}{index}" for index in range(count)]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


@pytest.fixture(scope="module")
def korean() -> Alignment:
    return make_alignment(ENGLISH, KOREAN)


# -- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.png", "png"), ("a.SVG", "svg"), ("dir/b.pdf", "pdf"), ("c.tar.png", "png")],
)
def test_figure_format_from_suffix(name: str, expected: str) -> None:
    assert figure_format(name) == expected


@pytest.mark.parametrize("name", ["a.jpg", "a", "a.png.bak"])
def test_unknown_suffix_is_a_usage_error_listing_formats(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        figure_format(name)
    assert all(f".{fmt}" in str(caught.value) for fmt in FORMATS)
    with pytest.raises(UsageError):
        render_figure(make_alignment(["a"], ["b"]), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_written_and_opens(fmt: str, korean: Alignment, tmp_path: Path) -> None:
    path = tmp_path / f"figure.{fmt}"
    assert render_figure(korean, str(path), values=True, title="The weather") == path
    data = path.read_bytes()
    if fmt == "png":
        width, height = png_size(path)
        assert 200 < width < 3000 and 200 < height < 3000
    elif fmt == "svg":
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
    else:
        assert data.startswith(b"%PDF")
        assert b"%%EOF" in data[-64:]


@pytest.mark.parametrize(
    "options", [{"scores": True}, {"scores": True, "values": True}, {"cmap": "viridis"}]
)
def test_options_render(options: dict, korean: Alignment, tmp_path: Path) -> None:
    png_size(render_figure(korean, tmp_path / "figure.png", dpi=72, **options))


def test_unknown_colormap_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="colormap"):
        FigureRenderer(cmap="no-such-map")


@pytest.mark.parametrize("dpi", [0, -5, float("nan"), 10**6])
def test_bad_dpi_is_a_usage_error(dpi: float) -> None:
    with pytest.raises(UsageError, match="dpi"):
        FigureRenderer(dpi=dpi)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty_alignment_is_an_input_error(shape: tuple[int, int], tmp_path: Path) -> None:
    n_target, n_source = shape
    empty = Alignment(
        source="",
        translation="",
        src_tokens=synthetic_tokens(n_source, "s"),
        tgt_tokens=synthetic_tokens(n_target, "t"),
        weights=np.zeros(shape, np.float32),
        scores=np.zeros(shape, np.float32),
        token_logprobs=np.zeros(n_target, np.float32),
        score=0.0,
    )
    with pytest.raises(InputError, match="empty"):
        render_figure(empty, tmp_path / "empty.png")
    assert list(tmp_path.iterdir()) == []


# -- layout ---------------------------------------------------------------------------------


def test_size_grows_with_token_count(tmp_path: Path) -> None:
    sizes = []
    with FigureRenderer(dpi=50) as renderer:
        for count in (3, 30, 90):
            tokens = synthetic_tokens(count, "w")
            path = renderer.render(make_alignment(tokens, tokens), tmp_path / f"{count}.png")
            sizes.append(png_size(path))
    assert sizes[0][0] < sizes[1][0] < sizes[2][0]
    assert sizes[0][1] < sizes[1][1] < sizes[2][1]


def test_150_by_150_tokens_render(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vocabulary = ["▁the", "▁날씨", "습니다", "▁こんにちは", "中文", "▁weather", "ing", "."]
    src_tokens = list(rng.choice(vocabulary, 150))
    tgt_tokens = list(rng.choice(vocabulary, 150))
    path = render_figure(make_alignment(src_tokens, tgt_tokens), tmp_path / "big.png", dpi=72)
    width, height = png_size(path)
    assert 1_000 < width <= 16_000 and 1_000 < height <= 16_000


def test_huge_dpi_is_capped(tmp_path: Path) -> None:
    tokens = synthetic_tokens(150, "w")
    options = RenderOptions(dpi=2_000)
    renderer = FigureRenderer(options)
    layout = renderer.plan(view(make_alignment(tokens, tokens), options), tokens, tokens)
    renderer.close()
    assert max(layout.width, layout.height) * layout.dpi <= 16_000
    assert layout.dpi < 2_000


def test_tricky_tokens_draw(tmp_path: Path) -> None:
    tokens = ["$x$", "a_b", "\\alpha", "^", "tab\there", "x" * 100, "", " "]
    alignment = make_alignment(tokens, tokens)
    for fmt in FORMATS:
        render_figure(alignment, tmp_path / f"tricky.{fmt}", values=True)


def test_non_finite_scores_draw(tmp_path: Path) -> None:
    alignment = make_alignment(["a", "b", "c"], ["x", "y"])
    alignment = altered(alignment, scores={(0, 1): -np.inf, (1, 2): np.nan})
    png_size(render_figure(alignment, tmp_path / "nan.png", scores=True, values=True))


# -- fonts -----------------------------------------------------------------------------------


def test_cjk_figure_has_no_missing_glyph_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alignment = make_alignment(
        ["▁The", "▁cat", "▁sleeps", "."],
        ["▁고양이", "가", "▁잔다", "猫が寝ている", "ねこ", "猫在睡觉", "ㄱㅏ", "."],
    )
    caplog.set_level(logging.DEBUG, logger="matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fmt in FORMATS:
            render_figure(alignment, tmp_path / f"cjk.{fmt}", values=True, title="猫 고양이")
    assert "missing from" not in caplog.text
    assert "not found" not in caplog.text


def test_font_families_default_and_overrides() -> None:
    default = font_families(None)
    assert default[0] == "DejaVu Sans"
    assert len(default) == 2 and default[1] != "DejaVu Sans"
    assert font_families("dejavu sans") == default
    dejavu_file = Path(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSerif.ttf")
    assert font_families(str(dejavu_file)) == ["DejaVu Serif", *default]
    assert font_families("serif")[0] == "serif"


@pytest.mark.parametrize("font", ["No Such Font Family", "missing/font.ttf", "font.woff2/x"])
def test_unknown_font_is_a_usage_error(font: str) -> None:
    with pytest.raises(UsageError, match="font"):
        font_families(font)


def test_shipped_font_covers_cjk_and_loads_in_matplotlib() -> None:
    from matplotlib.ft2font import FT2Font

    assert CJK_FONT_FILE.stat().st_size <= 6 * 1024 * 1024
    assert (CJK_FONT_FILE.parent / "OFL.txt").is_file()
    font = FT2Font(str(CJK_FONT_FILE))
    charmap = font.get_charmap()
    hangul = range(0xAC00, 0xD7A4)
    assert all(code in charmap for code in hangul)
    assert all(code in charmap for code in range(0x3131, 0x318F))  # compatibility jamo
    assert all(code in charmap for code in range(0x3041, 0x3097))  # hiragana
    assert all(ord(char) in charmap for char in "的一是不了人我在有他这中大来上国個日本語漢字")


# -- no global state ---------------------------------------------------------------------------


def test_rcparams_unchanged_and_no_pyplot_figures(korean: Alignment, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    open_before = plt.get_fignums()
    for fmt in FORMATS:
        render_figure(korean, tmp_path / f"figure.{fmt}", scores=True, font="serif")
    assert dict(matplotlib.rcParams) == before
    assert plt.get_fignums() == open_before


def test_closed_renderer_refuses(korean: Alignment, tmp_path: Path) -> None:
    renderer = FigureRenderer()
    renderer.close()
    renderer.close()
    with pytest.raises(AttnvizError, match="closed"):
        renderer.render(korean, tmp_path / "figure.png")


def test_reused_renderer_matches_a_fresh_one(tmp_path: Path) -> None:
    first = make_alignment(ENGLISH, KOREAN, seed=1)
    second = make_alignment(ENGLISH[:3], KOREAN[:5], seed=2)
    with FigureRenderer(dpi=60, values=True) as renderer:
        renderer.render(first, tmp_path / "first.png")
        reused = renderer.render(second, tmp_path / "reused.png")
    fresh = render_figure(second, tmp_path / "fresh.png", dpi=60, values=True)
    assert np.array_equal(matplotlib.image.imread(reused), matplotlib.image.imread(fresh))


# -- atomic writes ----------------------------------------------------------------------------


def test_existing_file_is_replaced_without_leftovers(korean: Alignment, tmp_path: Path) -> None:
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    render_figure(korean, path, dpi=50)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [entry.name for entry in tmp_path.iterdir()] == ["figure.png"]


def test_failed_write_keeps_the_old_file(
    korean: Alignment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    def half_write(self: Figure, file, **kwargs) -> None:
        file.write(b"\x89PNG half")
        raise RuntimeError("disk on fire")

    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    monkeypatch.setattr(Figure, "savefig", half_write)
    with pytest.raises(RuntimeError, match="disk on fire"):
        render_figure(korean, path)
    assert path.read_bytes() == b"old"
    assert [entry.name for entry in tmp_path.iterdir()] == ["figure.png"]


def test_unwritable_destination_is_an_attnviz_error(korean: Alignment, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        render_figure(korean, tmp_path / "missing" / "figure.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OutputError, match="folder"):
        render_figure(korean, tmp_path / "folder.png")
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(AttnvizError, match="cannot write"):
            render_figure(korean, locked / "figure.png")


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_same_alignment_gives_identical_bytes(tmp_path, suffix):
    """Figures carry no timestamps or random ids, so an export resumed later matches."""
    from attnviz.render.figure import render_figure

    alignment = _deterministic_alignment()
    first = render_figure(alignment, tmp_path / f"a.{suffix}", dpi=72)
    second = render_figure(alignment, tmp_path / f"b.{suffix}", dpi=72)
    assert first.read_bytes() == second.read_bytes()


def _deterministic_alignment():
    import numpy as np

    from attnviz.alignment import Alignment

    weights = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    return Alignment(
        source="the boy .",
        translation="소년이 .",
        src_tokens=["▁the", "▁boy", "▁."],
        tgt_tokens=["▁소년이", "▁."],
        weights=weights,
        scores=np.log(weights),
        token_logprobs=np.zeros(2, np.float32),
        score=0.0,
    )


def cell_pixel(path: Path, layout, row: int, col: int) -> np.ndarray:
    """RGB (0-1) at the centre of heatmap cell (row, col) of a PNG drawn with ``layout``."""
    image = matplotlib.image.imread(path)
    left, bottom, _, height = layout.heatmap
    x = (left + (col + 0.5) * layout.cell) * layout.dpi
    y_from_top = (layout.height - (bottom + height) + (row + 0.5) * layout.cell) * layout.dpi
    return image[int(y_from_top), int(x), :3]


@pytest.mark.parametrize("values", ["weights", "scores"])
def test_non_finite_cells_are_grey(values: str, tmp_path: Path) -> None:
    alignment = altered(
        make_alignment(["a", "b", "c"], ["x", "y"]),
        weights={(0, 0): np.nan, (1, 2): np.inf},
        scores={(0, 0): np.nan, (1, 2): -np.inf},
    )
    options = RenderOptions(values=values, dpi=72)
    labels = ["a", "b", "c"], ["x", "y"]
    with FigureRenderer(options) as renderer:
        path = renderer.render(alignment, tmp_path / "odd.png")
        layout = renderer.plan(view(alignment, options), *labels)
    grey = np.array([0xD9, 0xD9, 0xD9]) / 255
    np.testing.assert_allclose(cell_pixel(path, layout, 0, 0), grey, atol=1 / 255)
    np.testing.assert_allclose(cell_pixel(path, layout, 1, 2), grey, atol=1 / 255)
    assert not np.allclose(cell_pixel(path, layout, 0, 1), grey, atol=0.05)


def test_non_finite_numbers_are_written(tmp_path: Path) -> None:
    alignment = make_alignment(["a", "b", "c"], ["x", "y"])
    alignment = altered(alignment, weights={(0, 0): np.nan, (1, 2): -np.inf})
    path = render_figure(alignment, tmp_path / "odd.svg", values=True)
    text = path.read_text(encoding="utf-8")
    assert "nan" in text and "\u2212inf" in text


def test_control_characters_in_labels_and_title_are_drawn_visibly(tmp_path: Path) -> None:
    alignment = make_alignment(["\x1b[31mred", "b"], ["x\u202ey", "</s>"])
    path = render_figure(alignment, tmp_path / "odd.svg", title="t\x1b]0;x\x07")
    text = path.read_text(encoding="utf-8")
    for shown in ["\\x1b[31mred", "x\\u202ey", "t\\x1b]0;x\\x07"]:
        assert shown in text
    assert "\x1b" not in text and "\u202e" not in text


def test_options_and_keywords_are_one_api(korean: Alignment, tmp_path: Path) -> None:
    by_keywords = render_figure(korean, tmp_path / "a.png", scores=True, values=True, dpi=60)
    options = RenderOptions(values="scores", numbers=True, dpi=60)
    by_options = render_figure(korean, tmp_path / "b.png", options)
    assert by_keywords.read_bytes() == by_options.read_bytes()
    with pytest.raises(UsageError, match="not both"):
        render_figure(korean, tmp_path / "c.png", options, dpi=60)
    with pytest.raises(UsageError, match="unknown render option 'colour'"):
        FigureRenderer(colour="red")
    with pytest.raises(UsageError, match="scores must be True or False"):
        FigureRenderer(scores="yes")
    assert list(tmp_path.glob("c.png")) == []
