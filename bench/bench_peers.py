"""attnviz against the toolkits it inspects: JoeyNMT 2.3 and OpenNMT-py 3.5.1 on one toy task.

    python bench/bench_peers.py [--runs 5] [--sentences 2000] [--work /tmp/peers/bench]
                                [--batch-size N] [--no-onmt]

The peers live in throwaway virtual environments (``--joey-venv``, ``--onmt-venv``, made on
first use: torch 2.13.0 first, then the toolkit with ``--no-deps`` and the few requirements
its plain-text path needs). The task: reverse a sequence of 4 to 16 letters (20,000 training
pairs, ``--sentences`` test sentences). JoeyNMT and OpenNMT-py each train a bi-LSTM model with
additive attention and input feeding of about 0.3 M parameters; attnviz decodes the very
JoeyNMT model through its importer when it has one, else it trains a model of the same sizes
itself.

Every timed command runs in a fresh process with one thread (``OMP_NUM_THREADS=1``), all
tools interleaved run by run in rotating order, and medians of ``--runs`` are reported:

- JoeyNMT ``generation``: the time ``joeynmt test`` logs for its prediction loop (batching
  and search; tokenizing and writing are outside it), and the command's whole wall time;
- OpenNMT-py ``translate``: the time ``onmt_translate -report_time`` logs;
- attnviz ``decode only``: batching and the decoding functions on token ids (tokenizing
  outside, as for JoeyNMT), in the default precision, searching as the model's rules say
  (the imported model: as JoeyNMT does);
- attnviz ``export``: the ``seconds`` of ``manifest.json`` (reading, tokenizing, decoding and
  writing JSONL + Pharaoh) and the command's whole wall time.

Goals: export ≤ 0.8x JoeyNMT generation at beam 1 and beam 5, decode only ≤ 0.6x, export
wall ≤ 0.6x JoeyNMT's wall. The machine's load (``os.getloadavg``) is printed with the
numbers: timings taken while other work runs are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LETTERS = "abcdefghijklmnopqrstuvwx"
TRAIN_PAIRS = 20_000
DEV_PAIRS = 200
# sizes shared by the three models: ~0.3 M parameters
EMBEDDING = 64
ENCODER_HIDDEN = 64  # per direction
DECODER_HIDDEN = 128
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
JOEY_REQUIREMENTS = [
    "pyyaml",
    "numpy",
    "sacrebleu",
    "subword-nmt",
    "sentencepiece==0.1.99",
    "tqdm",
    "tensorboard",
    "importlib_metadata",
    "packaging",
    "matplotlib",
]
ONMT_REQUIREMENTS = ["configargparse", "pyyaml", "six", "sentencepiece", "numpy", "sacrebleu"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(command: list[str], *, cwd: Path | None = None, env: dict | None = None) -> str:
    """Run a command; its stdout and stderr together, or exit with the tail of them."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **ONE_THREAD, **(env or {})},
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{output[-3000:]}")
    return output


def timed(command: list[str], **kwargs) -> tuple[float, str]:
    start = time.perf_counter()
    output = run(command, **kwargs)
    return time.perf_counter() - start, output


# -- environments -------------------------------------------------------------------------------


def ensure_venv(folder: Path, module: str, package: str, requirements: list[str]) -> Path | None:
    python = folder / "bin" / "python"
    probe = [str(python), "-c", f"import {module}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"making {folder} ({package}); this takes a few minutes")
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", package],
        [str(python), "-m", "pip", "install", "-q", *requirements],
    ]
    for step in steps:
        if subprocess.run(step).returncode:
            log(f"could not make {folder}: {' '.join(step)} failed")
            return None
    return python if subprocess.run(probe, capture_output=True).returncode == 0 else None


# -- the task -----------------------------------------------------------------------------------


def reversal_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        letters = [rng.choice(LETTERS) for _ in range(rng.randint(4, 16))]
        pairs.append((" ".join(letters), " ".join(reversed(letters))))
    return pairs


def write_corpus(data: Path, sentences: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    for name, count, seed in (
        ("train", TRAIN_PAIRS, 1),
        ("dev", DEV_PAIRS, 2),
        ("test", sentences, 3),
    ):
        pairs = reversal_pairs(count, seed)
        (data / f"{name}.src").write_text("".join(s + "\n" for s, _ in pairs), "utf-8")
        (data / f"{name}.trg").write_text("".join(t + "\n" for _, t in pairs), "utf-8")
        (data / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), "utf-8")


# -- JoeyNMT ------------------------------------------------------------------------------------


