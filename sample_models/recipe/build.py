"""Rebuild the bundled sample models from scratch, then measure them.

    python sample_models/recipe/build.py [--work DIR] [--only NAME]

Steps: generate the corpus (train seed 1, validation seed 2, held-out test seed 3 with no
English sentence shared with training), train enko-additive, enko-dot and enko-general with
`attnviz train --force` (replacing the bundled files), evaluate each on the held-out pairs
(exact match, chrF, AER) and write sample_models/results.json. Every step is an ordinary
command you can also run by hand; this script prints each one before running it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent
CORPUS = HERE / "enko_corpus.py"
TRAIN_PAIRS = 120_000
COMMON = [
    "--spm-type", "bpe", "--src-vocab-size", "600", "--tgt-vocab-size", "1000",
    "--embedding-size", "64", "--hidden-size", "96", "--attention-size", "96",
    "--dropout", "0.1", "--batch-size", "128", "--lr-decay", "1", "--epochs", "4",
    "--max-time", "270", "--eval-every", "300", "--patience", "4",
    "--seed", "1", "--threads", "2", "--device", "cpu",
]  # fmt: skip
# general attention learns more slowly at 0.003: Adam moves all Q x H entries of W_a at once
MODELS = {
    "enko-additive": ["--attention", "additive", "--lr", "0.003"],
    "enko-dot": ["--attention", "dot", "--lr", "0.003"],
    "enko-general": ["--attention", "general", "--lr", "0.002"],
}


def run(command: list[str]) -> float:
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="build-samples", help="folder for the corpus files")
    parser.add_argument("--only", choices=sorted(MODELS), action="append")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    train, valid, test = work / "train.tsv", work / "valid.tsv", work / "test.tsv"
    run([py, str(CORPUS), "--seed", "1", "--n", str(TRAIN_PAIRS),
         "--out", str(train), "--align", str(work / "train.pharaoh")])  # fmt: skip
    run([py, str(CORPUS), "--seed", "2", "--n", "1000",
         "--out", str(valid), "--align", str(work / "valid.pharaoh")])  # fmt: skip
    run([py, str(CORPUS), "--seed", "3", "--n", "1000", "--exclude", str(train),
         "--out", str(test), "--align", str(work / "test.pharaoh")])  # fmt: skip
    seconds = {}
    for name in args.only or MODELS:
        out = SAMPLES / f"{name}.pt"
        seconds[name] = run(
            ["attnviz", "train", str(train), "--valid", str(valid), "--out", str(out), "--force"]
            + COMMON
            + MODELS[name]
        )
    results = []
    for name in args.only or MODELS:
        report = work / f"{name}.json"
        run([py, str(HERE / "evaluate.py"), "--pairs", str(test),
             "--gold", str(work / "test.pharaoh"), "--model", str(SAMPLES / f"{name}.pt"),
             "--json", str(report)])  # fmt: skip
        row = json.loads(report.read_text(encoding="utf-8"))[0]
        row["train_command_seconds"] = round(seconds[name], 1)
        results.append(row)
    path = SAMPLES / "results.json"
    previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    merged = {row["model"]: row for row in previous}
    merged.update({row["model"]: row for row in results})
    path.write_text(json.dumps(list(merged.values()), indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
