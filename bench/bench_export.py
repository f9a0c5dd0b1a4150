"""Batch export throughput, figure rendering and memory.

    python bench/bench_export.py [--quick]

1. `attnviz export` of 2,000 generated sample sentences at beam 1 and beam 5, with and without
   PNG figures: sentences/s (decoding runs with torch.set_num_threads(2)).
2. Figures of the same 200 alignments: export's renderer pool vs a naive loop of
   plt.subplots + imshow + savefig per alignment (target ≥ 3× faster, ≥ 25 PNG/s).
3. Peak RSS of an export of 20,000 sentences vs 2,000, each in a fresh process
   (target ratio ≤ 1.15).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "sample_models" / "recipe" / "enko_corpus.py"


def sentences(n: int, seed: int = 11) -> list[str]:
    sys.path.insert(0, str(CORPUS.parent))
    import enko_corpus

    return [pair.english for pair in enko_corpus.generate(seed=seed, n=n)]


def write_input(folder: Path, n: int) -> Path:
    path = folder / f"input-{n}.txt"
    path.write_text("\n".join(sentences(n)) + "\n", encoding="utf-8")
    return path


def run_export(input_path: Path, out: Path, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = ["attnviz", "export", str(input_path), "--out", str(out), "--device", "cpu", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def peak_rss(input_path: Path, out: Path) -> int:
    """Peak RSS (KiB) of one export run in a fresh process, figure workers excluded."""
    shutil.rmtree(out, ignore_errors=True)
    code = (
        "import resource, sys\n"
        "from attnviz.cli import app\n"
        "try:\n"
        f"    app(['export', {str(input_path)!r}, '--out', {str(out)!r}, '--device', 'cpu'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return int(result.stderr.strip().splitlines()[-1])


def figure_race(folder: Path, jsonl: Path, count: int = 200) -> tuple[float, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnviz.alignment import Alignment
    from attnviz.export import ExportOptions
    from attnviz.export.figures import FigurePool

    lines = jsonl.read_text(encoding="utf-8").splitlines()[:count]
    alignments = [Alignment.from_json(line).to_words() for line in lines]

    import warnings

    # the naive baseline has no CJK font: silence its missing-glyph warnings
    warnings.filterwarnings("ignore", message="Glyph .* missing")
    naive_dir = folder / "naive"
    naive_dir.mkdir(exist_ok=True)
    start = time.perf_counter()
    for index, alignment in enumerate(alignments):
        fig, ax = plt.subplots()
        image = ax.imshow(alignment.weights, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(alignment.src_tokens)), alignment.src_tokens, rotation=90)
        ax.set_yticks(range(len(alignment.tgt_tokens)), alignment.tgt_tokens)
        fig.colorbar(image)
        fig.savefig(naive_dir / f"{index}.png", dpi=100)
        plt.close(fig)
    naive = time.perf_counter() - start

    ours_dir = folder / "ours"
    ours_dir.mkdir(exist_ok=True)
    pool = FigurePool(ExportOptions(figures="png", workers=2, dpi=100))
    try:
        pool.submit(alignments[0], ours_dir / "warm.png")  # start the workers
        pool.wait()
        start = time.perf_counter()
        for index, alignment in enumerate(alignments):
            pool.submit(alignment, ours_dir / f"{index}.png")
        pool.wait()
        ours = time.perf_counter() - start
    finally:
        pool.close()
    return count / naive, count / ours


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    os.environ["OMP_NUM_THREADS"] = "2"
    reps = 1 if args.quick else 3
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = write_input(folder, 2000)
        for label, extra in (
            ("beam 1", []),
            ("beam 5", ["--beam", "5"]),
            ("beam 1 + png figures", ["--figures", "png"]),
            ("beam 5 + png figures", ["--beam", "5", "--figures", "png"]),
        ):
            seconds = statistics.median(
                run_export(small, folder / "out", *extra) for _ in range(reps)
            )
            results[label] = round(2000 / seconds, 1)
            print(f"export 2,000 sentences, {label:22s} {2000 / seconds:7.1f} sentences/s")

        run_export(small, folder / "words", "--words")
        naive, ours = figure_race(folder, folder / "words" / "alignments.jsonl")
        results["figures naive PNG/s"] = round(naive, 1)
        results["figures export PNG/s"] = round(ours, 1)
        print(
            f"figures, 200 alignments: naive {naive:.1f} PNG/s, export pool {ours:.1f} PNG/s, "
            f"ratio {ours / naive:.2f}x"
        )

        big = write_input(folder, 20000)
        rss_small = peak_rss(small, folder / "rss-small")
        rss_big = peak_rss(big, folder / "rss-big")
        results["peak RSS 2k KiB"] = rss_small
        results["peak RSS 20k KiB"] = rss_big
        print(
            f"peak RSS: 2,000 sentences {rss_small / 1024:.0f} MiB, 20,000 sentences "
            f"{rss_big / 1024:.0f} MiB, ratio {rss_big / rss_small:.3f}"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
