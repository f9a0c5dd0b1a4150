"""Rebuild the OpenNMT-py fixtures: tiny models trained by OpenNMT-py and its own outputs.

Run it with the Python of a throwaway OpenNMT-py 3.5.1 environment, made exactly so:

    python3 -m venv /tmp/peers/onmt-venv
    /tmp/peers/onmt-venv/bin/pip install torch==2.13.0
    /tmp/peers/onmt-venv/bin/pip install --no-deps opennmt-py==3.5.1
    /tmp/peers/onmt-venv/bin/pip install configargparse pyyaml six sentencepiece \
        "pyonmttok>=1.37,<2" numpy spacy pyahocorasick rapidfuzz regex fasttext sacrebleu

(OpenNMT-py pins torch<2.3; torch 2.13 works for everything used here. ctranslate2, flask,
waitress and tensorboard are not needed.)

    /tmp/peers/onmt-venv/bin/python tests/peers/opennmt_py/regenerate.py [--work DIR] [--only NAME]
        [--reuse]    # --reuse: keep models already trained in DIR, redo only the outputs

For every model in MODELS it writes into this folder:

- ``NAME.pt``: the checkpoint as OpenNMT-py saved it (``raw``) or after
  ``onmt_release_model`` (optimizer state dropped), the form users usually share;
- ``NAME.json``: the options, the tokens of the teacher-forced pairs, ``onmt_translate``'s
  greedy and beam-5 translations of every test sentence with their scores, and the beam-5
  ``-n_best 5`` lists with their scores;
- ``NAME.npz``: teacher-forced attention ``tf/<i>/attention`` [T, S] and target log-probs
  ``tf/<i>/logprobs`` [T] (T counts ``</s>``), and the attention OpenNMT-py's greedy and beam
  searches carried for the first sentences (``greedy/<i>``, ``beam/<i>`` and, with
  ``-n_best 5``, ``nbest/<i>/<rank>``).

plus ``test.src``/``test.tgt`` (the test split) and, for the SentencePiece model, its two
``.model`` files. Teacher forcing runs the model's own modules (encoder, ``init_state``,
decoder, generator + log_softmax): ``onmt_translate -attn_debug`` fails on RNN decoders because
they return step attention as [1, B, S] where the beam expects [B, 1, S]; the beam attention is
taken through the Translator with only that transpose added (the texts it gives are checked
against ``onmt_translate``'s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import corpus  # noqa: E402  (tests/peers/corpus.py)

BIN = Path(sys.executable).parent
# OpenNMT-py 3.5.1 calls torch.load without weights_only; torch >= 2.6 needs this to read its
# own checkpoints (only ever set in this throwaway environment, for files made here)
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
TF_SENTENCES = 50  # teacher-forced pairs: the first 50 test pairs
ATTENTION_SENTENCES = 20  # sentences whose greedy and beam-5 attention are stored
NBEST_SENTENCES = 100  # sentences whose -n_best 5 lists are stored
NBEST_ATTENTION_SENTENCES = 10  # ... and whose n-best attention is
BEAM = 5
STEPS = 400

COMMON = {
    "word_vec_size": 24,
    "hidden_size": 40,
    "optim": "adam",
    "learning_rate": 0.005,
    "batch_size": 64,
    "batch_type": "sents",
    "dropout": 0.1,
    "report_every": 100,
    "num_workers": 0,
    "seed": 7,
    "decoder_type": "rnn",
}

# name -> (OpenNMT-py options, how the fixture is stored)
MODELS: dict[str, tuple[dict, str]] = {
    "mlp-lstm-brnn": (
        {"encoder_type": "brnn", "rnn_type": "LSTM", "global_attention": "mlp", "layers": 1},
        "raw",
    ),
    "general-gru-rnn-2layers-tied": (
        {
            "encoder_type": "rnn",
            "rnn_type": "GRU",
            "global_attention": "general",
            "layers": 2,
            "word_vec_size": 32,
            "hidden_size": 32,
            "share_decoder_embeddings": True,
        },
        "released",
    ),
    "dot-lstm-brnn-2layers-bridge-nofeed": (
        {
            "encoder_type": "brnn",
            "rnn_type": "LSTM",
            "global_attention": "dot",
            "layers": 2,
            "bridge": True,
            "input_feed": 0,
        },
        "released",
    ),
    "general-lstm-rnn-bridge-nofeed-shared": (
        {
            "encoder_type": "rnn",
            "rnn_type": "LSTM",
            "global_attention": "general",
            "layers": 1,
            "bridge": True,
            "input_feed": 0,
            "share_vocab": True,
            "share_embeddings": True,
        },
        "released",
    ),
    "mlp-gru-brnn-2layers-bridge-spm": (
        {
            "encoder_type": "brnn",
            "rnn_type": "GRU",
            "global_attention": "mlp",
            "layers": 2,
            "bridge": True,
            "spm": True,
        },
        "released",
    ),
    "dot-gru-rnn-nofeed": (
        {
            "encoder_type": "rnn",
            "rnn_type": "GRU",
            "global_attention": "dot",
            "layers": 1,
            "input_feed": 0,
        },
        "released",
    ),
}
SPM_VOCAB = 50


def run(command: list[str], **kwargs) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")


def train_spm(work: Path, data: dict[str, Path]) -> dict[str, Path]:
    """One small SentencePiece model per side, trained on the training split."""
    import sentencepiece as spm

    models = {}
    for side, suffix in (("src", ".src"), ("tgt", ".tgt")):
        prefix = work / f"spm-{side}"
        spm.SentencePieceTrainer.train(
            input=str(data["train"].with_suffix(suffix)),
            model_prefix=str(prefix),
            vocab_size=SPM_VOCAB,
            model_type="unigram",
            character_coverage=1.0,
            normalization_rule_name="identity",
            num_threads=1,
            hard_vocab_limit=False,
            minloglevel=2,
        )
        models[side] = prefix.with_suffix(".model")
    return models


def write_config(folder: Path, name: str, data: dict, spm_models: dict | None) -> Path:
    import yaml

    options = {**COMMON, **MODELS[name][0]}
    use_spm = options.pop("spm", False)
    transforms = ["sentencepiece"] if use_spm else []
    config = {
        "save_data": str(folder / "run"),
        "src_vocab": str(folder / "vocab.src"),
        "tgt_vocab": str(folder / ("vocab.src" if options.get("share_vocab") else "vocab.tgt")),
        "overwrite": True,
        "data": {
            "corpus_1": {
                "path_src": str(data["train"].with_suffix(".src")),
                "path_tgt": str(data["train"].with_suffix(".tgt")),
                "transforms": transforms,
            },
            "valid": {
                "path_src": str(data["valid"].with_suffix(".src")),
                "path_tgt": str(data["valid"].with_suffix(".tgt")),
                "transforms": transforms,
            },
        },
        "save_model": str(folder / "model"),
        "save_checkpoint_steps": STEPS,
        "train_steps": STEPS,
        "valid_steps": STEPS,
        **options,
    }
    if use_spm:
        assert spm_models is not None
        config["src_subword_model"] = str(spm_models["src"])
        config["tgt_subword_model"] = str(spm_models["tgt"])
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def translate_cli(model: Path, src: Path, out: Path, beam: int, spm_models: dict | None) -> list:
    command = [str(BIN / "onmt_translate"), "-model", str(model), "-src", str(src)]
    command += ["-output", str(out), "-batch_size", "1", "-gpu", "-1", "-beam_size", str(beam)]
    if beam == 1:
        command += ["-random_sampling_topk", "1"]  # GreedySearch, not a beam of one
    if spm_models:
        command += ["-transforms", "sentencepiece"]
        command += ["-src_subword_model", str(spm_models["src"])]
        command += ["-tgt_subword_model", str(spm_models["tgt"])]
    run(command)
    return out.read_text("utf-8").split("\n")[:-1]


def translator_outputs(
    model: Path, sources: list[str], beam: int, nbest: int, spm_models: dict | None, output: Path
):
    """(texts, scores, attention) of every hypothesis, per sentence, through the Translator."""
    import torch
    from onmt.decoders.decoder import InputFeedRNNDecoder
    from onmt.inference_engine import InferenceEnginePY
    from onmt.opts import translate_opts
    from onmt.utils.parse import ArgumentParser

    parser = ArgumentParser()
    translate_opts(parser)
    args = ["-model", str(model), "-src", "unused", "-batch_size", "1", "-gpu", "-1"]
    args += ["-output", str(output)]
    args += ["-beam_size", str(beam), "-n_best", str(nbest)]
    if beam == 1:
        args += ["-random_sampling_topk", "1"]
    if spm_models:
        args += ["-transforms", "sentencepiece"]
        args += ["-src_subword_model", str(spm_models["src"])]
        args += ["-tgt_subword_model", str(spm_models["tgt"])]
    opt = parser.parse_args(args)
    ArgumentParser.validate_translate_opts(opt)
    ArgumentParser._get_all_transform_translate(opt)
    ArgumentParser._validate_transforms_opts(opt)
    ArgumentParser.validate_translate_opts_dynamic(opt)
    engine = InferenceEnginePY(opt)
    translator = engine.translator
    decoder = translator.model.decoder
    decoder_forward = decoder.forward

    def batch_first_attention(*f_args, **f_kwargs):
        dec_out, attns = decoder_forward(*f_args, **f_kwargs)
        attention = attns.get("std")
        stepwise = f_kwargs.get("step") is not None and attention is not None
        if stepwise and isinstance(decoder, InputFeedRNNDecoder):
            attns["std"] = attention.transpose(0, 1)  # stacked [1, B, S] -> [B, 1, S]
        return dec_out, attns

    decoder.forward = batch_first_attention
    captured = {}
    translate_batch = translator.translate_batch

    def capture(batch, attn_debug):
        results = translate_batch(batch, True)
        index = int(batch["ind_in_bucket"][0])
        captured[index] = (results["scores"][0], results["attention"][0])
        return results

    translator.translate_batch = capture
    with torch.no_grad():
        _, predictions = engine.infer_list(sources)
    texts, scores, attention = [], [], []
    for i, hyps in enumerate(predictions):
        texts.append(list(hyps))
        hyp_scores, hyp_attention = captured[i]
        scores.append([float(s) for s in hyp_scores])
        attention.append([a.float().numpy() for a in hyp_attention])
    return texts, scores, attention


def teacher_forced(model: Path, pairs: list[tuple[list[str], list[str]]]):
    """Attention [T, S] and log-probs [T] of each target (with </s>) from the model's modules."""
    import torch
    from onmt.constants import DefaultTokens
    from onmt.decoders.decoder import InputFeedRNNDecoder
    from onmt.model_builder import load_test_model
    from onmt.opts import translate_opts
    from onmt.utils.parse import ArgumentParser
    from torch.nn.functional import log_softmax

    parser = ArgumentParser()
    translate_opts(parser)
    opt = parser.parse_args(["-model", str(model), "-src", "unused", "-gpu", "-1"])
    vocabs, onmt_model, _ = load_test_model(opt)
    onmt_model.eval()
    results = []
    with torch.no_grad():
        for src_tokens, tgt_tokens in pairs:
            src_ids = vocabs["src"](src_tokens)
            tgt_ids = vocabs["tgt"]([DefaultTokens.BOS, *tgt_tokens, DefaultTokens.EOS])
            src = torch.tensor(src_ids).view(1, -1, 1)  # [B, S, feats]
            tgt = torch.tensor(tgt_ids).view(1, -1, 1)
            src_len = torch.tensor([len(src_ids)])
            enc_out, enc_final, src_len = onmt_model.encoder(src, src_len)
            onmt_model.decoder.init_state(src, enc_out, enc_final)
            dec_out, attns = onmt_model.decoder(tgt[:, :-1], enc_out, src_len=src_len)
            attention = attns["std"]
            if isinstance(onmt_model.decoder, InputFeedRNNDecoder):
                attention = attention.transpose(0, 1)  # stacked [T, B, S] -> [B, T, S]
            logprobs = log_softmax(onmt_model.generator(dec_out), dim=-1)  # [B, T, V]
            gold = tgt[:, 1:, 0]  # [B, T]
            token_logprobs = logprobs.gather(2, gold.unsqueeze(2)).squeeze(2)
            results.append((attention[0].numpy(), token_logprobs[0].numpy()))
    return results


