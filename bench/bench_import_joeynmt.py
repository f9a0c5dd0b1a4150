"""Loading and decoding an imported JoeyNMT model versus its converted attnviz checkpoint.

    python bench/bench_import_joeynmt.py [--runs 7]

Targets: loading the JoeyNMT folder (detection, YAML, weights, vocabularies, tokenizers,
building the network) costs ≤ 0.2 s more than loading the converted checkpoint; decoding
the 200 test sentences (greedy and beam 5) takes the same time from either. Loads and decodes
are interleaved run by run, in alternating order, so that machine noise hits both alike;
medians are reported.
One torch thread.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "peers" / "joeynmt"


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _alternate(items, run: int) -> list:
    """Both orders in turn, so that going first or second favours neither."""
    items = list(items)
    return items if run % 2 == 0 else items[::-1]


def main() -> int:
    from attnviz.checkpoint import load_checkpoint, save_checkpoint
    from attnviz.importers import find_importer
    from attnviz.translator import Translator

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--model", default="gru-luong-bpe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = FIXTURES / args.model
    with gzip.open(FIXTURES / "reference" / f"{args.model}.json.gz", "rt") as stream:
        sentences = [item["source"] for item in json.load(stream)["greedy"]]

    def load_imported() -> Translator:
        importer = find_importer(folder)
        assert importer is not None
        return Translator(importer.load(folder), "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "converted.pt"
        save_checkpoint(find_importer(folder).load(folder), converted)

        def load_converted() -> Translator:
            return Translator(load_checkpoint(converted), "cpu")

        loaders = {"imported": load_imported, "converted": load_converted}
        for loader in loaders.values():  # warm caches and lazy imports once
            loader()
        times: dict[str, list[float]] = {}
        for run in range(args.runs):
            for name, loader in _alternate(loaders.items(), run):
                times.setdefault(f"load {name}", []).append(timed(loader))
        translators = {name: loader() for name, loader in loaders.items()}
        for run in range(args.runs):
            for name, translator in _alternate(translators.items(), run):
                times.setdefault(f"greedy {name}", []).append(
                    timed(lambda t=translator: t.translate(sentences))
                )
                times.setdefault(f"beam-5 {name}", []).append(
                    timed(lambda t=translator: t.translate(sentences, beam=5))
                )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:20s} median {value * 1000:8.1f} ms  (min {min(times[name]) * 1000:.1f})")
    extra = medians["load imported"] - medians["load converted"]
    print(f"load overhead        {extra * 1000:+8.1f} ms  (target ≤ +200 ms)")
    for kind in ("greedy", "beam-5"):
        ratio = medians[f"{kind} imported"] / medians[f"{kind} converted"]
        print(f"{kind} time ratio   {ratio:8.3f}      (target 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
