"""Batch export: throughput, batch size, decoding processes, the GPU, figures and memory.

    python bench/bench_export.py [--quick] [--only SECTION ...] [--model enko-additive]
    python bench/bench_export.py --device cuda        # the GPU against the CPU

Sections (all by default; sentences from the bundled corpus generator, the default CPU
threads, i.e. one):

- ``throughput``: ``attnviz export`` of 2,000 sentences at beam 1 and beam 5, with and
  without PNG figures: sentences/s (the process's whole wall time);
- ``batch``: decoding alone at batch sizes 16 to 512, beam 1 and 5, interleaved: sentences/s
  (what the default batch size was picked from);
- ``workers``: export of 20,000 sentences with ``--workers 1`` and ``--workers 2`` at beam 1
  and beam 5, interleaved, medians (target: 2 workers ≥ 1.7× one, on 2 free cores), with the
  bound a perfect split of the processing would give while start-up stays serial;
- ``figures``: 200 figures, export's renderer pool vs a naive pyplot loop (target ≥ 3×);
- ``memory``: peak RSS of an export of 20,000 sentences vs 2,000, each in a fresh process
  (target ratio ≤ 1.15);
- ``device`` (only with ``--device cuda``): decoding 2,000 sentences at batch 256 on the GPU
  and on the CPU (one thread), float32: sentences/s and the ratio.

The machine's load average is printed with the numbers: timings taken while other work runs
are noisy.
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
SECTIONS = ("throughput", "batch", "workers", "figures", "memory")


def sentences(n: int, seed: int = 11) -> list[str]:
    sys.path.insert(0, str(CORPUS.parent))
    import enko_corpus

    return [pair.english for pair in enko_corpus.generate(seed=seed, n=n)]


def write_input(folder: Path, n: int) -> Path:
    path = folder / f"input-{n}.txt"
    if not path.exists():
        path.write_text("\n".join(sentences(n)) + "\n", encoding="utf-8")
    return path


def attnviz(*args: str) -> list[str]:
    return [sys.executable, "-m", "attnviz", *args]


def run_export(input_path: Path, out: Path, model: str, *extra: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    command = attnviz("export", str(input_path), "--out", str(out), "--model", model, *extra)
    start = time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# -- sections ---------------------------------------------------------------------------------


def throughput(folder: Path, model: str, reps: int, results: dict) -> None:
    small = write_input(folder, 2000)
    for label, extra in (
        ("beam 1", []),
        ("beam 5", ["--beam", "5"]),
        ("beam 1 + png figures", ["--figures", "png"]),
        ("beam 5 + png figures", ["--beam", "5", "--figures", "png"]),
    ):
        seconds = statistics.median(
            run_export(small, folder / "out", model, "--device", "cpu", *extra) for _ in range(reps)
        )
        results[f"export {label}"] = round(2000 / seconds, 1)
        print(f"export 2,000 sentences, {label:22s} {2000 / seconds:7.1f} sentences/s ({load()})")


def _decode_timer(model: str, device: str, count: int):
    """A function timing the decoding of ``count`` sentences (tokenized once, sorted by
    length as export does) at a batch size and beam."""
    import torch

    from attnviz.decoding import beam_decode, greedy_decode
    from attnviz.families.base import pad_batch
    from attnviz.translator import load_model

    translator = load_model(model, device=device)
    ids = sorted((translator.encode_source(s) for s in sentences(count)), key=len)

    def timed(batch_size: int, beam: int) -> float:
        with torch.inference_mode():
            if device != "cpu":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for first in range(0, len(ids), batch_size):
                src, lengths = pad_batch(ids[first : first + batch_size], 0, translator.device)
                if beam == 1:
                    greedy_decode(translator.model, src, lengths)
                else:
                    beam_decode(translator.model, src, lengths, beam_size=beam)
            return time.perf_counter() - start  # results are on the host: nothing in flight

    return timed


def batch_sizes(model: str, reps: int, results: dict) -> None:
    import torch

    torch.set_num_threads(1)
    timed = _decode_timer(model, "cpu", 2000)
    sizes = [16, 32, 64, 128, 256, 512]
    for beam in (1, 5):
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for rep in range(max(reps, 2)):
            for size in sizes if rep % 2 == 0 else sizes[::-1]:
                times[size].append(timed(size, beam))
        rates = {size: 2000 / statistics.median(values) for size, values in times.items()}
        results[f"decode beam {beam} sentences/s by batch"] = {
            size: round(rate, 1) for size, rate in rates.items()
        }
        cells = "  ".join(f"{size}: {rate:6.0f}" for size, rate in rates.items())
        print(f"decode 2,000 sentences, beam {beam}, sentences/s by batch size: {cells} ({load()})")


def workers(folder: Path, model: str, reps: int, results: dict) -> None:
    big = write_input(folder, 20000)
    for beam in (1, 5):
        walls: dict[int, list[float]] = {1: [], 2: []}
        processing: dict[int, list[float]] = {1: [], 2: []}
        for rep in range(max(reps, 2)):
            for count in (1, 2) if rep % 2 == 0 else (2, 1):
                out = folder / f"workers-{count}"
                extra = ("--device", "cpu", "--workers", str(count), "--beam", str(beam))
                walls[count].append(run_export(big, out, model, *extra))
                manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
                processing[count].append(float(manifest["seconds"]))
        one, two = (statistics.median(walls[count]) for count in (1, 2))
        work_one, work_two = (statistics.median(processing[count]) for count in (1, 2))
        # what a perfect split of the processing would give, the start-up left serial
        bound = one / (one - work_one + work_one / 2)
        key = f"export 20k beam {beam}"
        results[f"{key} workers 1 s"] = round(one, 2)
        results[f"{key} workers 2 s"] = round(two, 2)
        results[f"{key} workers 2 speed-up (wall)"] = round(one / two, 2)
        results[f"{key} workers 2 speed-up (processing)"] = round(work_one / work_two, 2)
        results[f"{key} workers 2 speed-up bound (wall)"] = round(bound, 2)
        same = all(
            (folder / "workers-1" / name).read_bytes() == (folder / "workers-2" / name).read_bytes()
            for name in ("alignments.jsonl", "alignments.pharaoh")
        )
        print(
            f"export 20,000 sentences, beam {beam}: --workers 1 {one:.2f} s wall "
            f"({work_one:.2f} s processing), --workers 2 {two:.2f} s ({work_two:.2f} s): "
            f"speed-up {one / two:.2f}x wall (at most {bound:.2f}x with the start-up serial), "
            f"{work_one / work_two:.2f}x processing (target ≥ 1.7x on 2 free cores); "
            f"same bytes: {same}; {os.cpu_count()} cores, {load()}"
        )


def figure_race(folder: Path, model: str, results: dict, count: int = 200) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnviz.alignment import Alignment
    from attnviz.export import ExportOptions
    from attnviz.export.figures import FigurePool

    small = write_input(folder, 2000)
    run_export(small, folder / "words", model, "--device", "cpu", "--words")
    lines = (folder / "words" / "alignments.jsonl").read_text(encoding="utf-8").splitlines()
    alignments = [Alignment.from_json(line).to_words() for line in lines[:count]]

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
    naive = count / (time.perf_counter() - start)

    ours_dir = folder / "ours"
    ours_dir.mkdir(exist_ok=True)
    pool = FigurePool(ExportOptions(figures="png", figure_workers=2, dpi=100))
    try:
        pool.submit(alignments[0], ours_dir / "warm.png")  # start the workers
        pool.wait()
        start = time.perf_counter()
        for index, alignment in enumerate(alignments):
            pool.submit(alignment, ours_dir / f"{index}.png")
        pool.wait()
        ours = count / (time.perf_counter() - start)
    finally:
        pool.close()
    results["figures naive PNG/s"] = round(naive, 1)
    results["figures export PNG/s"] = round(ours, 1)
    print(
        f"figures, {count} alignments: naive {naive:.1f} PNG/s, export pool {ours:.1f} PNG/s, "
        f"ratio {ours / naive:.2f}x ({load()})"
    )


def peak_rss(input_path: Path, out: Path, model: str) -> int:
    """Peak RSS (KiB) of one export run in a fresh process, figure workers excluded."""
    shutil.rmtree(out, ignore_errors=True)
    arguments = ["export", str(input_path), "--out", str(out), "--model", model, "--device", "cpu"]
    code = (
        "import resource, sys\n"
        "from attnviz.cli import app\n"
        "try:\n"
        f"    app({arguments!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return int(result.stderr.strip().splitlines()[-1])


def memory(folder: Path, model: str, results: dict) -> None:
    small, big = write_input(folder, 2000), write_input(folder, 20000)
    rss_small = peak_rss(small, folder / "rss-small", model)
    rss_big = peak_rss(big, folder / "rss-big", model)
    results["peak RSS 2k KiB"] = rss_small
    results["peak RSS 20k KiB"] = rss_big
    print(
        f"peak RSS: 2,000 sentences {rss_small / 1024:.0f} MiB, 20,000 sentences "
        f"{rss_big / 1024:.0f} MiB, ratio {rss_big / rss_small:.3f} (target ≤ 1.15)"
    )


def device(model: str, name: str, reps: int, results: dict) -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"--device {name}: no CUDA device on this machine; nothing measured")
        return 1
    torch.set_num_threads(1)
    rates = {}
    for where in (name, "cpu"):
        timed = _decode_timer(model, where, 2000)
        timed(256, 1)  # warm up (kernels, allocator)
        for beam in (1, 5):
            seconds = statistics.median(timed(256, beam) for _ in range(max(reps, 2)))
            rates[(where, beam)] = 2000 / seconds
    gpu = torch.cuda.get_device_name(torch.device(name))
    for beam in (1, 5):
        ratio = rates[(name, beam)] / rates[("cpu", beam)]
        results[f"{name} beam {beam} sentences/s"] = round(rates[(name, beam)], 1)
        results[f"cpu beam {beam} sentences/s"] = round(rates[("cpu", beam)], 1)
        print(
            f"decode 2,000 sentences, batch 256, beam {beam}, float32: {gpu} "
            f"{rates[(name, beam)]:.0f} sentences/s, CPU (1 thread) {rates[('cpu', beam)]:.0f} "
            f"sentences/s, {ratio:.1f}x"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--device", default="cpu", help="cuda or cuda:N: the GPU section only")
    parser.add_argument("--model", default="enko-additive")
    args = parser.parse_args()
    reps = 1 if args.quick else 3
    results: dict[str, object] = {}
    if args.device != "cpu":
        code = device(args.model, args.device, reps, results)
        print(json.dumps(results))
        return code
    chosen = args.only or SECTIONS
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "throughput" in chosen:
            throughput(folder, args.model, reps, results)
        if "batch" in chosen:
            batch_sizes(args.model, reps, results)
        if "workers" in chosen:
            workers(folder, args.model, reps, results)
        if "figures" in chosen:
            figure_race(folder, args.model, results)
        if "memory" in chosen:
            memory(folder, args.model, results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
