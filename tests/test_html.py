"""The HTML view: the file itself (self-contained, escaped, atomic) and, in headless Chromium,
what a person sees: the grid, tooltips, hypotheses, sorting, search, words, the compare view."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser import missing_browser, open_page, start_browser, stop_browser

from attnviz.alignment import Alignment
from attnviz.render.html import HtmlPage, read_page, render_html, script_json

# -- data -------------------------------------------------------------------------------------


def softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_alignment(
    src: list[str],
    tgt: list[str],
    *,
    seed: int = 0,
    rank: int = 0,
    score: float | None = None,
    topk: bool = False,
    diagnostics: dict | None = None,
    source: str | None = None,
    translation: str | None = None,
) -> Alignment:
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 3, size=(len(tgt), len(src)))
    logprobs = -rng.random(len(tgt))
    meta: dict = {}
    if topk:
        meta["topk"] = [
            [[tok, round(float(np.exp(lp)), 5)], [f"alt{t}a", 0.0625], [f"alt{t}b", 0.03125]]
            for t, (tok, lp) in enumerate(zip(tgt, logprobs, strict=True))
        ]
    if diagnostics is not None:
        meta["diagnostics"] = diagnostics
    return Alignment(
        source=source if source is not None else "".join(src).replace("▁", " ").strip(),
        translation=translation if translation is not None else " ".join(tgt),
        src_tokens=src,
        tgt_tokens=tgt,
        weights=softmax_rows(scores),
        scores=scores,
        token_logprobs=logprobs,
        score=score if score is not None else float(logprobs.mean()),
        rank=rank,
        meta=meta,
    )


SRC = ["▁the", "▁boy", "▁at", "e", "▁an", "▁apple", "▁.", "</s>"]
TGT = ["▁소년이", "▁사과", "를", "▁먹었다", "▁.", "</s>"]
TGT2 = ["▁소년은", "▁사과를", "▁먹었다", "</s>"]


def sentence_groups() -> list[list[Alignment]]:
    """Three sentences; the first with three hypotheses and top-k, scores -0.5, -0.1, -0.9."""
    first = [
        make_alignment(
            SRC,
            TGT,
            seed=1,
            rank=0,
            score=-0.5,
            topk=True,
            diagnostics={"entropy": 0.7, "cdp": -0.2},
        ),
        make_alignment(SRC, TGT2, seed=2, rank=1, score=-0.8, topk=True),
        make_alignment(SRC, [*TGT[:3], "</s>"], seed=3, rank=2, score=-1.2, topk=True),
    ]
    second = [
        make_alignment(
            ["▁did", "▁the", "▁cat", "▁sleep", "▁?", "</s>"],
            ["▁고양이가", "▁잤니", "▁?", "</s>"],
            seed=4,
            score=-0.1,
            diagnostics={"entropy": 0.2, "cdp": -0.9},
        )
    ]
    third = [
        make_alignment(
            [
                "▁<script>",
                "alert(1)",
                "▁</script>",
                "▁&amp;",
                "▁<img src=x onerror=alert(2)>",
                "</s>",
            ],
            ["▁<b>굵게</b>", "▁\u2028줄", "</s>"],
            seed=5,
            score=-0.9,
            diagnostics={"entropy": 1.5, "cdp": -0.5},
            source="<script>window.pwned=1</script> & </script><img src=x onerror=window.pwned=2>",
            translation="<b>굵게</b> \u2028줄",
        )
    ]
    return [first, second, third]


# -- the file ---------------------------------------------------------------------------------


def page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    match = re.search(
        r'<script type="application/json" id="attnviz-data">(.*?)</script>', text, re.S
    )
    assert match, "no data element"
    return json.loads(match.group(1))


def test_script_json_escapes_what_could_end_the_element():
    text = script_json({"t": "</script><!-- & \u2028 \u2029 >"})
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in text
    assert json.loads(text) == {"t": "</script><!-- & \u2028 \u2029 >"}


def test_page_is_self_contained_and_its_data_round_trips(tmp_path):
    groups = sentence_groups()
    path = render_html(groups, tmp_path / "view.html", title="<i>title</i>")
    text = path.read_text(encoding="utf-8")
    # no network: nothing fetched from anywhere, and the policy forbids it
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "default-src 'none'" in text
    assert "<title>&lt;i&gt;title&lt;/i&gt;</title>" in text
    # exactly the page's own elements: a token cannot open or close one
    assert text.count("<script") == 2 and text.count("</script>") == 2
    # what was written is read back exactly: tokens, matrices, scores, ranks, meta
    back = read_page(path)
    assert [s.index for s in back] == [0, 1, 2]
    for group, sentence in zip(groups, back, strict=True):
        assert sentence.source == group[0].source and sentence.error is None
        assert list(sentence.alignments) == group
        assert sentence.compare is None
    assert back[0].alignments[0].meta["diagnostics"] == {"entropy": 0.7, "cdp": -0.2}
    assert back[0].alignments[0].meta["topk"][0][1] == ["alt0a", 0.0625]


def test_records_from_an_export_are_accepted(tmp_path):
    best, second, _ = sentence_groups()[0]
    record = {"id": 7, **best.to_dict(), "nbest": [second.to_dict()]}
    failed = {"id": 8, "source": "bad line", "error": "line 9: not UTF-8"}
    page = HtmlPage()
    entries = [json.loads(page.sentence(7, record)[:-2]), json.loads(page.sentence(8, failed)[:-2])]
    assert [h["tgt"] for h in entries[0]["hyps"]] == [TGT, TGT2]
    assert entries[1] == {"id": 8, "source": "bad line", "error": "line 9: not UTF-8"}


def test_values_that_are_not_finite_survive(tmp_path):
    alignment = make_alignment(SRC[:3], TGT[:2], score=math.nan)
    scores = alignment.scores.copy()
    scores[0, 1], scores[1, 2] = np.nan, -np.inf
    broken = Alignment(**{**alignment.__dict__, "scores": scores})
    path = render_html([[broken]], tmp_path / "nan.html")
    assert page_data(path)["sentences"][0]["hyps"][0]["score"] is None
    back = read_page(path)[0].alignments[0]
    assert back.tgt_tokens == broken.tgt_tokens and np.array_equal(back.weights, broken.weights)
    assert np.array_equal(back.scores, broken.scores, equal_nan=True)
    assert math.isnan(back.score) and math.isnan(back.scores[0, 1])
    assert back.scores[1, 2] == -np.inf


def test_compared_model_and_failed_lines_read_back(tmp_path):
    groups = sentence_groups()[:2]
    other = [[make_alignment(SRC, TGT, seed=9)], [make_alignment(SRC[:2], TGT[:1], seed=8)]]
    failed = {"id": 2, "source": "x", "error": "line 3: too long"}
    path = render_html([*groups, failed], tmp_path / "cmp.html", compare=[*other, other[0]])
    back = read_page(path)
    assert [list(s.compare) for s in back[:2]] == [
        [Alignment(**{**a.__dict__, "source": g[0].source}) for a in o]
        for o, g in zip(other, groups, strict=True)
    ]
    assert back[2].error == "line 3: too long" and back[2].alignments == ()


def test_reading_something_else_is_one_clear_error(tmp_path):
    from attnviz.errors import InputError

    (tmp_path / "plain.html").write_text("<html>hello</html>", encoding="utf-8")
    with pytest.raises(InputError, match="not an attnviz HTML page"):
        read_page(tmp_path / "plain.html")
    path = render_html(sentence_groups(), tmp_path / "view.html")
    damaged = path.read_text(encoding="utf-8").replace('"w":"', '"w":"!!', 1)
    path.write_text(damaged, encoding="utf-8")
    with pytest.raises(InputError, match="damaged"):
        read_page(path)


def test_writing_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "view.html"
    path.write_text("old page", encoding="utf-8")
    groups = sentence_groups()

    class Boom(Exception):
        pass

    def explode(*args, **kwargs):
        raise Boom

    monkeypatch.setattr(HtmlPage, "tail", explode)
    with pytest.raises(Boom):
        render_html(groups, path)
    assert path.read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.html"]
    monkeypatch.undo()
    render_html(groups, path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.html"]


def test_mismatched_inputs_are_refused(tmp_path):
    groups = sentence_groups()
    with pytest.raises(ValueError, match="2 compared sentences for 3 sentences"):
        render_html(groups, tmp_path / "x.html", compare=groups[:2])
    assert not (tmp_path / "x.html").exists()


# -- in the browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    reason = missing_browser()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the HTML view's browser tests need a browser under CI: {reason}")
        print(f"\nskipping browser tests: {reason}")
        pytest.skip(reason)
    browser = start_browser()
    yield browser
    stop_browser(browser)


def by_css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def hover(driver, element) -> str:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).perform()
    tooltip = by_css(driver, "#tooltip")[0]
    assert tooltip.is_displayed()
    return tooltip.text


def click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def table(driver, name="main"):
    found = by_css(driver, f'table.heatmap[data-name="{name}"]')
    assert len(found) == 1, f"expected one {name!r} heatmap, found {len(found)}"
    return found[0]


def header_tokens(table_element):
    from selenium.webdriver.common.by import By

    cols = [th.text for th in table_element.find_elements(By.CSS_SELECTOR, "th.col")]
    rows = [th.text for th in table_element.find_elements(By.CSS_SELECTOR, "th.rowhead")]
    return cols, rows


def cell(table_element, i, j):
    from selenium.webdriver.common.by import By

    return table_element.find_element(By.CSS_SELECTOR, f'td.cell[data-i="{i}"][data-j="{j}"]')


def list_ids(driver) -> list[int]:
    """Sentence ids of the listed rows, top to bottom (read in one go: the list redraws)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#list .row')]"
        ".sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))"
        ".map(r => Number(r.dataset.id));"
    )


