"""Start-up time of the CLI, measured side by side with `import torch`.

    python bench/bench_cli.py [--runs 7]

Targets: `attnviz --help` ≤ 0.30 s wall; `attnviz translate "…"` cold ≤ the wall time of
`python -c "import torch"` + 0.35 s. Commands are interleaved run by run so that machine noise
hits all of them alike; medians are reported. torch threads are fixed with OMP_NUM_THREADS=2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

SENTENCE = "the boy ate an apple ."


def wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    attnviz = shutil.which("attnviz") or "attnviz"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    commands = {
        "attnviz --help": [attnviz, "--help"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "attnviz translate (cold)": [attnviz, "translate", SENTENCE, "--device", "cpu"],
    }
    for command in commands.values():  # warm the file cache once
        wall(command, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(wall(command, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        spread = f"min {min(times[name]):.3f} max {max(times[name]):.3f}"
        print(f"{name:28s} median {value:.3f} s  ({spread}, {args.runs} runs)")
    overhead = medians["attnviz translate (cold)"] - medians["python -c 'import torch'"]
    print(f"translate - import torch      {overhead:+.3f} s  (target ≤ +0.350 s)")
    print(f"--help                        {medians['attnviz --help']:.3f} s  (target ≤ 0.300 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
