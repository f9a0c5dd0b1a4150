"""Measure bundled models on held-out pairs: exact match, chrF and attention AER.

    python sample_models/recipe/evaluate.py --pairs test.tsv --gold test.pharaoh \
        --model sample_models/enko-additive.pt [--model ...] \
        [--koen sample_models/koen-additive.pt] [--sym ENKO KOEN] [--json results.json]

``--pairs`` holds english<TAB>korean lines and ``--gold`` their English-first links;
``--koen`` models are measured on the same pairs the other way round (Korean source, links
reversed). Translations are greedy. For AER, each reference is force-decoded, the attention
merged to words, and every target word linked to the source word it attends to most
(attnviz.eval, argmax links); ``--sym`` also scores the two directions of an English→Korean
and a Korean→English model combined by each symmetrisation heuristic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def force_decode(translator, pairs: list[tuple[str, str]]) -> list:
    return translator.translate(
        [s for s, _ in pairs], refs=[t for _, t in pairs], words=True, batch_size=64
    )


def alignment_scores(forced, gold, reverse=None, sym=None) -> dict:
    from attnviz.eval import CorpusScorer, evaluate

    scorer = CorpusScorer()
    hypotheses = enumerate(forced)
    back = enumerate(reverse) if reverse is not None else None
    for _ in evaluate(hypotheses, scorer, gold=gold, reverse=back, sym=sym):
        pass
    summary = scorer.summary()
    return {key: summary[key] for key in ("aer", "precision", "recall", "f1")}


def evaluate_model(model_path: str, pairs: list[tuple[str, str]], gold: list) -> dict:
    import torch

    from attnviz import load_model
    from attnviz.metrics import chrf, exact_match

    torch.set_num_threads(1)
    translator = load_model(model_path, device="cpu")
    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    start = time.perf_counter()
    hypotheses = [a.translation for a in translator.translate(sources, batch_size=64)]
    seconds = time.perf_counter() - start
    row = {
        "model": Path(model_path).name,
        "pairs": len(pairs),
        "exact_match": exact_match(hypotheses, references),
        "chrf": chrf(hypotheses, references),
    }
    row.update(alignment_scores(force_decode(translator, pairs), gold))
    row["translate_seconds"] = round(seconds, 2)
    return row


def symmetrisation(enko: str, koen: str, pairs, gold) -> list[dict]:
    from attnviz import load_model
    from attnviz.eval import SYMMETRISATIONS

    forward = force_decode(load_model(enko, device="cpu"), pairs)
    reverse = force_decode(load_model(koen, device="cpu"), [(t, s) for s, t in pairs])
    rows = [{"links": Path(enko).stem, **alignment_scores(forward, gold)}]
    backward = [g.reversed() for g in gold]
    rows.append({"links": Path(koen).stem, **alignment_scores(reverse, backward)})
    for method in SYMMETRISATIONS:
        rows.append({"links": method, **alignment_scores(forward, gold, reverse, method)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="english<TAB>korean per line")
    parser.add_argument("--gold", required=True, help="gold Pharaoh links, English first")
    parser.add_argument("--model", action="append", default=[], help="English→Korean model")
    parser.add_argument("--koen", action="append", default=[], help="Korean→English model")
    parser.add_argument("--sym", nargs=2, metavar=("ENKO", "KOEN"))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from attnviz.eval import read_pharaoh

    lines = Path(args.pairs).read_text(encoding="utf-8").splitlines()
    pairs = [tuple(line.split("\t", 1)) for line in lines if line.strip()]
    gold = list(read_pharaoh(args.gold))[: len(pairs)]
    if len(gold) != len(pairs):
        print(f"error: {len(pairs)} pairs but {len(gold)} gold lines", file=sys.stderr)
        return 2
    rows = [dict(evaluate_model(m, pairs, gold), direction="en→ko") for m in args.model]
    reversed_pairs = [(t, s) for s, t in pairs]
    reversed_gold = [g.reversed() for g in gold]
    rows += [
        dict(evaluate_model(m, reversed_pairs, reversed_gold), direction="ko→en") for m in args.koen
    ]
    for row in rows:
        print(
            f"{row['model']} ({row['direction']}): exact match {row['exact_match']:.1%}, "
            f"chrF {row['chrf']:.2f}, AER {row['aer']:.3f} ({row['pairs']} pairs, "
            f"{row['translate_seconds']} s)"
        )
    result = {"models": rows}
    if args.sym:
        result["symmetrisation"] = symmetrisation(*args.sym, pairs, gold)
        for row in result["symmetrisation"]:
            print(
                f"{row['links']:>22}: AER {row['aer']:.4f}  P {row['precision']:.4f}  "
                f"R {row['recall']:.4f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
