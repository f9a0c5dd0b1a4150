"""Training: a tiny run learns, is deterministic, and bad input is one clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import InputError, TokenizerError
from attnviz.train import TrainConfig, read_tsv, train

RECIPE = Path(__file__).resolve().parent.parent / "sample_models" / "recipe"
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    sys.path.insert(0, str(RECIPE))
    try:
        import enko_corpus
    finally:
        sys.path.remove(str(RECIPE))
    pairs = enko_corpus.generate(seed=5, n=600)
    path = tmp_path_factory.mktemp("corpus") / "pairs.tsv"
    path.write_text("".join(f"{p.english}\t{p.korean}\n" for p in pairs), encoding="utf-8")
    return path


TINY_MODEL = {
    "embedding_size": 16,
    "hidden_size": 16,
    "decoder_hidden_size": 32,
    "attention_size": 16,
    "dropout": 0.0,
}


def tiny_config(**changes) -> TrainConfig:
    values = {
        "src_vocab_size": 200,
        "tgt_vocab_size": 420,
        "spm_type": "bpe",
        "batch_sentences": 32,
        "max_steps": 24,
        "eval_every": 8,
        "patience": 0,
        "learning_rate": 5e-3,
        "seed": 3,
        "threads": 1,
    }
    values.update(changes)
    return TrainConfig(**values)


def test_tiny_run_learns_and_checkpoint_translates(corpus, tmp_path):
    from attnviz.translator import load_model

    out = tmp_path / "m.pt"
    result = train(read_tsv(corpus), out, model_options=TINY_MODEL, config=tiny_config())
    losses = [entry["valid_loss"] for entry in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert result.best_valid_loss == min(losses)
    translator = load_model(str(out))
    alignment = translator.translate("the boy ate an apple .")[0]
    assert alignment.shape[0] >= 1 and alignment.shape[1] >= 1
    meta = translator.checkpoint.metadata
    assert meta["steps"] == 24 and len(meta["corpus_sha256"]) == 64
    assert meta["valid_loss"] == pytest.approx(result.best_valid_loss, abs=1e-4)
    assert not list(tmp_path.glob(".*.tmp"))


def test_training_is_deterministic_for_a_seed(corpus, tmp_path):
    pairs = read_tsv(corpus)
    config = tiny_config(max_steps=6, eval_every=6)
    first = train(pairs, tmp_path / "a.pt", model_options=TINY_MODEL, config=config)
    second = train(pairs, tmp_path / "b.pt", model_options=TINY_MODEL, config=config)
    assert first.history == second.history
    a = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupt_keeps_best_checkpoint(corpus, tmp_path):
    calls = {"n": 0}

    def stop_after_first_eval(progress):
        calls["n"] += 1
        if progress.event == "eval":
            raise KeyboardInterrupt

    out = tmp_path / "m.pt"
    result = train(
        read_tsv(corpus),
        out,
        model_options=TINY_MODEL,
        config=tiny_config(),
        callback=stop_after_first_eval,
    )
    assert result.interrupted and out.exists() and result.steps == 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no sentence pairs"),
        ("hello world\n", "no tab"),
        ("a\tb\tc\n", "more than one tab"),
        ("\tb\n", "empty source or target"),
    ],
)
def test_bad_tsv_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_tsv(path)
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_corpus_too_small_for_vocabulary(corpus, tmp_path):
    pairs = read_tsv(corpus)[:40]
    with pytest.raises(TokenizerError, match="too small for a vocabulary of 5000"):
        train(pairs, tmp_path / "m.pt", config=tiny_config(src_vocab_size=5000))
    result = runner.invoke(
        app, ["train", str(corpus), "--out", str(tmp_path / "m.pt"), "--vocab-size", "90000"]
    )
    assert result.exit_code == 1 and "vocab" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_cli_train_writes_checkpoint_with_metadata(corpus, tmp_path):
    out = tmp_path / "cli.pt"
    args = ["train", str(corpus), "--out", str(out), "--spm-type", "bpe"]
    args += ["--src-vocab-size", "200", "--tgt-vocab-size", "420"]
    args += ["--embedding-size", "16", "--hidden-size", "16", "--attention-size", "16"]
    args += ["--steps", "4", "--eval-every", "4", "--threads", "1", "--attention", "general"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["info", str(out)])
    assert info.exit_code == 0
    assert "training.corpus_sha256" in info.stdout and "general" in info.stdout
    assert "training.command" in info.stdout