def wait_for(driver, condition, timeout=10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition())


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "view.html"
    render_html(sentence_groups(), path, models=["model-a"])
    return path


@pytest.fixture
def page(driver, view):
    open_page(driver, view)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    return driver


def test_grid_shows_every_token_and_cell(page):
    best = sentence_groups()[0][0]
    heatmap = table(page)
    cols, rows = header_tokens(heatmap)
    assert cols == best.src_tokens
    assert rows == best.tgt_tokens
    assert len(by_css(page, 'table.heatmap[data-name="main"] td.cell')) == len(TGT) * len(SRC)
    # the row maximum is marked, and darker cells carry larger weights
    for i in range(len(TGT)):
        marked = [int(td.get_attribute("data-j")) for td in by_css(page, f'td.max[data-i="{i}"]')]
        assert marked == [int(np.argmax(best.weights[i]))]


def test_cell_tooltip_names_tokens_weight_and_score(page):
    best = sentence_groups()[0][0]
    for i, j in [(0, 0), (2, 5), (5, 7)]:
        text = hover(page, cell(table(page), i, j))
        assert f"source {best.src_tokens[j]}" in text
        assert f"target {best.tgt_tokens[i]}" in text
        assert f"weight {best.weights[i, j]:.4f}" in text
        assert f"raw score {best.scores[i, j]:.4f}" in text