def tokenize(lines: list[str], spm_path: Path | None) -> list[list[str]]:
    if spm_path is None:
        return [line.split(" ") for line in lines]
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_path))
    return [processor.encode(line, out_type=str) for line in lines]


def build_model(name: str, work: Path, data: dict, spm_models: dict, reuse: bool) -> None:
    import numpy as np

    options, storage = MODELS[name]
    use_spm = options.get("spm", False)
    model_spm = spm_models if use_spm else None
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, name, data, model_spm)
    trained = folder / f"model_step_{STEPS}.pt"
    if not (reuse and trained.is_file()):
        print(f"{name}: vocabulary", flush=True)
        run([str(BIN / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"])
        print(f"{name}: training {STEPS} steps", flush=True)
        run([str(BIN / "onmt_train"), "-config", str(config)])
    fixture = HERE / f"{name}.pt"
    if storage == "raw":
        shutil.copyfile(trained, fixture)
    else:
        run([str(BIN / "onmt_release_model"), "-m", str(trained), "-o", str(fixture)])

    test_src = HERE / "test.src"
    sources = test_src.read_text("utf-8").split("\n")[:-1]
    targets = (HERE / "test.tgt").read_text("utf-8").split("\n")[:-1]
    print(f"{name}: onmt_translate greedy and beam {BEAM}", flush=True)
    greedy = translate_cli(fixture, test_src, folder / "greedy.txt", 1, model_spm)
    beam = translate_cli(fixture, test_src, folder / "beam.txt", BEAM, model_spm)

    print(f"{name}: translator n-best, scores and attention", flush=True)
    output = folder / "translator-output.txt"
    greedy_api, greedy_scores, greedy_attention = translator_outputs(
        fixture, sources, 1, 1, model_spm, output
    )
    beam_api, beam_scores, beam_attention = translator_outputs(
        fixture, sources, BEAM, 1, model_spm, output
    )
    if [h[0] for h in greedy_api] != greedy or [h[0] for h in beam_api] != beam:
        sys.exit(f"{name}: the Translator's texts differ from onmt_translate's")
    # n_best changes the search: it goes on until n_best hypotheses have ended
    nbest, nbest_scores, nbest_attention = translator_outputs(
        fixture, sources, BEAM, BEAM, model_spm, output
    )

    print(f"{name}: teacher forcing", flush=True)
    src_tokens = tokenize(sources[:TF_SENTENCES], model_spm["src"] if model_spm else None)
    tgt_tokens = tokenize(targets[:TF_SENTENCES], model_spm["tgt"] if model_spm else None)
    forced = teacher_forced(fixture, list(zip(src_tokens, tgt_tokens, strict=True)))

    arrays = {}
    for i, (attention, logprobs) in enumerate(forced):
        arrays[f"tf/{i}/attention"] = attention.astype(np.float32)
        arrays[f"tf/{i}/logprobs"] = logprobs.astype(np.float32)
    for i in range(ATTENTION_SENTENCES):
        arrays[f"greedy/{i}"] = greedy_attention[i][0].astype(np.float32)
        arrays[f"beam/{i}"] = beam_attention[i][0].astype(np.float32)
    for i in range(NBEST_ATTENTION_SENTENCES):
        for rank, attention in enumerate(nbest_attention[i]):
            arrays[f"nbest/{i}/{rank}"] = attention.astype(np.float32)
    np.savez_compressed(HERE / f"{name}.npz", **arrays)

    record = {
        "toolkit": "OpenNMT-py 3.5.1",
        "options": {**COMMON, **options},
        "steps": STEPS,
        "storage": storage,
        "spm": {side: f"{name}.{side}.spm.model" for side in ("src", "tgt")} if use_spm else None,
        "teacher_forced": {"src_tokens": src_tokens, "tgt_tokens": tgt_tokens},
        "greedy": greedy,
        "greedy_scores": [s[0] for s in greedy_scores],
        "beam": beam,
        "beam_scores": [s[0] for s in beam_scores],
        "beam_size": BEAM,
        "nbest": nbest[:NBEST_SENTENCES],
        "nbest_scores": nbest_scores[:NBEST_SENTENCES],
    }
    lines = [
        f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in record.items()
    ]
    (HERE / f"{name}.json").write_text("{\n" + ",\n".join(lines) + "\n}\n", "utf-8")
    if use_spm:
        for side in ("src", "tgt"):
            shutil.copyfile(spm_models[side], HERE / f"{name}.{side}.spm.model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/onmt-fixtures"))
    parser.add_argument("--only", action="append", choices=sorted(MODELS))
    parser.add_argument(
        "--reuse", action="store_true", help="keep models already trained in --work"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    data = corpus.write_reordering(args.work / "data")
    for suffix in (".src", ".tgt"):
        shutil.copyfile(data["test"].with_suffix(suffix), HERE / f"test{suffix}")
    spm_models = {side: args.work / f"spm-{side}.model" for side in ("src", "tgt")}
    if not (args.reuse and all(path.is_file() for path in spm_models.values())):
        spm_models = train_spm(args.work, data)
    for name in args.only or MODELS:
        build_model(name, args.work, data, spm_models, args.reuse)


if __name__ == "__main__":
    main()
