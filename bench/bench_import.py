"""Imported OpenNMT-py models against their converted attnviz checkpoints: load time, speed.

    python bench/bench_import.py [--runs 7] [--sentences 250]

For each OpenNMT-py fixture model, and for one synthetic model of a realistic size (16k
vocabularies, 2-layer brnn LSTM, 512 units; random weights in OpenNMT-py's layout), it times
``attnviz.load_model`` on the OpenNMT-py ``.pt`` and on the file ``attnviz convert`` makes of
it (medians over ``--runs`` loads, file cache warm), then greedy and beam-5 decoding of the
test sentences with both. Goals: loading an imported model costs at most 0.2 s more than
loading the converted one; decoding speed is the same (both build the same network).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "peers" / "opennmt_py"


def synthetic_opennmt_checkpoint(path: Path, vocab: int = 16000, hidden: int = 512) -> None:
    """An OpenNMT-py-shaped checkpoint with random weights (brnn LSTM, mlp attention)."""
    import argparse as argparse_module

    import torch

    from attnviz.families.rnn.model import RNNConfig, RNNModel

    with torch.serialization.safe_globals([argparse_module.Namespace]):
        template = torch.load(FIXTURES / "mlp-lstm-brnn.pt", weights_only=True)
    config = RNNConfig(
        src_vocab_size=vocab,
        tgt_vocab_size=vocab,
        embedding_size=256,
        hidden_size=hidden // 2,
        decoder_hidden_size=hidden,
        attention_size=hidden,
        attention="additive",
        rnn="lstm",
        encoder_layers=2,
        decoder_layers=2,
        attn_out_tanh=False,
        src_eos=False,
        attn_query_bias=True,
        decoder_init="encoder_final",
        pad_id=1,
        unk_id=0,
        bos_id=2,
        eos_id=3,
    )
    torch.manual_seed(0)
    ours = RNNModel(config).state_dict()
    theirs = {
        "encoder.embeddings.make_embedding.emb_luts.0.weight": ours["encoder.embedding.weight"],
        "decoder.embeddings.make_embedding.emb_luts.0.weight": ours["decoder.embedding.weight"],
        "decoder.attn.linear_query.weight": ours["decoder.attention.W.weight"],
        "decoder.attn.linear_query.bias": ours["decoder.attention.W.bias"],
        "decoder.attn.linear_context.weight": ours["decoder.attention.U.weight"],
        "decoder.attn.v.weight": ours["decoder.attention.v"].reshape(1, -1),
        "decoder.attn.linear_out.weight": ours["decoder.combine.weight"],
        "decoder.attn.linear_out.bias": ours["decoder.combine.bias"],
    }
    for name, value in ours.items():
        if name.startswith("encoder.rnn."):
            theirs[name] = value
        elif name.startswith("decoder.rnn."):  # input feeding: a stack of cells
            part, layer = name.rsplit(".", 1)[1].rsplit("_l", 1)
            theirs[f"decoder.rnn.layers.{layer}.{part}"] = value
    opt = argparse_module.Namespace(**vars(template["opt"]))
    for key, value in {
        "word_vec_size": 256,
        "src_word_vec_size": 256,
        "tgt_word_vec_size": 256,
        "hidden_size": hidden,
        "enc_hid_size": hidden,
        "dec_hid_size": hidden,
        "layers": 2,
        "enc_layers": 2,
        "dec_layers": 2,
    }.items():
        setattr(opt, key, value)
    specials = ["<unk>", "<blank>", "<s>", "</s>"]
    words = specials + [f"w{i}" for i in range(vocab - len(specials))]
    payload = {
        "model": theirs,
        "generator": {
            "weight": ours["decoder.output.weight"],
            "bias": ours["decoder.output.bias"],
        },
        "vocab": {
            "src": words,
            "tgt": words,
            "data_task": "seq2seq",
            "decoder_start_token": "<s>",
        },
        "opt": opt,
        "optim": None,
    }
    torch.save(payload, path)


def median_time(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sentences", type=int, default=250)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import attnviz
    from attnviz.checkpoint import save_checkpoint
    from attnviz.importers import load_any

    sources = (FIXTURES / "test.src").read_text("utf-8").split("\n")[: args.sentences]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        models = {}
        for path in sorted(FIXTURES.glob("*.pt")):
            spm = {}
            if path.with_suffix(".src.spm.model").exists():
                spm = {
                    "src_spm": path.with_suffix(".src.spm.model"),
                    "tgt_spm": path.with_suffix(".tgt.spm.model"),
                }
            models[path.stem] = (path, spm)
        large = folder / "synthetic-16k-512.pt"
        synthetic_opennmt_checkpoint(large)
        models["synthetic 16k/512 (brnn LSTM, 2 layers)"] = (large, {})

        print(f"{'model':44s} {'size':>8s} {'imported':>9s} {'converted':>9s} {'extra':>7s}")
        worst = 0.0
        for name, (path, spm) in models.items():
            converted = folder / f"{path.stem}.attnviz.pt"
            save_checkpoint(load_any(path, **spm), converted)
            imported = median_time(
                lambda p=path, s=spm: attnviz.load_model(p, device="cpu", **s), args.runs
            )
            own = median_time(lambda p=converted: attnviz.load_model(p, device="cpu"), args.runs)
            worst = max(worst, imported - own)
            size = path.stat().st_size / 1e6
            print(f"{name:44s} {size:6.2f}MB {imported:8.3f}s {own:8.3f}s {imported - own:+6.3f}s")
        print(f"largest extra load time {worst:+.3f} s (goal <= +0.200 s)")

        print(f"\ndecoding {len(sources)} sentences (sentences/s, medians of runs taken in turns)")
        print(f"{'model':44s} {'search':>7s} {'imported':>9s} {'converted':>9s}")
        for name, (path, spm) in models.items():
            converted = folder / f"{path.stem}.attnviz.pt"
            translators = {
                "imported": attnviz.load_model(path, device="cpu", **spm),
                "converted": attnviz.load_model(converted, device="cpu"),
            }
            for beam in (1, 5):
                times: dict[str, list[float]] = {kind: [] for kind in translators}
                for _ in range(args.runs):
                    for kind, translator in translators.items():
                        start = time.perf_counter()
                        translator.translate(sources, beam=beam)
                        times[kind].append(time.perf_counter() - start)
                speed = {kind: len(sources) / statistics.median(t) for kind, t in times.items()}
                search = "greedy" if beam == 1 else "beam 5"
                print(
                    f"{name:44s} {search:>7s} {speed['imported']:8.0f}/s "
                    f"{speed['converted']:8.0f}/s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