def test_row_shows_log_probability_and_alternatives(page):
    best = sentence_groups()[0][0]
    row = by_css(page, 'table.heatmap[data-name="main"] th.rowhead[data-i="1"]')[0]
    text = hover(page, row)
    assert f"log-prob {best.token_logprobs[1]:.4f}" in text
    assert f"p = {math.exp(best.token_logprobs[1]):.4f}" in text
    assert "alt1a 0.0625" in text and "alt1b 0.0313" in text
    click(page, row)
    panel = by_css(page, "#step-panel")[0].text
    assert "step 1: ▁사과" in panel and "alt1a 0.0625" in panel
    assert "no step breakdown stored" in panel


def test_switching_hypotheses(page):
    groups = sentence_groups()[0]
    tabs = by_css(page, ".hyp-tab")
    assert [t.text for t in tabs] == ["#1 -0.500", "#2 -0.800", "#3 -1.200"]
    click(page, tabs[1])
    cols, rows = header_tokens(table(page))
    assert rows == TGT2 and cols == SRC
    assert "hypothesis 2 of 3" in by_css(page, ".sentence-head")[0].text
    text = hover(page, cell(table(page), 1, 5))
    assert f"weight {groups[1].weights[1, 5]:.4f}" in text
    click(page, by_css(page, ".hyp-tab")[2])
    assert header_tokens(table(page))[1] == groups[2].tgt_tokens


