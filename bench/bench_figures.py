"""How fast are heatmap figures written? FigureRenderer against a naive pyplot loop.

Usage:
    python bench/bench_figures.py [--count 200] [--repeats 3] [--dpi 100]

Both sides draw the same synthetic English -> Korean alignments (seeded, 5-20 tokens a
side) to PNG files in a temporary folder, in one process, with the same fonts. Prints the
median PNG/s of each over the repetitions and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # this script only: pyplot needs a backend, and no window may open

import matplotlib.pyplot as plt
import numpy as np

from attnviz.alignment import Alignment
from attnviz.fonts import font_families
from attnviz.render.figure import FigureRenderer

ENGLISH_PIECES = (
    "▁the ▁weather ▁is ▁very ▁nice ▁today ▁I ▁want ▁to ▁go ▁home ▁we ▁have ▁a "
    "▁meeting ▁tomorrow ▁morning ▁she ▁reads ▁book s ▁every ▁night ▁this "
    "▁restaurant ▁is ▁famous ▁for ▁its ▁kim chi ▁the ▁train ▁leaves ▁at ▁seven ▁o ' "
    "clock ▁please ▁call ▁me ▁later ▁students ▁study ▁hard ▁for ▁the ▁exam , . ?"
)
KOREAN_PIECES = (
    "▁오늘 은 ▁날씨 가 ▁매우 ▁좋 습니다 ▁저는 ▁집에 ▁가고 ▁싶어요 ▁우리는 "
    "▁내일 ▁아침 에 ▁회의 가 ▁있습니다 ▁그녀 는 ▁매일 ▁밤 ▁책을 ▁읽 는다 "
    "▁이 ▁식당 은 ▁김치 로 ▁유명 합니다 ▁기차 는 ▁일곱 ▁시에 ▁떠납니다 "
    "▁나중에 ▁전화 해 ▁주세요 ▁학생 들은 ▁시험 을 ▁위해 ▁열심히 ▁공부 한다 "
    ", . ?"
)
ENGLISH = ENGLISH_PIECES.split()
KOREAN = KOREAN_PIECES.split()


def make_alignments(count: int, seed: int = 0) -> list[Alignment]:
    """``count`` alignments with a roughly monotone, softmax-normalised attention."""
    rng = np.random.default_rng(seed)
    alignments = []
    for _ in range(count):
        n_source, n_target = rng.integers(5, 21, size=2)
        src_tokens = [*rng.choice(ENGLISH, n_source - 1), "</s>"]
        tgt_tokens = [*rng.choice(KOREAN, n_target - 1), "</s>"]
        scores = rng.normal(0.0, 1.5, (n_target, n_source)).astype(np.float32)  # [T, S]
        diagonal = (np.arange(n_target) * n_source / n_target).astype(int)
        scores[np.arange(n_target), diagonal] += 4.0
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        alignments.append(
            Alignment(
                source=" ".join(src_tokens),
                translation=" ".join(tgt_tokens),
                src_tokens=src_tokens,
                tgt_tokens=tgt_tokens,
                weights=weights,
                scores=scores,
                token_logprobs=np.zeros(n_target, np.float32),
                score=0.0,
            )
        )
    return alignments


def naive_loop(alignments: list[Alignment], folder: Path, dpi: int) -> None:
    """A new pyplot figure per alignment, as quick scripts usually do it."""
    families = font_families(None)
    for index, alignment in enumerate(alignments):
        n_target, n_source = alignment.shape
        fig, ax = plt.subplots()
        image = ax.imshow(alignment.weights, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n_source), alignment.src_tokens, rotation=90, fontfamily=families)
        ax.set_yticks(range(n_target), alignment.tgt_tokens, fontfamily=families)
        ax.xaxis.tick_top()
        fig.colorbar(image, ax=ax)
        fig.savefig(folder / f"naive-{index}.png", dpi=dpi)
        plt.close(fig)


def renderer_loop(alignments: list[Alignment], folder: Path, dpi: int) -> None:
    with FigureRenderer(dpi=dpi) as renderer:
        for index, alignment in enumerate(alignments):
            renderer.render(alignment, folder / f"renderer-{index}.png")


def figures_per_second(
    loop: Callable[[list[Alignment], Path, int], None],
    alignments: list[Alignment],
    dpi: int,
    repeats: int,
) -> float:
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            loop(alignments, Path(folder), dpi)
            rates.append(len(alignments) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="alignments per repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args()

    alignments = make_alignments(args.count)
    sizes = [alignment.shape for alignment in alignments]
    print(
        f"{args.count} alignments, {min(map(min, sizes))}-{max(map(max, sizes))} tokens a side, "
        f"dpi {args.dpi}, median of {args.repeats}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyplot's "too many open figures" and the like
        for loop in (naive_loop, renderer_loop):  # load fonts and warm caches first
            with tempfile.TemporaryDirectory() as folder:
                loop(alignments[:5], Path(folder), args.dpi)
        naive = figures_per_second(naive_loop, alignments, args.dpi, args.repeats)
        reused = figures_per_second(renderer_loop, alignments, args.dpi, args.repeats)
    print(f"naive pyplot loop: {naive:6.1f} PNG/s")
    print(f"FigureRenderer:    {reused:6.1f} PNG/s")
    print(f"ratio:             {reused / naive:6.2f}x")


if __name__ == "__main__":
    main()
