"""Rebuild the JoeyNMT fixtures: tiny trained models and the toolkit's own reference outputs.

Runs inside a throwaway JoeyNMT virtual environment, never the project's own:

    python3 -m venv /tmp/peers/joey-venv
    /tmp/peers/joey-venv/bin/pip install torch==2.13.0
    /tmp/peers/joey-venv/bin/pip install --no-deps joeynmt==2.3.0
    /tmp/peers/joey-venv/bin/pip install pyyaml numpy sacrebleu subword-nmt sentencepiece==0.1.99 \\
        tqdm tensorboard importlib_metadata packaging matplotlib
    /tmp/peers/joey-venv/bin/python tests/peers/joeynmt/regenerate.py

(JoeyNMT's remaining requirements -- datasets, pandas, plotly, seaborn, sacremoses and its
lint tools -- are not needed for plain-text data. JoeyNMT 2.3 calls
``SentencePieceProcessor.SetVocabulary``, which sentencepiece 0.2 no longer has: hence 0.1.99.)
The script generates the toy corpus (tests/peers/corpus.py), learns a subword-nmt BPE and a
SentencePiece model, trains each model of MODELS with ``python -m joeynmt train`` for a few
hundred updates, and then, with JoeyNMT's own code:

- teacher-forced attention and target log-probabilities on the 50 dev sentences (the model's
  own encoder and RecurrentDecoder, called as its ``Model.forward`` does), in float64;
- greedy translations (with their attention and token log-probs) and beam-5 5-best lists
  (with sequence scores) of the 200 test sentences, from ``joeynmt.prediction.predict``,
  one sentence per batch, in float64, and the same translations in float32 (JoeyNMT's
  default precision).

``--references-only`` skips training and records the outputs of the models already under
tests/peers/joeynmt/.

Everything lands in tests/peers/joeynmt/: one folder per model holding what JoeyNMT wrote
(config.yaml, best.ckpt, vocabularies, tokenizer files) and reference/<model>.json.gz.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent
DECIMALS = 8  # values JoeyNMT hands back as float32; tests allow 1e-5
EXACT_DECIMALS = 12  # float64 teacher-forced values; tests allow 1e-9

# Each model covers a few of JoeyNMT's recurrent options.
MODELS: dict[str, dict] = {
    "gru-bahdanau-bridge": {
        "rnn": "gru",
        "attention": "bahdanau",
        "init_hidden": "bridge",
        "input_feeding": True,
        "layers": (1, 1),
        "embedding": (16, 16),
        "hidden": (24, 24),
        "level": "word",
    },
    "lstm-luong-last": {
        "rnn": "lstm",
        "attention": "luong",
        "init_hidden": "last",  # decoder size = encoder size: the forward half is used
        "input_feeding": False,
        "layers": (1, 1),
        "embedding": (16, 16),
        "hidden": (24, 24),
        "level": "word",
        "scale": True,
    },
    "lstm-bahdanau-zero-2layer": {
        "rnn": "lstm",
        "attention": "bahdanau",
        "init_hidden": "zero",
        "input_feeding": True,
        "layers": (2, 2),
        "embedding": (12, 12),
        "hidden": (16, 16),
        "level": "word",
        "testing": {"beam_alpha": 1.0},
    },
    "gru-luong-bpe": {
        "rnn": "gru",
        "attention": "luong",
        "init_hidden": "bridge",
        "input_feeding": True,
        "layers": (1, 2),
        "embedding": (16, 24),
        "hidden": (16, 24),
        "level": "subword-nmt",
        "tied_softmax": True,
        "testing": {"max_output_length": 30},
    },
    "gru-bahdanau-spm": {
        "rnn": "gru",
        "attention": "bahdanau",
        "init_hidden": "last",  # encoder output (2 x 12) = decoder size: used whole
        "input_feeding": False,
        "layers": (1, 1),
        "embedding": (16, 12),
        "hidden": (12, 24),
        "level": "sentencepiece",
    },
}
UPDATES = 300


def _side(name: str, spec: dict) -> dict:
    side: dict = {"lang": name, "lowercase": False, "voc_min_freq": 1}
    if spec["level"] == "word":
        side["level"] = "word"
    elif spec["level"] == "subword-nmt":
        side.update(
            level="bpe", tokenizer_type="subword-nmt", tokenizer_cfg={"codes": f"data/{name}.codes"}
        )
    else:
        side.update(
            level="bpe",
            tokenizer_type="sentencepiece",
            tokenizer_cfg={"model_file": f"data/{name}.model"},
        )
    return side


def config(name: str, spec: dict) -> dict:
    """A JoeyNMT 2.3 training configuration for one model of MODELS."""
    enc_layers, dec_layers = spec["layers"]
    enc_emb, dec_emb = spec["embedding"]
    enc_hidden, dec_hidden = spec["hidden"]
    scale = spec.get("scale", False)
    return {
        "name": name,
        "model_dir": f"models/{name}",
        "joeynmt_version": "2.3.0",
        "use_cuda": False,
        "data": {
            "train": "data/train",
            "dev": "data/dev",
            "dataset_type": "plain",
            "src": _side("src", spec),
            "trg": _side("trg", spec),
        },
        "training": {
            "random_seed": 7,
            "optimizer": "adam",
            "learning_rate": 0.01,
            "scheduling": "exponential",
            "decrease_factor": 0.98,
            "batch_size": 64,
            "batch_type": "sentence",
            "epochs": 100,
            "updates": UPDATES,
            "validation_freq": 100,
            "logging_freq": 50,
            "early_stopping_metric": "ppl",
            "keep_best_ckpts": 1,
            "overwrite": True,
            "print_valid_sents": [],
        },
        "testing": {"beam_size": 5, **spec.get("testing", {})},
        "model": {
            "initializer": "xavier_uniform",
            "tied_softmax": spec.get("tied_softmax", False),
            "encoder": {
                "type": "recurrent",
                "rnn_type": spec["rnn"],
                "embeddings": {"embedding_dim": enc_emb, "scale": scale},
                "hidden_size": enc_hidden,
                "bidirectional": True,
                "num_layers": enc_layers,
                "dropout": 0.1,
            },
            "decoder": {
                "type": "recurrent",
                "rnn_type": spec["rnn"],
                "embeddings": {"embedding_dim": dec_emb, "scale": scale},
                "hidden_size": dec_hidden,
                "attention": spec["attention"],
                "init_hidden": spec["init_hidden"],
                "input_feeding": spec["input_feeding"],
                "num_layers": dec_layers,
                "dropout": 0.1,
                "hidden_dropout": 0.1,
            },
        },
    }


def prepare_data(work: Path) -> None:
    """Corpus, subword-nmt codes and SentencePiece models under work/data."""
    import sentencepiece as spm
    from subword_nmt import learn_bpe

    sys.path.insert(0, str(PEERS))
    import corpus

    data = work / "data"
    corpus.write(data)
    for side in ("src", "trg"):
        with (
            (data / f"train.{side}").open(encoding="utf-8") as infile,
            (data / f"{side}.codes").open("w", encoding="utf-8") as outfile,
        ):
            learn_bpe.learn_bpe(infile, outfile, 20, min_frequency=2)
        spm.SentencePieceTrainer.train(
            input=str(data / f"train.{side}"),
            model_prefix=str(data / side),
            vocab_size=40,
            model_type="bpe",
            normalization_rule_name="identity",  # no normalisation tables: a small file
            character_coverage=1.0,
            num_threads=1,
            minloglevel=2,
        )


def train(work: Path, name: str) -> None:
    import yaml

    cfg_path = work / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(config(name, MODELS[name]), sort_keys=False), "utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "joeynmt", "train", cfg_path.name, "--skip-test"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"training {name} failed:\n{run.stderr[-3000:]}")


def _round(values, decimals: int) -> list:
    import numpy as np

    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def _teacher_forced(model, dev_data) -> list[dict]:
    """Attention and target log-probs with the reference fed in, one sentence at a time.

    Calls the model's own encoder and RecurrentDecoder as ``Model.forward`` does in training.
    """
    import torch
    import torch.nn.functional as F

    forced = []
    for index in range(len(dev_data)):
        batch = dev_data.collate_fn(
            [dev_data[index]], pad_index=model.pad_index, eos_index=model.eos_index
        )
        with torch.no_grad():
            encoder_output, encoder_hidden, _, _ = model(return_type="encode", **vars(batch))
            outputs, _, att_probs, _ = model(
                return_type="decode",
                encoder_output=encoder_output,
                encoder_hidden=encoder_hidden,
                src_mask=batch.src_mask,
                trg_input=batch.trg_input,
                unroll_steps=batch.trg_input.size(1),
            )
        log_probs = F.log_softmax(outputs, dim=-1)[0]  # [T, V]
        target = batch.trg[0].tolist()
        target_logprobs = [log_probs[t, i].item() for t, i in enumerate(target)]
        forced.append(
            {
                "source": dev_data.src[index],
                "target": dev_data.trg[index],
                "src_tokens": [model.src_vocab._itos[i] for i in batch.src[0].tolist()],
                "tgt_tokens": [model.trg_vocab._itos[i] for i in target],
                "attention": _round(att_probs[0].numpy(), EXACT_DECIMALS),
                "token_logprobs": _round(target_logprobs, EXACT_DECIMALS),
            }
        )
    return forced


def _predict(model, test_data, args, *, detail: bool) -> dict:
    """Greedy and beam-5 (5-best) outputs from ``joeynmt.prediction.predict``.

    One sentence per batch, so that JoeyNMT's length limit is the sentence's own. With
    ``detail``, also the greedy attention and token log-probs and the beam scores (which
    JoeyNMT returns as float32 whatever the model's precision).
    """
    from joeynmt.prediction import predict

    def run(**changes):
        test_args = args.test._replace(
            batch_size=1, batch_type="sentence", return_prob="hyp", **changes
        )
        _, _, hyps, tokens, scores, attention = predict(
            model=model,
            data=test_data,
            device=args.device,
            n_gpu=0,
            compute_loss=False,
            num_workers=0,
            args=test_args,
            autocast=args.autocast,
        )
        return hyps, tokens, scores, attention

    sources = test_data.src
    hyps, tokens, scores, attention = run(beam_size=1, n_best=1, return_attention=detail)
    greedy = []
    for i, source in enumerate(sources):
        item = {"source": source, "translation": hyps[i], "tgt_tokens": tokens[i]}
        if detail:
            size = len(tokens[i])
            item["token_logprobs"] = _round(scores[i][:size], DECIMALS)
            item["attention"] = _round(attention[i][:size], DECIMALS)
        greedy.append(item)
    n_best = 5
    hyps, tokens, scores, _ = run(beam_size=5, n_best=n_best, return_attention=False)
    beam = []
    for i, source in enumerate(sources):
        nbest = []
        for r in range(n_best):
            hyp = {"translation": hyps[i * n_best + r], "tgt_tokens": tokens[i * n_best + r]}
            if detail:
                hyp["score"] = _round(scores[i * n_best + r], DECIMALS)[0]
            nbest.append(hyp)
        beam.append({"source": source, "nbest": nbest})
    return {"greedy": greedy, "beam5": beam}


def _segmentation(tokenizers: dict, count: int = 300) -> dict:
    """Pieces JoeyNMT's own tokenizers make of random strings of known syllables.

    Checks subword segmentation beyond the test sentences, including JoeyNMT's restriction of
    SentencePiece and BPE to the vocabulary.
    """
    import random

    sys.path.insert(0, str(PEERS))
    import corpus

    rng = random.Random(5)
    syllables = [*corpus.SYLLABLES, "ne", "mo", "em", "o", "lolo"]
    texts = [
        " ".join(
            "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
            for _ in range(rng.randint(1, 6))
        )
        for _ in range(count)
    ]
    return {
        side: [{"text": t, "pieces": tokenizers[side](t)} for t in texts] for side in ("src", "trg")
    }


def references(work: Path, name: str) -> dict:
    """Teacher-forced, greedy and beam-5 outputs of one trained model, by JoeyNMT's code.

    The model runs in float64 for the numbers (JoeyNMT's code is precision-agnostic), and
    in float32, its default, for the translations its users see.
    """
    import joeynmt
    import torch
    from joeynmt.config import load_config, parse_global_args
    from joeynmt.prediction import prepare

    torch.set_num_threads(1)
    cwd = Path.cwd()
    os.chdir(work)
    try:
        cfg = load_config(Path(f"models/{name}/config.yaml"))
        cfg["data"]["test"] = "data/test"  # no data/test.trg beside it: source only
        cfg["testing"]["load_model"] = f"models/{name}/best.ckpt"
        args = parse_global_args(cfg, rank=0, mode="test")
        model, _, dev_data, test_data = prepare(args, rank=0, mode="test")
        model.eval()
        float32 = _predict(model, test_data, args, detail=False)
        model.double()
        result = {
            "model": name,
            "toolkit": "joeynmt",
            "version": getattr(joeynmt, "__version__", "2.3.0"),
            "torch": torch.__version__,
            "segmentation": _segmentation(test_data.tokenizer),
            "teacher_forced": _teacher_forced(model, dev_data),
            **_predict(model, test_data, args, detail=True),
            "greedy_float32": float32["greedy"],
            "beam5_float32": float32["beam5"],
        }
    finally:
        os.chdir(cwd)
    return result


def install(work: Path, name: str) -> None:
    """Copy what JoeyNMT wrote into tests/peers/joeynmt/<name> (best.ckpt as a plain file)."""
    model_dir = work / "models" / name
    target = HERE / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for file in ("config.yaml", "src_vocab.txt", "trg_vocab.txt"):
        shutil.copyfile(model_dir / file, target / file)
    for extra in ("src.codes", "trg.codes", "src.model", "trg.model"):
        if (model_dir / extra).is_file():
            shutil.copyfile(model_dir / extra, target / extra)
    shutil.copyfile((model_dir / "best.ckpt").resolve(), target / "best.ckpt")


def reuse(work: Path, name: str) -> None:
    """Put an installed fixture back where JoeyNMT expects it (models/<name>, data/)."""
    model_dir = work / "models" / name
    shutil.copytree(HERE / name, model_dir)
    for extra in ("src.codes", "trg.codes", "src.model", "trg.model"):
        if (model_dir / extra).is_file():
            shutil.copyfile(model_dir / extra, work / "data" / extra)


def write_reference(name: str, result: dict) -> None:
    text = json.dumps(result, ensure_ascii=False, indent=None)
    with gzip.GzipFile(HERE / "reference" / f"{name}.json.gz", "wb", mtime=0) as out:
        out.write(text.encode("utf-8"))


def main() -> None:
    """``regenerate.py [--references-only] [MODEL ...]``: train (or reuse) and record."""
    arguments = sys.argv[1:]
    references_only = "--references-only" in arguments
    names = [a for a in arguments if not a.startswith("--")] or list(MODELS)
    with tempfile.TemporaryDirectory(prefix="joey-fixtures-") as tmp:
        work = Path(tmp)
        prepare_data(work)
        (HERE / "reference").mkdir(exist_ok=True)
        for name in names:
            if references_only:
                reuse(work, name)
            else:
                print(f"training {name}", flush=True)
                train(work, name)
            print(f"reference outputs of {name}", flush=True)
            result = references(work, name)
            if not references_only:
                install(work, name)
            write_reference(name, result)


if __name__ == "__main__":
    main()