def test_sorting_by_score_and_by_diagnostics(page):
    from selenium.webdriver.support.ui import Select

    assert list_ids(page) == [0, 1, 2]
    sort = Select(by_css(page, "#sort-key")[0])
    assert [o.get_attribute("value") for o in sort.options] == [
        "id",
        "score",
        "length",
        "diag:cdp",
        "diag:entropy",
    ]
    sort.select_by_value("score")  # best first: -0.1, -0.5, -0.9
    assert list_ids(page) == [1, 0, 2]
    click(page, by_css(page, "#sort-dir")[0])
    assert list_ids(page) == [2, 0, 1]
    sort.select_by_value("diag:entropy")  # largest first: 1.5, 0.7, 0.2
    assert list_ids(page) == [2, 0, 1]
    assert "entropy 1.500" in by_css(page, '#list .row[data-id="2"]')[0].text
    sort.select_by_value("diag:cdp")  # largest first: -0.2, -0.5, -0.9
    assert list_ids(page) == [0, 2, 1]


def test_search_filters_the_list(page):
    box = by_css(page, "#search")[0]
    box.send_keys("고양이")
    wait_for(page, lambda: by_css(page, "#list-count")[0].text == "1 of 3 sentences")
    assert list_ids(page) == [1]
    click(page, by_css(page, "#list .row")[0])
    assert header_tokens(table(page))[1] == ["▁고양이가", "▁잤니", "▁?", "</s>"]
    box.clear()
    box.send_keys("NO SUCH THING")
    wait_for(page, lambda: by_css(page, "#list-count")[0].text == "0 of 3 sentences")
    assert list_ids(page) == []


def test_tokens_that_look_like_markup_show_as_text(page):
    row = by_css(page, '#list .row[data-id="2"]')[0]
    click(page, row)
    third = sentence_groups()[2][0]
    cols, rows = header_tokens(table(page))
    assert cols == third.src_tokens
    assert rows[0] == "▁<b>굵게</b>"
    assert third.source in by_css(page, ".sentence-head")[0].text
    # nothing was parsed as markup or run
    assert page.execute_script("return window.pwned === undefined")
    assert by_css(page, "#detail img, #list img, #detail b, #detail script") == []
    text = hover(page, cell(table(page), 0, 4))
    assert "source ▁<img src=x onerror=alert(2)>" in text


def test_words_level_matches_the_library(page):
    words = sentence_groups()[0][0].to_words()
    click(page, by_css(page, '.seg[data-name="level"] button[data-value="words"]')[0])
    cols, rows = header_tokens(table(page))
    assert cols == words.src_tokens == ["the", "boy", "ate", "an", "apple", ".", "</s>"]
    assert rows == words.tgt_tokens
    for i in range(words.shape[0]):
        for j in (0, 2, words.shape[1] - 1):
            text = hover(page, cell(table(page), i, j))
            shown = float(re.search(r"weight (-?\d+\.\d+)", text).group(1))
            score = float(re.search(r"raw score (-?\d+\.\d+)", text).group(1))
            assert shown == pytest.approx(words.weights[i, j], abs=1e-4)
            assert score == pytest.approx(words.scores[i, j], abs=1e-3)
    # a word row lists the alternatives of each of its pieces
    row = by_css(page, 'table.heatmap[data-name="main"] th.rowhead[data-i="1"]')[0]
    text = hover(page, row)
    assert f"log-prob {words.token_logprobs[1]:.4f}" in text
    assert "\n▁사과: ▁사과 " in text and "alt1a 0.0625" in text
    assert "\n를: 를 " in text and "alt2a 0.0625" in text


def test_raw_scores_use_a_diverging_scale(page):
    best = sentence_groups()[0][0]
    click(page, by_css(page, '.seg[data-name="mode"] button[data-value="scores"]')[0])
    legend = by_css(page, ".legend")[0].text
    limit = np.abs(best.scores).max()
    assert "raw score (pre-softmax)" in legend
    assert f"{-limit:.2f}" in legend and f"{limit:.2f}" in legend
    i, j = np.unravel_index(np.argmax(best.scores), best.scores.shape)
    assert by_css(page, "td.max")  # still marks each row's maximum
    marked = by_css(page, f'td.max[data-i="{i}"]')[0]
    assert int(marked.get_attribute("data-j")) == j


