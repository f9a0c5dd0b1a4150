"""The HTML view: what it adds to an export, page load in headless Chromium, a screenshot.

    python bench/bench_html.py [--quick] [--screenshot sample_models/pictures/html-view.png]

1. `attnviz export` of 2,000 generated sample sentences (bundled enko-additive, beam 1) with
   and without --html, alternating, median of 3 runs each (target: --html adds ≤ 25 %).
2. That export's view.html (2,000 sentences) in headless Chromium (Debian's chromium +
   chromium-driver, via selenium): file size, the time until DOMContentLoaded, load, and the
   page's own "ready" mark (list drawn, first heatmap drawn, controls live), then the time from
   a click on the last sentence to its heatmap. Median of 5 fresh loads (target: interactive
   ≤ 1.5 s).
3. ``--screenshot PATH``: the view of a few sentences (beam 3, three hypotheses, top-k and a
   step breakdown) with a cell's tooltip and a step's breakdown open, saved as PNG.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
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


def run_export(input_path: Path, out: Path, *extra: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one export in a fresh process.

    CPU time is the fairer measure on a machine shared with other work."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "attnviz", "export", str(input_path), "--out", str(out)]
    command += ["--device", "cpu"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*command, *extra], check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_exports(folder: Path, n: int, runs: int) -> tuple[list, list, Path]:
    """(wall, cpu) medians of the export without and with --html, and the page written."""
    source = folder / f"input-{n}.txt"
    source.write_text("\n".join(sentences(n)) + "\n", encoding="utf-8")
    plain, html = [], []
    for _ in range(runs):
        plain.append(run_export(source, folder / "plain"))
        html.append(run_export(source, folder / "html", "--html"))
    medians = [[statistics.median(t[k] for t in times) for k in (0, 1)] for times in (plain, html)]
    return medians[0], medians[1], folder / "html" / "view.html"


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
    import torch
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    import attnviz
    from attnviz.explain import explain_steps
    from attnviz.render.html import render_html

    torch.set_num_threads(1)
    translator = attnviz.load_model("enko-additive", device="cpu")
    texts = [
        "the boy ate an apple .",
        "did the cat sleep ?",
        "my friend drinks water every day .",
        "the girl reads a book in the park .",
        "a dog runs in the park .",
    ]
    groups = translator.translate_grouped(texts, beam=3, nbest=3, topk=5)
    explained = [
        [explain_steps(translator, text, forced_tokens=h.tgt_tokens) for h in group]
        for text, group in zip(texts, groups, strict=True)
    ]
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
    n, runs, export_runs = (200, 2, 1) if args.quick else (2000, 5, 3)
    with tempfile.TemporaryDirectory(prefix="attnviz-bench-html-") as tmp:
        folder = Path(tmp)
        plain, html, page = time_exports(folder, n, export_runs)
        size = page.stat().st_size
        driver = start_browser()
        try:
            timings = time_page(driver, page, runs)
            if args.screenshot:
                screenshot(driver, folder, args.screenshot)
        finally:
            stop_browser(driver)
    for what, k in (("wall", 0), ("CPU", 1)):
        extra = 100 * (html[k] / plain[k] - 1)
        print(
            f"export of {n} sentences, median of {export_runs}, {what} time: "
            f"{plain[k]:.2f} s, with --html {html[k]:.2f} s ({extra:+.1f} %)"
        )
    print(
        f"view.html of {n} sentences ({size / 1e6:.2f} MB) in headless Chromium, median of "
        f"{runs} loads: DOMContentLoaded {timings['dom_content_loaded']:.0f} ms, "
        f"load {timings['load']:.0f} ms, interactive {timings['interactive']:.0f} ms, "
        f"click to heatmap {timings['click_to_heatmap']:.1f} ms"
    )


if __name__ == "__main__":
    main()