def joey_config(work: Path, *, test: bool, beam: int = 1, batch_size: int = 64) -> dict:
    data = work / "data"
    side = {"lowercase": False, "voc_min_freq": 1, "level": "word"}
    config = {
        "name": "reversal",
        "model_dir": str(work / "joey"),
        "joeynmt_version": "2.3.0",
        "use_cuda": False,
        "data": {
            "train": str(data / "train"),
            "dataset_type": "plain",
            "src": {"lang": "src", **side},
            "trg": {"lang": "trg", **side},
        },
        "training": {
            "random_seed": 7,
            "optimizer": "adam",
            "learning_rate": 0.005,
            "scheduling": "exponential",
            "decrease_factor": 0.999,
            "batch_size": 64,
            "batch_type": "sentence",
            "epochs": 100,
            "updates": 2500,
            "validation_freq": 500,
            "logging_freq": 250,
            "early_stopping_metric": "ppl",
            "keep_best_ckpts": 1,
            "overwrite": True,
            "print_valid_sents": [],
        },
        "testing": {
            "beam_size": beam,
            "beam_alpha": 0.0,
            "batch_size": batch_size,
            "batch_type": "sentence",
        },
        "model": {
            "initializer": "xavier_uniform",
            "encoder": {
                "type": "recurrent",
                "rnn_type": "lstm",
                "embeddings": {"embedding_dim": EMBEDDING},
                "hidden_size": ENCODER_HIDDEN,
                "bidirectional": True,
                "num_layers": 1,
                "dropout": 0.1,
            },
            "decoder": {
                "type": "recurrent",
                "rnn_type": "lstm",
                "embeddings": {"embedding_dim": EMBEDDING},
                "hidden_size": DECODER_HIDDEN,
                "attention": "bahdanau",
                "init_hidden": "bridge",
                "input_feeding": True,
                "num_layers": 1,
                "dropout": 0.1,
            },
        },
    }
    if test:
        config["data"]["test"] = str(data / "test")
        config["data"]["src"]["voc_file"] = str(work / "joey" / "src_vocab.txt")
        config["data"]["trg"]["voc_file"] = str(work / "joey" / "trg_vocab.txt")
        config["training"]["load_model"] = str(work / "joey" / "best.ckpt")
    else:
        config["data"]["dev"] = str(data / "dev")
    return config


def write_yaml(path: Path, config: dict) -> Path:
    # JSON is valid YAML: no YAML library needed on this side
    path.write_text(json.dumps(config, indent=1), "utf-8")
    return path


def train_joey(python: Path, work: Path) -> None:
    if (work / "joey" / "best.ckpt").exists():
        return
    log("training the JoeyNMT model")
    config = write_yaml(work / "joey-train.yaml", joey_config(work, test=False))
    run([str(python), "-m", "joeynmt", "train", str(config), "--skip-test"], cwd=work)
    best = work / "joey" / "best.ckpt"
    if best.is_symlink():  # JoeyNMT links best.ckpt to <step>.ckpt
        target = best.resolve()
        best.unlink()
        shutil.copyfile(target, best)


def time_joey(python: Path, work: Path, beam: int, batch_size: int) -> tuple[float, float]:
    config = write_yaml(
        work / f"joey-test-{beam}.yaml",
        joey_config(work, test=True, beam=beam, batch_size=batch_size),
    )
    out = work / "out" / f"joey-{beam}"
    out.parent.mkdir(exist_ok=True)
    wall, output = timed(
        [str(python), "-m", "joeynmt", "test", str(config), "-o", str(out)], cwd=work
    )
    match = re.search(r"Generation took ([0-9.]+)\[sec\]", output)
    if not match:
        sys.exit(f"JoeyNMT did not log its generation time:\n{output[-2000:]}")
    return float(match.group(1)), wall


# -- OpenNMT-py ---------------------------------------------------------------------------------


def train_onmt(python: Path, work: Path) -> Path:
    folder = work / "onmt"
    model = folder / "model_step_2500.pt"
    if model.exists():
        return model
    log("training the OpenNMT-py model")
    folder.mkdir(exist_ok=True)
    data = work / "data"
    config = {
        "save_data": str(folder / "run"),
        "src_vocab": str(folder / "vocab.src"),
        "tgt_vocab": str(folder / "vocab.tgt"),
        "overwrite": True,
        "data": {
            "corpus_1": {"path_src": str(data / "train.src"), "path_tgt": str(data / "train.trg")},
            "valid": {"path_src": str(data / "dev.src"), "path_tgt": str(data / "dev.trg")},
        },
        "save_model": str(folder / "model"),
        "save_checkpoint_steps": 2500,
        "train_steps": 2500,
        "valid_steps": 2500,
        "encoder_type": "brnn",
        "decoder_type": "rnn",
        "rnn_type": "LSTM",
        "global_attention": "mlp",
        "layers": 1,
        "word_vec_size": EMBEDDING,
        "hidden_size": DECODER_HIDDEN,  # brnn: half per direction
        "input_feed": 1,
        "optim": "adam",
        "learning_rate": 0.005,
        "batch_size": 64,
        "batch_type": "sents",
        "dropout": 0.1,
        "report_every": 500,
        "num_workers": 0,
        "seed": 7,
    }
    path = write_yaml(folder / "config.yaml", config)
    bin_dir = python.parent
    run([str(bin_dir / "onmt_build_vocab"), "-config", str(path), "-n_sample", "-1"], cwd=work)
    run([str(bin_dir / "onmt_train"), "-config", str(path)], cwd=work)
    return model