def test_compare_view_side_by_side_and_difference(driver, tmp_path):
    a = sentence_groups()[:2]
    b = [
        [make_alignment(SRC, TGT, seed=11)],  # same tokens: a difference heatmap
        [make_alignment(SRC[:3], ["▁다른", "</s>"], seed=12)],  # different tokens
    ]
    path = render_html(a, tmp_path / "cmp.html", compare=b, models=["left", "right"])
    open_page(driver, path)
    assert header_tokens(table(driver, "left"))[1] == TGT
    assert header_tokens(table(driver, "right"))[1] == TGT
    diff = table(driver, "diff")
    assert "left − right" in by_css(driver, ".pane.diff h3")[0].text
    for i, j in [(0, 0), (3, 4)]:
        text = hover(driver, cell(diff, i, j))
        expected = a[0][0].weights[i, j] - b[0][0].weights[i, j]
        assert f"difference {expected:.4f}" in text
        assert f"left weight {a[0][0].weights[i, j]:.4f}" in text
        assert f"right weight {b[0][0].weights[i, j]:.4f}" in text
    click(driver, by_css(driver, '#list .row[data-id="1"]')[0])
    assert header_tokens(table(driver, "right"))[0] == SRC[:3]
    assert by_css(driver, 'table.heatmap[data-name="diff"]') == []
    assert "tokens differ" in by_css(driver, ".pane.diff")[0].text


def test_clicking_a_row_opens_the_step_breakdown(driver, tmp_path, spm_models):
    from conftest import make_checkpoint

    from attnviz.explain import explain_steps
    from attnviz.translator import Translator

    translator = Translator(make_checkpoint(spm_models, attention="additive"), "cpu")
    text = "the boy ate an apple ."
    hyps = translator.translate(text, beam_size=2, nbest=2)
    explained = [explain_steps(translator, text, forced_tokens=h.tgt_tokens) for h in hyps]
    path = render_html([hyps], tmp_path / "explain.html", explanations=[explained])
    open_page(driver, path)
    step = explained[0][1]
    click(driver, by_css(driver, 'table.heatmap[data-name="main"] th.rowhead[data-i="1"]')[0])
    panel = by_css(driver, "#explain-panel")[0].text
    assert "score_j = vᵀ tanh(W q + U h_j)" in panel
    assert "[B,1,Q]→[B,1,D]" in panel and f"[1,1,{step.sizes['D']}]" in panel
    for j in range(step.sizes["N"]):
        assert f"{step.scores[j]:.4f}" in panel and f"{step.weights[j]:.4f}" in panel
    assert "…" in panel  # vectors are cut to their first dimensions
    # the second hypothesis has its own breakdown
    click(driver, by_css(driver, ".hyp-tab")[1])
    click(driver, by_css(driver, 'table.heatmap[data-name="main"] th.rowhead[data-i="0"]')[0])
    panel = by_css(driver, "#explain-panel")[0].text
    assert f"{explained[1][0].scores[0]:.4f}" in panel


def test_two_thousand_sentences_stay_responsive(driver, tmp_path, capsys):
    """Lazy list: only the rows in view exist. Timings are printed, not asserted."""
    rng = np.random.default_rng(0)
    words = ["▁the", "▁boy", "▁ate", "▁an", "▁apple", "▁girl", "▁reads", "▁book", "▁cat"]
    groups = []
    for n in range(2000):
        src = [*rng.choice(words, size=int(rng.integers(4, 14))).tolist(), "</s>"]
        tgt = [*[f"▁w{int(k)}" for k in rng.integers(0, 50, size=len(src))], "</s>"]
        groups.append([make_alignment(src, tgt, seed=n, source=f"sentence {n}")])
    path = render_html(groups, tmp_path / "big.html")
    timings = open_page(driver, path)
    rows = by_css(driver, "#list .row")
    assert 0 < len(rows) < 100
    assert by_css(driver, "#list-count")[0].text == "2000 of 2000 sentences"
    driver.execute_script("document.getElementById('list').scrollTop = 1e9")
    wait_for(driver, lambda: 1999 in list_ids(driver))
    assert len(by_css(driver, "#list .row")) < 100
    start = time.perf_counter()
    click(driver, by_css(driver, '#list .row[data-id="1999"]')[0])
    assert header_tokens(table(driver))[1] == groups[1999][0].tgt_tokens
    click_ms = (time.perf_counter() - start) * 1000
    by_css(driver, "#search")[0].send_keys("sentence 1234")
    wait_for(driver, lambda: by_css(driver, "#list-count")[0].text == "1 of 2000 sentences")
    with capsys.disabled():
        print(
            f"\n2,000-sentence page ({path.stat().st_size / 1e6:.1f} MB): "
            f"DOMContentLoaded {timings['dom_content_loaded']:.0f} ms, "
            f"load {timings['load']:.0f} ms, interactive {timings['interactive']:.0f} ms; "
            f"click to heatmap {click_ms:.0f} ms (driver round trips included)"
        )


