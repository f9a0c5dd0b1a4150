"""The HTML view: page load in headless Chromium, and the README screenshot.

    python bench/bench_html.py [--quick] [--screenshot sample_models/pictures/html-view.png]

1. A page of 2,000 generated sample sentences (bundled enko-additive, beam 1): file size, and in
   headless Chromium (Debian's chromium + chromium-driver, via selenium) the time until
   DOMContentLoaded, load, and the page's own "ready" mark (list drawn, first heatmap drawn,
   controls live), then the time from a click on the last sentence to its heatmap.
   Median of 5 fresh page loads (target: interactive ≤ 1.5 s).
2. ``--screenshot PATH``: the view of a few sentences (beam 3, three hypotheses, top-k and a
   step breakdown) with a cell's tooltip and a step's breakdown open, saved as PNG.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "sample_models" / "recipe" / "enko_corpus.py"
sys.path.insert(0, str(ROOT / "tests"))

from browser import missing_browser, open_page, start_browser, stop_browser  # noqa: E402


def sentences(n: int, seed: int = 11) -> list[str]:
    sys.path.insert(0, str(CORPUS.parent))
    import enko_corpus

    return [pair.english for pair in enko_corpus.generate(seed=seed, n=n)]


def build_page(folder: Path, n: int) -> Path:
    import torch

    import attnviz
    from attnviz.render.html import render_html

    torch.set_num_threads(1)
    translator = attnviz.load_model("enko-additive", device="cpu")
    groups = translator.translate_grouped(sentences(n), batch_size=64)
    return render_html(groups, folder / f"view-{n}.html", models=["enko-additive"])


def time_page(driver, path: Path, runs: int) -> dict[str, float]:
    from selenium.webdriver.common.by import By

    results: dict[str, list[float]] = {}
    for _ in range(runs):
        driver.get("about:blank")
        timings = open_page(driver, path)
        driver.execute_script("document.getElementById('list').scrollTop = 1e9")
        time.sleep(0.2)
        rows = driver.find_elements(By.CSS_SELECTOR, "#list .row")
        last = max(rows, key=lambda r: int(r.get_attribute("data-id")))
        clicked = driver.execute_script(
            "const t0 = performance.now(); arguments[0].click();return performance.now() - t0;",
            last,
        )
        for key, value in {**timings, "click_to_heatmap": clicked}.items():
            results.setdefault(key, []).append(float(value))
    return {key: statistics.median(values) for key, values in results.items()}


def screenshot(driver, folder: Path, target: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    import attnviz
    from attnviz.explain import explain_steps
    from attnviz.render.html import render_html

    translator = attnviz.load_model("enko-additive", device="cpu")
    texts = [
        "the boy ate an apple .",
        "did the cat sleep ?",
        "my friend drinks water every day .",
        "the girl reads a book in the park .",
        "a dog runs in the park .",
    ]
    groups = translator.translate_grouped(texts, beam_size=3, nbest=3)
    explained = [
        [explain_steps(translator, text, forced_tokens=h.tgt_tokens) for h in group]
        for text, group in zip(texts, groups, strict=True)
    ]
    for group, steps in zip(groups, explained, strict=True):
        for alignment, per_step in zip(group, steps, strict=True):
            alignment.meta["topk"] = [[list(pair) for pair in s.topk] for s in per_step]
    path = render_html(
        groups, folder / "shot.html", explanations=explained, models=["enko-additive"]
    )
    driver.set_window_size(1400, 860)
    open_page(driver, path)
    driver.find_element(By.CSS_SELECTOR, 'th.rowhead[data-i="1"]').click()
    driver.execute_script("document.getElementById('detail').scrollTop = 0")
    cell = driver.find_element(By.CSS_SELECTOR, 'td.cell[data-i="1"][data-j="5"]')
    ActionChains(driver).move_to_element(cell).perform()
    time.sleep(0.3)
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target))
    print(f"screenshot: {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 sentences, 2 runs")
    parser.add_argument("--screenshot", type=Path, help="also save the README screenshot here")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        sys.exit(f"bench_html: {reason}")
    n, runs = (200, 2) if args.quick else (2000, 5)
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-html-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        page = build_page(folder, n)
        built = time.perf_counter() - start
        size = page.stat().st_size
        driver = start_browser()
        try:
            timings = time_page(driver, page, runs)
            if args.screenshot:
                screenshot(driver, folder, args.screenshot)
        finally:
            stop_browser(driver)
    print(f"page of {n} sentences: {size / 1e6:.2f} MB, built in {built:.2f} s (decoding included)")
    print(
        f"headless Chromium, median of {runs} loads: "
        f"DOMContentLoaded {timings['dom_content_loaded']:.0f} ms, "
        f"load {timings['load']:.0f} ms, interactive {timings['interactive']:.0f} ms, "
        f"click to heatmap {timings['click_to_heatmap']:.1f} ms"
    )


if __name__ == "__main__":
    main()