def time_onmt(python: Path, model: Path, work: Path, beam: int, batch_size: int):
    out = work / "out" / f"onmt-{beam}.txt"
    command = [
        str(python.parent / "onmt_translate"),
        *("-model", str(model), "-src", str(work / "data" / "test.src")),
        *("-output", str(out), "-gpu", "-1"),
        *("-batch_size", str(batch_size), "-batch_type", "sents", "-beam_size", str(beam)),
        "-report_time",
    ]
    if beam == 1:
        command += ["-random_sampling_topk", "1"]  # its greedy search, not a beam of one
    wall, output = timed(command, cwd=work, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    # it logs the total in tenths of seconds; tokens per second has more digits
    rate = re.search(r"Tokens per second: ([0-9.]+)", output)
    if not rate:
        sys.exit(f"OpenNMT-py did not log its translation speed:\n{output[-2000:]}")
    words = sum(len(line.split()) for line in out.read_text("utf-8").splitlines())
    return words / float(rate.group(1)), wall


# -- attnviz ------------------------------------------------------------------------------------


def attnviz_model(work: Path) -> tuple[Path, str]:
    """A checkpoint of the JoeyNMT model (imported), else one attnviz trains itself."""
    path = work / "attnviz.pt"
    how_file = work / "attnviz-model.txt"
    if path.exists() and how_file.exists():
        return path, how_file.read_text("utf-8")
    try:
        from attnviz.importers import find_importer  # type: ignore[import-not-found]
    except ImportError:
        find_importer = None
    from attnviz.checkpoint import save_checkpoint

    importer = find_importer(work / "joey") if find_importer is not None else None
    if importer is not None:
        save_checkpoint(importer.load(work / "joey"), path)
        how = "the JoeyNMT model, imported"
    else:
        log("training the attnviz model (no JoeyNMT importer here)")
        command = [
            *(sys.executable, "-m", "attnviz", "train", str(work / "data" / "train.tsv")),
            *("--out", str(path)),
            *("--valid", str(work / "data" / "dev.tsv"), "--rnn", "lstm"),
            *("--attention", "additive", "--embedding-size", str(EMBEDDING)),
            *("--hidden-size", str(ENCODER_HIDDEN), "--decoder-hidden-size", str(DECODER_HIDDEN)),
            *("--attention-size", str(DECODER_HIDDEN), "--vocab-size", "32"),
            *("--steps", "2500", "--batch-size", "64", "--seed", "7", "--threads", "1"),
        ]
        run(command, cwd=work)
        how = "an attnviz model of the same sizes, trained by attnviz"
    how_file.write_text(how, "utf-8")
    return path, how


DECODE_ONLY = r"""
import sys, time, torch
torch.set_num_threads(1)
from attnviz.decoding import beam_decode, greedy_decode
from attnviz.families.base import pad_batch
from attnviz.options import DecodeOptions
from attnviz.translator import load_model
model_path, input_path, beam, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
batch_size = int(batch_size) if batch_size != "default" else DecodeOptions().batch_size
translator = load_model(model_path, device="cpu")
lines = open(input_path, encoding="utf-8").read().splitlines()
ids = sorted((translator.encode_source(line) for line in lines), key=len)
rules = translator.rules  # the model's search (an imported model: its toolkit's)
search = dict(rules=rules, length_penalty=rules.length_penalty)
start = time.perf_counter()
for first in range(0, len(ids), batch_size):
    src, lengths = pad_batch(ids[first : first + batch_size], translator.config.pad_id)
    if beam == 1:
        greedy_decode(translator.model, src, lengths, **search)
    else:
        beam_decode(translator.model, src, lengths, beam_size=beam, **search)
print(f"DECODE {time.perf_counter() - start:.6f}")
"""


def time_attnviz_decode(model: Path, work: Path, beam: int, batch_size: str) -> float:
    output = run(
        [
            sys.executable,
            "-c",
            DECODE_ONLY,
            str(model),
            str(work / "data" / "test.src"),
            str(beam),
            batch_size,
        ]
    )
    return float(re.search(r"DECODE ([0-9.]+)", output).group(1))


def time_attnviz_export(model: Path, work: Path, beam: int, batch_size: str):
    out = work / "out" / f"attnviz-{beam}"
    command = [
        *(sys.executable, "-m", "attnviz", "export", str(work / "data" / "test.src")),
        *("--out", str(out)),
        *("--model", str(model), "--device", "cpu", "--beam", str(beam), "--overwrite"),
        *("--threads", "1"),
    ]
    if batch_size != "default":
        command += ["--batch-size", batch_size]
    wall, _ = timed(command)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    return float(manifest["seconds"]), wall


# -- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--batch-size",
        default="default",
        help="sentences per batch for every tool (default: attnviz's default)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/peers/bench"))
    parser.add_argument("--joey-venv", type=Path, default=Path("/tmp/peers/joey-venv"))
    parser.add_argument("--onmt-venv", type=Path, default=Path("/tmp/peers/onmt-venv"))
    parser.add_argument("--no-onmt", action="store_true", help="leave OpenNMT-py out")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from attnviz.options import DecodeOptions

    peer_batch = (
        int(args.batch_size) if args.batch_size != "default" else DecodeOptions().batch_size
    )
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "out").mkdir(exist_ok=True)
    stamp = work / "data" / f"test-{args.sentences}.stamp"
    if not stamp.exists():
        write_corpus(work / "data", args.sentences)
        stamp.touch()

    joey = ensure_venv(args.joey_venv, "joeynmt", "joeynmt==2.3.0", JOEY_REQUIREMENTS)
    if joey is None:
        sys.exit("JoeyNMT is needed for this benchmark")
    train_joey(joey, work)
    onmt = None
    if not args.no_onmt:
        onmt = ensure_venv(args.onmt_venv, "onmt", "opennmt-py==3.5.1", ONMT_REQUIREMENTS)
    onmt_model = train_onmt(onmt, work) if onmt is not None else None
    model, how = attnviz_model(work)

    measures = {}
    for beam in args.beams:
        measures[f"joey {beam}"] = lambda b=beam: time_joey(joey, work, b, peer_batch)
        if onmt_model is not None:
            measures[f"onmt {beam}"] = lambda b=beam: time_onmt(
                onmt, onmt_model, work, b, peer_batch
            )
        measures[f"decode {beam}"] = lambda b=beam: (
            time_attnviz_decode(model, work, b, args.batch_size),
            0.0,
        )
        measures[f"export {beam}"] = lambda b=beam: time_attnviz_export(
            model, work, b, args.batch_size
        )

    load_before = os.getloadavg()
    times: dict[str, list[float]] = {}
    walls: dict[str, list[float]] = {}
    names = list(measures)
    for index in range(args.runs):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:  # each run starts elsewhere
            seconds, wall = measures[name]()
            times.setdefault(name, []).append(seconds)
            walls.setdefault(name, []).append(wall)
        log(f"run {index + 1}/{args.runs} done")
    load_after = os.getloadavg()

    median = {name: statistics.median(values) for name, values in times.items()}
    wall = {name: statistics.median(values) for name, values in walls.items()}
    print(
        f"{args.sentences} sentences, reversal task, 1 thread, medians of {args.runs}, batch "
        f"{peer_batch}; attnviz decodes {how}"
    )
    print(
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )
    header = "| | " + " | ".join(f"beam {b}" for b in args.beams) + " |"
    print(header)
    print("|---" * (len(args.beams) + 1) + "|")
    rows = [
        ("JoeyNMT 2.3 generation time", "joey", median),
        ("OpenNMT-py 3.5.1 translate time", "onmt", median),
        ("attnviz decode only", "decode", median),
        ("attnviz export processing time (manifest `seconds`)", "export", median),
        ("JoeyNMT whole wall", "joey", wall),
        ("attnviz export whole wall", "export", wall),
    ]
    for label, key, table in rows:
        if f"{key} {args.beams[0]}" in table:
            cells = " | ".join(f"{table[f'{key} {b}']:.2f} s" for b in args.beams)
            print(f"| {label} | {cells} |")
    goals = (
        ("decode only / JoeyNMT generation", "decode", median, "joey", median, 0.6),
        ("export processing / JoeyNMT generation", "export", median, "joey", median, 0.8),
        ("export wall / JoeyNMT wall", "export", wall, "joey", wall, 0.6),
    )
    for label, ours, ours_table, theirs, theirs_table, goal in goals:
        cells = []
        for b in args.beams:
            ratio = ours_table[f"{ours} {b}"] / theirs_table[f"{theirs} {b}"]
            cells.append(f"beam {b}: {ratio:.2f}x {'ok' if ratio <= goal else 'MISSED'}")
        print(f"{label} (goal ≤ {goal}x): {', '.join(cells)}")
    if onmt_model is not None:
        cells = [
            f"beam {b}: {median[f'decode {b}'] / median[f'onmt {b}']:.2f}x" for b in args.beams
        ]
        print(f"decode only / OpenNMT-py translate: {', '.join(cells)}")
    print(json.dumps({"median": median, "wall": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