def test_page_requests_nothing_from_the_network(page):
    resources = page.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0


def test_arrow_keys_move_through_the_list(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(page).send_keys(Keys.ARROW_DOWN).perform()
    assert "#1" in by_css(page, ".sentence-head")[0].text
    assert by_css(page, "#list .row.selected")[0].get_attribute("data-id") == "1"
    ActionChains(page).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_UP).perform()
    assert by_css(page, "#list .row.selected")[0].get_attribute("data-id") == "1"


def test_empty_and_failed_sentences_are_listed_and_explained(driver, tmp_path):
    groups = [
        [Alignment.empty("   ")],
        {"id": 1, "source": "\ufffdbad", "error": "line 2: not valid UTF-8"},
        sentence_groups()[1],
    ]
    path = render_html(groups, tmp_path / "odd.html")
    open_page(driver, path)
    assert "nothing to draw" in by_css(driver, "#detail")[0].text
    click(driver, by_css(driver, "#list .row.error")[0])
    assert "line 2: not valid UTF-8" in by_css(driver, ".sentence-head")[0].text
    assert by_css(driver, "table.heatmap") == []
    click(driver, by_css(driver, '#list .row[data-id="2"]')[0])
    assert len(by_css(driver, "table.heatmap")) == 1
    click(driver, by_css(driver, '.seg[data-name="level"] button[data-value="words"]')[0])
    click(driver, by_css(driver, '#list .row[data-id="0"]')[0])
    assert "nothing to draw" in by_css(driver, "#detail")[0].text
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


# -- on the command line ------------------------------------------------------------------


def cli(args, **kwargs):
    from typer.testing import CliRunner

    from attnviz.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def test_html_command_stores_hypotheses_alternatives_and_step_breakdowns(
    tmp_path, checkpoint_path, spm_models
):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    out = tmp_path / "view.html"
    texts = ["the boy ate an apple .", "did the cat sleep ?"]
    base = ["--model", checkpoint_path, "--device", "cpu", "--out", out]
    result = cli(["html", *texts, *base, "--beam", "2", "--nbest", "2", "--topk", "3"])
    assert result.exit_code == 0, result.output
    translator = Translator(make_checkpoint(spm_models), "cpu")
    expected = translator.translate_grouped(texts, beam=2, nbest=2, topk=3)
    back = read_page(out)
    assert [list(s.alignments) for s in back] == expected
    data = [s for s in page_data(out)["sentences"] if s is not None]
    for sentence, group in zip(data, expected, strict=True):
        for hyp, alignment in zip(sentence["hyps"], group, strict=True):
            steps = hyp["explain"]
            assert [s["target"] for s in steps] == alignment.tgt_tokens
            np.testing.assert_allclose(
                [s["scores"] for s in steps], alignment.scores, rtol=1e-6, atol=1e-6
            )
            assert len(steps[0]["query"]) == 8  # --dims default
        entropy = group[0].diagnostics().entropy  # to sort the list by
        assert sentence["diag"]["entropy"] == pytest.approx(entropy, rel=1e-12)
    # an existing file is kept unless --force
    again = cli(["html", texts[0], *base])
    assert again.exit_code == 1 and "file exists; pass --force" in again.stderr
    assert len(read_page(out)) == 2
    forced = cli(["html", texts[0], *base, "--force", "--no-explain", "--words"])
    assert forced.exit_code == 0, forced.output
    assert len(read_page(out)) == 1
    assert page_data(out)["meta"]["level"] == "words"
    assert "explain" not in page_data(out)["sentences"][0]["hyps"][0]


