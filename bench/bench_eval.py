"""Scoring throughput and memory of `attnviz eval` on an existing export.

    python bench/bench_eval.py [--sizes 2000 20000] [--repeat 3]

Writes synthetic exported records (alignments.jsonl as `attnviz export` writes them: piece
level, ~12 source and ~10 target words of 1-3 pieces, attention and raw scores as float32
lists) and Pharaoh gold for each size, then, each in a fresh single-threaded process:

1. throughput: read the records, merge pieces to words, argmax links, AER against gold and
   all diagnostics, streamed as `attnviz eval` does (sentences/s, best of --repeat);
   reading alone (JSON records and gold lines) is timed too, to show what scoring adds;
2. memory: peak of Python allocations (tracemalloc) and peak RSS while scoring.

Targets: >= 20,000 sentences/s of scoring on one core; memory flat from 2,000 to 20,000.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, os, resource, sys, time, tracemalloc
records, gold, mode, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from attnviz.eval import RowScorer, read_pharaoh, read_records, zip_inputs

def score():
    row = RowScorer(worst=10, sort="aer")
    for item in zip_inputs(read_records(records), gold=read_pharaoh(gold)):
        row.feed(item)
    row.finish()
    return row.scorer

def read_only():
    # what reading costs before any scoring: JSON records and gold lines, in step
    for _ in zip_inputs(read_records(records), gold=read_pharaoh(gold)):
        pass

out = {}
if mode == "time":
    for name, job in (("read", read_only), ("score", score)):
        times, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = job()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out[name] = min(times)
        out[name + "_cpu"] = min(cpu)
    out["aer"] = result.summary()["aer"]
else:
    tracemalloc.start()
    scorer = score()
    out["traced_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def synthetic(folder: Path, n: int, seed: int = 5) -> tuple[Path, Path]:
    """``n`` exported records (piece level) and their gold, written to ``folder``."""
    import numpy as np

    from attnviz.alignment import Alignment

    rng = np.random.default_rng(seed)
    records = folder / f"alignments-{n}.jsonl"
    gold = folder / f"gold-{n}.pharaoh"
    with records.open("w", encoding="utf-8") as out, gold.open("w", encoding="utf-8") as golds:
        for index in range(n):
            src_words, tgt_words = int(rng.integers(4, 21)), int(rng.integers(3, 18))

            def pieces(words: int, prefix: str) -> list[str]:
                tokens = []
                for w in range(words):
                    parts = int(rng.choice([1, 1, 1, 2, 2, 3]))
                    tokens += [f"▁{prefix}{w}"] + [f"x{k}" for k in range(1, parts)]
                return [*tokens, "</s>"]

            src, tgt = pieces(src_words, "s"), pieces(tgt_words, "t")
            energies = rng.normal(size=(len(tgt), len(src))) * 3  # [T, S]
            weights = np.exp(energies - energies.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            alignment = Alignment(
                source=" ".join(f"s{w}" for w in range(src_words)),
                translation=" ".join(f"t{w}" for w in range(tgt_words)),
                src_tokens=src,
                tgt_tokens=tgt,
                weights=weights,
                scores=energies,
                token_logprobs=-rng.random(len(tgt)),
                score=-0.5,
                meta={"id": index},
            )
            out.write(alignment.to_json() + "\n")
            links = []
            for j in range(tgt_words):
                i = min(src_words - 1, round(j * src_words / tgt_words))
                links.append(f"{i}-{j}")
                if rng.random() < 0.3 and i + 1 < src_words:
                    links.append(f"{i + 1}?{j}")
            golds.write(" ".join(links) + "\n")
    return records, gold


def run_worker(records: Path, gold: Path, mode: str, repeat: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(records), str(gold), mode, str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        for n in args.sizes:
            records, gold = synthetic(Path(tmp), n)
            timing = run_worker(records, gold, "time", args.repeat)
            memory = run_worker(records, gold, "memory", 1)
            rows.append((n, records.stat().st_size, timing, memory))
    print("sentences/s, best of --repeat; 'cpu': from the process's CPU time, which a busy")
    print("machine disturbs less than wall time; 'scoring': end to end minus reading the")
    print("records (JSON) and the gold, i.e. word merging, links, AER and diagnostics")
    print(f"{'sentences':>9} {'MB':>6} {'end to end':>11} {'cpu':>8} {'scoring':>9} {'cpu':>8} "
          f"{'traced peak':>12} {'peak RSS':>10}")  # fmt: skip
    for n, size, timing, memory in rows:
        scoring = n / max(timing["score"] - timing["read"], 1e-9)
        scoring_cpu = n / max(timing["score_cpu"] - timing["read_cpu"], 1e-9)
        print(
            f"{n:>9,} {size / 1e6:>6.1f} {n / timing['score']:>11,.0f} "
            f"{n / timing['score_cpu']:>8,.0f} {scoring:>9,.0f} {scoring_cpu:>8,.0f} "
            f"{memory['traced_peak'] / 1024:>9,.0f} KiB {memory['maxrss_kib'] / 1024:>6,.1f} MiB"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"memory {last[0]:,} vs {first[0]:,} sentences: traced peak x"
            f"{last[3]['traced_peak'] / first[3]['traced_peak']:.2f}, peak RSS x"
            f"{last[3]['maxrss_kib'] / first[3]['maxrss_kib']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
