"""Measure bundled models on held-out pairs: exact match, chrF and attention AER.

    python sample_models/recipe/evaluate.py --pairs test.tsv --gold test.pharaoh \
        --model sample_models/enko-additive.pt [--model ...] [--json results.json]

Translations are greedy. For AER, each reference is force-decoded, the attention is merged
to words, and every Korean word is linked to the English word it attends to most; the links
are scored against the gold sure (``i-j``) and possible (``i?j``) links.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def evaluate(model_path: str, pairs: list[tuple[str, str]], gold: list[str]) -> dict:
    import torch

    from attnviz import load_model
    from attnviz.metrics import aer, chrf, exact_match, parse_pharaoh

    torch.set_num_threads(2)
    translator = load_model(model_path, device="cpu")
    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    start = time.perf_counter()
    hypotheses = [a.translation for a in translator.translate(sources, batch_size=64)]
    seconds = time.perf_counter() - start
    forced = translator.translate(sources, refs=references, words=True, batch_size=64)
    predicted = [set(a.hard_links()) for a in forced]
    sure, possible = zip(*(parse_pharaoh(line) for line in gold), strict=True)
    return {
        "model": Path(model_path).name,
        "pairs": len(pairs),
        "exact_match": exact_match(hypotheses, references),
        "chrf": chrf(hypotheses, references),
        "aer": aer(predicted, sure, possible),
        "translate_seconds": round(seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="english<TAB>korean per line")
    parser.add_argument("--gold", required=True, help="gold Pharaoh links, same order")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    lines = Path(args.pairs).read_text(encoding="utf-8").splitlines()
    pairs = [tuple(line.split("\t", 1)) for line in lines if line.strip()]
    gold = Path(args.gold).read_text(encoding="utf-8").splitlines()[: len(pairs)]
    if len(gold) != len(pairs):
        print(f"error: {len(pairs)} pairs but {len(gold)} gold lines", file=sys.stderr)
        return 2
    results = [evaluate(model, pairs, gold) for model in args.model]
    for row in results:
        print(
            f"{row['model']}: exact match {row['exact_match']:.1%}, chrF {row['chrf']:.2f}, "
            f"AER {row['aer']:.3f} ({row['pairs']} pairs, {row['translate_seconds']} s)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