def test_html_command_compares_two_models(tmp_path, checkpoint_path, spm_models):
    from conftest import make_checkpoint

    from attnviz.checkpoint import save_checkpoint

    other = tmp_path / "other.pt"
    save_checkpoint(make_checkpoint(spm_models, attention="general", seed=3), other)
    out = tmp_path / "cmp.html"
    result = cli(
        ["html", "the boy ate an apple .", "--model", checkpoint_path, "--compare-model", other,
         "--device", "cpu", "--out", out]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = page_data(out)
    assert data["meta"]["models"] == ["tiny", "other"]
    sentence = read_page(out)[0]
    assert sentence.compare is not None and len(sentence.compare) == 1
    forced = data["sentences"][0]["cmp_forced"]
    assert forced["tgt"] == list(sentence.alignments[0].tgt_tokens)  # B said A's translation


def test_export_html_holds_what_the_jsonl_holds(tmp_path, checkpoint_path):
    from attnviz.export import read_html, read_jsonl

    source = tmp_path / "input.txt"
    source.write_text("the boy ate an apple .\n\ndid the cat sleep ?\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli(
        ["export", source, "--out", out, "--model", checkpoint_path, "--device", "cpu",
         "--html", "--beam", "2", "--nbest", "2", "--topk", "2"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from_html = list(read_html(out / "view.html"))
    assert from_html == list(read_jsonl(out / "alignments.jsonl"))
    assert len(from_html) == 3 and len(from_html[0].alignments) == 2
    assert len(from_html[0].alignments[0].meta["topk"][0]) == 2


def test_export_html_page_opens(driver, tmp_path, checkpoint_path):
    source = tmp_path / "input.txt"
    source.write_text("the boy ate an apple .\nnot < script > & co\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli(
        ["export", source, "--out", out, "--model", checkpoint_path, "--device", "cpu", "--html"]
    )
    assert result.exit_code == 0, result.output
    open_page(driver, out / "view.html")
    assert by_css(driver, "#list-count")[0].text == "2 of 2 sentences"
    assert len(by_css(driver, "table.heatmap")) == 1
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_readme_teaching_snippet_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Teaching with attnviz", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["step"].sizes["D"] == 96 and namespace["step"].step == 1
    assert namespace["what_if"][0].translation.startswith("고양이가")
    assert len(namespace["what_if"][0].meta["topk"][0]) == 3
    back = read_page(tmp_path / "view.html")
    assert [list(s.alignments) for s in back] == namespace["groups"]


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["--dims", "0"], "--dims must be at least 1", 2),
        (["--topk", "99"], "topk must be between 0 and 50", 2),
        (["--out", "no/such/folder/view.html"], "does not exist", 1),
        (["--beam", "2", "--nbest", "3"], "nbest (3) cannot exceed the beam size (2)", 2),
    ],
)
def test_html_command_errors_are_one_line(tmp_path, checkpoint_path, args, fragment, code):
    base = ["html", "the boy ate an apple .", "--model", checkpoint_path, "--device", "cpu"]
    result = cli([*base, "--out", tmp_path / "view.html", *args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "view.html").exists()


def test_bpe_pieces_merge_into_words_as_the_library_merges_them(driver, tmp_path):
    bpe = Alignment(
        **{
            **make_alignment(
                ["the", "hou@@", "se", "is", "bi@@", "g@@", "ger", "</s>"],
                ["das", "Hau@@", "s", "</s>"],
                seed=21,
            ).__dict__,
            "word_rules": ("bpe", "bpe"),
        }
    )
    path = render_html([[bpe]], tmp_path / "bpe.html")
    assert read_page(path)[0].alignments[0] == bpe  # the rules travel with the data
    open_page(driver, path)
    click(driver, by_css(driver, '.seg[data-name="level"] button[data-value="words"]')[0])
    words = bpe.to_words()
    cols, rows = header_tokens(table(driver))
    assert cols == words.src_tokens == ["the", "house", "is", "bigger", "</s>"]
    assert rows == words.tgt_tokens == ["das", "Haus", "</s>"]
    for i, j in [(1, 1), (1, 3), (0, 0)]:
        text = hover(driver, cell(table(driver), i, j))
        shown = float(re.search(r"weight (-?\d+\.\d+)", text).group(1))
        assert shown == pytest.approx(words.weights[i, j], abs=1e-4)
