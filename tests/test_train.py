"""Training: a tiny run learns, is deterministic, and bad input is one clear error."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.cli.train import FLAGS
from attnviz.errors import InputError, OutputError, UsageError
from attnviz.train import (
    MAX_PARAMETERS,
    DataError,
    DivergedError,
    ModelSpec,
    OptionError,
    TrainConfig,
    Trainer,
    read_parallel,
    read_tsv,
    train,
)

RECIPE = Path(__file__).resolve().parent.parent / "sample_models" / "recipe"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


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


TINY_MODEL = ModelSpec(
    embedding_size=16, hidden_size=16, decoder_hidden_size=32, attention_size=16, dropout=0.0
)
TINY_CLI = ["--spm-type", "bpe", "--src-vocab-size", "200", "--tgt-vocab-size", "420"]
TINY_CLI += ["--embedding-size", "16", "--hidden-size", "16", "--attention-size", "16"]
TINY_CLI += ["--threads", "1"]


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


def prepared(corpus, **changes) -> Trainer:
    trainer = Trainer(TINY_MODEL, tiny_config(**changes))
    trainer.prepare(read_tsv(corpus))
    return trainer


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# -- training runs ---------------------------------------------------------------------------


def test_tiny_run_learns_and_checkpoint_translates(corpus, tmp_path):
    from attnviz.translator import load_model

    out = tmp_path / "m.pt"
    result = train(read_tsv(corpus), out, spec=TINY_MODEL, config=tiny_config())
    losses = [entry["valid_loss"] for entry in result.history]
    assert [entry["step"] for entry in result.history] == [8, 16, 24]
    assert losses[-1] < losses[0]
    assert result.best_valid_loss == min(losses)
    translator = load_model(str(out))
    alignment = translator.translate("the boy ate an apple .")[0]
    assert alignment.shape[0] >= 1 and alignment.shape[1] >= 1
    meta = translator.checkpoint.metadata
    assert meta["steps"] == 24 and len(meta["corpus_sha256"]) == 64
    assert meta["valid_loss"] == pytest.approx(result.best_valid_loss, abs=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_training_is_deterministic_for_a_seed(corpus, tmp_path):
    pairs = read_tsv(corpus)
    config = tiny_config(max_steps=6, eval_every=6)
    first = train(pairs, tmp_path / "a.pt", spec=TINY_MODEL, config=config)
    second = train(pairs, tmp_path / "b.pt", spec=TINY_MODEL, config=config)
    assert len(first.history) == 1 and first.history == second.history
    a, b = weights(tmp_path / "a.pt"), weights(tmp_path / "b.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupt_keeps_best_checkpoint(corpus, tmp_path):
    def stop_after_first_eval(progress):
        if progress.event == "eval":
            raise KeyboardInterrupt

    out = tmp_path / "m.pt"
    result = train(
        read_tsv(corpus), out, spec=TINY_MODEL, config=tiny_config(), callback=stop_after_first_eval
    )
    assert result.interrupted and out.exists() and result.steps == 8
    assert torch.load(out, weights_only=True)["metadata"]["steps"] == 8


def test_callback_sees_every_step_and_evaluation(corpus, tmp_path):
    events = []
    train(
        read_tsv(corpus),
        tmp_path / "m.pt",
        spec=TINY_MODEL,
        config=tiny_config(max_steps=10, eval_every=4),
        callback=lambda p: events.append((p.event, p.step, p.total_steps, p.valid_loss)),
    )
    assert [(e, s) for e, s, _, _ in events if e == "step"] == [("step", s) for s in range(1, 11)]
    assert [s for e, s, _, _ in events if e == "eval"] == [4, 8, 10]
    assert {total for _, _, total, _ in events} == {10}
    assert all((v is None) == (e == "step") for e, _, _, v in events)


# -- the Trainer API -------------------------------------------------------------------------


def test_trainer_fit_evaluate_save_best(corpus, tmp_path):
    trainer = prepared(corpus, max_steps=16)
    untrained = trainer.evaluate()
    # an untrained model spreads its guesses: close to log(vocabulary size)
    assert abs(untrained - math.log(420)) < 0.1
    out = tmp_path / "m.pt"
    result = trainer.fit(out)
    assert result.history == trainer.history and len(result.history) == 2
    # evaluate() is the loss fit recorded for the model as it stands after the last step
    assert trainer.evaluate() == result.history[-1]["valid_loss"] < untrained
    # the file holds the best model: its weights give exactly the best loss
    saved = weights(out)
    last = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.model.load_state_dict(saved)
    assert trainer.evaluate() == result.best_valid_loss == trainer.best_valid_loss
    trainer.model.load_state_dict(last)

    before = out.read_bytes()
    assert not trainer.save_best(out, result.best_valid_loss)  # not better: nothing written
    assert out.read_bytes() == before
    assert trainer.save_best(out, result.best_valid_loss - 0.5)
    assert trainer.best_valid_loss == result.best_valid_loss - 0.5
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["valid_loss"] == round(result.best_valid_loss - 0.5, 5) and meta["steps"] == 16
    assert all(torch.equal(weights(out)[k], last[k]) for k in last)


def test_trainer_needs_prepare_before_fit_or_evaluate(tmp_path):
    trainer = Trainer(TINY_MODEL, tiny_config())
    with pytest.raises(UsageError, match="prepare"):
        trainer.evaluate()
    with pytest.raises(UsageError, match="prepare"):
        trainer.fit(tmp_path / "m.pt")
    assert not any(tmp_path.iterdir())


def test_patience_stops_after_evaluations_without_gain(corpus, tmp_path):
    trainer = prepared(corpus, patience=1, max_steps=40)
    trainer.evaluate = lambda: 5.0  # the first evaluation is the best; the second is no better
    result = trainer.fit(tmp_path / "m.pt")
    assert result.stopped_early and result.steps == 16
    assert [h["step"] for h in result.history] == [8, 16]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ("a\tb", "list of"),
        ([("a", "b"), ("c",)], r"pairs\[1\]"),
        ([("a", 1)], r"pairs\[0\]"),
    ],
)
def test_trainer_refuses_pairs_of_the_wrong_type(pairs, message):
    with pytest.raises(UsageError, match=message):
        Trainer(TINY_MODEL, tiny_config()).prepare(pairs)


@pytest.mark.parametrize(("spec", "config"), [(None, {"lr": 1}), ({"hidden_size": 8}, None)])
def test_trainer_refuses_options_of_the_wrong_type(spec, config):
    with pytest.raises(UsageError, match="must be a"):
        Trainer(spec, config)


# -- the model spec --------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize(("bidirectional", "layers"), [(True, 1), (False, 2), (True, 3)])
def test_parameter_count_is_exact_without_building(attention, rnn, bidirectional, layers):
    from attnviz.families.rnn.model import RNNModel

    decoder = None if attention == "dot" else 11
    spec = ModelSpec(
        attention=attention,
        rnn=rnn,
        embedding_size=5,
        hidden_size=7,
        decoder_hidden_size=decoder,
        attention_size=3,
        layers=layers,
        bidirectional=bidirectional,
    )
    model = RNNModel(spec.model_config(13, 17))
    assert spec.parameter_count(13, 17) == model.parameter_count()


def test_decoder_size_defaults_to_the_encoder_output_size():
    assert ModelSpec(hidden_size=24).model_config(8, 8).decoder_hidden_size == 48
    assert ModelSpec(hidden_size=24, bidirectional=False).decoder_size == 24
    assert ModelSpec(hidden_size=24, decoder_hidden_size=10).decoder_size == 10


def test_a_model_too_big_is_refused_before_anything_is_built():
    spec = ModelSpec(hidden_size=8000, layers=16)
    assert spec.parameter_count(1000, 1000) > MAX_PARAMETERS
    with pytest.raises(UsageError, match="parameters"):
        Trainer(spec, TrainConfig())
    huge_vocabulary = TrainConfig(vocab_size=1_000_000)
    with pytest.raises(UsageError, match="parameters"):
        Trainer(ModelSpec(embedding_size=512, hidden_size=512), huge_vocabulary)


# -- option checks ---------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
LIBRARY_CASES = [
    (TrainConfig, "learning_rate", NAN),
    (TrainConfig, "learning_rate", INF),
    (TrainConfig, "learning_rate", 0.0),
    (TrainConfig, "learning_rate", -1.0),
    (TrainConfig, "learning_rate", "0.1"),
    (TrainConfig, "seed", -1),
    (TrainConfig, "seed", 2**32),
    (TrainConfig, "seed", 1.5),
    (TrainConfig, "epochs", 0),
    (TrainConfig, "epochs", True),
    (TrainConfig, "max_steps", 0),
    (TrainConfig, "max_time", NAN),
    (TrainConfig, "max_time", 0),
    (TrainConfig, "eval_every", 0),
    (TrainConfig, "clip", -1.0),
    (TrainConfig, "clip", INF),
    (TrainConfig, "patience", -1),
    (TrainConfig, "lr_decay", 0.0),
    (TrainConfig, "lr_decay", 1.5),
    (TrainConfig, "valid_fraction", 1.0),
    (TrainConfig, "label_smoothing", NAN),
    (TrainConfig, "max_length", 0),
    (TrainConfig, "vocab_size", 7),
    (TrainConfig, "tgt_vocab_size", 0),
    (TrainConfig, "src_vocab_size", 10**7),
    (TrainConfig, "batch_sentences", 0),
    (TrainConfig, "batch_tokens", 0),
    (TrainConfig, "threads", 0),
    (TrainConfig, "spm_type", "word"),
    (ModelSpec, "hidden_size", 0),
    (ModelSpec, "hidden_size", 10**12),
    (ModelSpec, "hidden_size", "8"),
    (ModelSpec, "decoder_hidden_size", 0),
    (ModelSpec, "embedding_size", -3),
    (ModelSpec, "attention_size", 8.0),
    (ModelSpec, "layers", 0),
    (ModelSpec, "layers", 100),
    (ModelSpec, "dropout", 1.5),
    (ModelSpec, "dropout", 1.0),
    (ModelSpec, "dropout", NAN),
    (ModelSpec, "bidirectional", "yes"),
    (ModelSpec, "attention", "cosine"),
    (ModelSpec, "rnn", "transformer"),
]


@pytest.mark.parametrize(("kind", "name", "value"), LIBRARY_CASES)
def test_library_checks_every_option_and_names_the_field(kind, name, value):
    with pytest.raises(OptionError) as caught:
        kind(**{name: value})
    assert caught.value.field == name
    assert str(caught.value).startswith(f"{name} ") and "--" not in str(caught.value)


def test_dot_attention_needs_matching_sizes():
    with pytest.raises(OptionError, match="dot attention") as caught:
        ModelSpec(attention="dot", hidden_size=8, decoder_hidden_size=10)
    assert caught.value.field == "decoder_hidden_size"
    assert ModelSpec(attention="dot", hidden_size=8, decoder_hidden_size=16).decoder_size == 16


def test_every_option_field_maps_to_a_flag_of_the_command():
    command = typer.main.get_command(app).commands["train"]
    flags = {opt for param in command.params for opt in param.opts}
    fields = {f.name for f in dataclasses.fields(TrainConfig) + dataclasses.fields(ModelSpec)}
    without_flag = {"valid_fraction", "label_smoothing", "bidirectional"}
    assert set(FLAGS) == fields - without_flag
    assert set(FLAGS.values()) <= flags


CLI_CASES = [
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "0"], "--lr must be in (0, 1]"),
    (["--lr", "-1"], "--lr must be in (0, 1]"),
    (["--seed", "-1"], "--seed must be between 0 and 4,294,967,295"),
    (["--seed", str(10**30)], "--seed must be between 0 and 4,294,967,295"),
    (["--tgt-vocab-size", "0"], "--tgt-vocab-size must be between 8"),
    (["--vocab-size", "4"], "--vocab-size must be between 8"),
    (["--decoder-hidden-size", "0"], "--decoder-hidden-size must be between 1"),
    (["--hidden-size", str(10**9)], "--hidden-size must be between 1 and 8,192"),
    (["--hidden-size", "8000", "--layers", "16"], "parameters"),
    (["--max-time", "nan"], "--max-time must be a finite number"),
    (["--max-time", "-5"], "--max-time must be greater than 0"),
    (["--eval-every", "0"], "--eval-every must be between 1"),
    (["--clip", "-1"], "--clip must be at least 0"),
    (["--patience", "-1"], "--patience must be between 0"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
    (["--epochs", "0"], "--epochs must be between 1"),
    (["--steps", "0"], "--steps must be between 1"),
    (["--lr-decay", "2"], "--lr-decay must be in (0, 1]"),
    (["--batch-size", "0"], "--batch-size must be between 1"),
    (["--batch-tokens", "0"], "--batch-tokens must be between 1"),
    (["--max-length", "0"], "--max-length must be between 1"),
    (["--threads", "0"], "--threads must be between 1"),
    (["--spm-type", "word"], "--spm-type must be one of unigram, bpe"),
    (["--attention", "cosine"], "--attention must be one of"),
    (["--attention", "dot", "--decoder-hidden-size", "10"], "--decoder-hidden-size (10)"),
]


@pytest.mark.parametrize(("args", "message"), CLI_CASES)
def test_cli_refuses_bad_options_before_reading_data(tmp_path, args, message):
    # DATA does not exist: the option error must come first
    result = invoke("train", tmp_path / "missing.tsv", "--out", tmp_path / "m.pt", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("attnviz: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not any(field in result.stderr for field in FLAGS if "_" in field)  # flags only
    assert not any(tmp_path.iterdir())


# -- data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no sentence pairs"),
        ("hello world\n", "no tab"),
        ("a\tb\tc\n", "more than one tab"),
        ("\tb\n", "empty source or target"),
        ("a\tb\n\xff\tc\n", "2: not UTF-8"),
    ],
)
def test_bad_tsv_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content.encode().replace("\xff".encode(), b"\xff"))  # a stray byte
    with pytest.raises(InputError, match=message):
        read_tsv(path)
    result = invoke("train", path, "--out", tmp_path / "m.pt")
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()


def test_readers_split_on_newlines_only(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("\ufeffa\x0cb\tc\u2028d\r\ne\tf\n".encode())
    assert read_tsv(path) == [("a\x0cb", "c\u2028d"), ("e", "f")]
    source, target = tmp_path / "src.txt", tmp_path / "tgt.txt"
    source.write_text("a\n\nb\n", encoding="utf-8")
    target.write_text("x\n\ny\n", encoding="utf-8")
    assert read_parallel(source, target) == [("a", "x"), ("b", "y")]
    target.write_text("x\n", encoding="utf-8")
    with pytest.raises(InputError, match="has 3 lines but"):
        read_parallel(source, target)


def test_corpus_too_small_for_vocabulary(corpus, tmp_path):
    pairs = read_tsv(corpus)[:40]
    with pytest.raises(DataError, match="too small for a vocabulary of 5000") as caught:
        train(pairs, tmp_path / "m.pt", config=tiny_config(src_vocab_size=5000))
    assert caught.value.field == "src_vocab_size" and "--" not in str(caught.value)
    result = invoke("train", corpus, "--out", tmp_path / "m.pt", "--vocab-size", "90000")
    assert result.exit_code == 1 and "use --vocab-size" in result.stderr
    result = invoke("train", corpus, "--out", tmp_path / "m.pt", "--src-vocab-size", "90000")
    assert result.exit_code == 1 and "use --src-vocab-size" in result.stderr
    assert not any(tmp_path.iterdir())


def test_no_pair_within_max_length(corpus, tmp_path):
    with pytest.raises(DataError, match="at most 2 tokens") as caught:
        prepared(corpus, max_length=2)
    assert caught.value.field == "max_length"
    result = invoke("train", corpus, "--out", tmp_path / "m.pt", *TINY_CLI, "--max-length", "2")
    assert result.exit_code == 1 and "(--max-length)" in result.stderr
    assert not any(tmp_path.iterdir())


# -- divergence ------------------------------------------------------------------------------


def test_nan_loss_stops_and_writes_nothing(corpus, tmp_path):
    trainer = prepared(corpus)
    with torch.no_grad():
        trainer.model.decoder.output.bias.fill_(float("nan"))
    out = tmp_path / "m.pt"
    with pytest.raises(
        DivergedError, match="step 1: the training loss is nan; nothing was written"
    ):
        trainer.fit(out)
    assert not any(tmp_path.iterdir())


def test_divergence_after_a_good_checkpoint_keeps_it(corpus, tmp_path):
    trainer = prepared(corpus)

    def poison_after_first_eval(progress):
        if progress.event == "eval":
            with torch.no_grad():
                trainer.model.encoder.embedding.weight.fill_(float("inf"))

    out = tmp_path / "m.pt"
    with pytest.raises(DivergedError, match=r"step 9: .* best checkpoint so far \(step 8\)"):
        trainer.fit(out, callback=poison_after_first_eval)
    saved = torch.load(out, weights_only=True)
    assert saved["metadata"]["steps"] == 8
    assert all(bool(torch.isfinite(t).all()) for t in saved["state_dict"].values())


def test_save_best_refuses_non_finite_losses_and_weights(corpus, tmp_path):
    trainer = prepared(corpus)
    out = tmp_path / "m.pt"
    with pytest.raises(DivergedError, match="validation loss is inf"):
        trainer.save_best(out, float("inf"))
    with pytest.raises(DivergedError, match="validation loss is nan"):
        trainer.save_best(out, float("nan"))
    with torch.no_grad():
        trainer.model.bridge.hidden.weight[0, 0] = float("nan")
    with pytest.raises(DivergedError, match="weights is nan"):
        trainer.save_best(out, 1.0)
    assert not any(tmp_path.iterdir())


def test_cli_divergence_is_one_line_naming_the_flag(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "evaluate", lambda self: float("nan"))
    out = tmp_path / "m.pt"
    result = invoke("train", corpus, "--out", out, *TINY_CLI, "--steps", "2", "--lr", "0.01")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("attnviz: error: training diverged at step 2")
    assert "nothing was written; try a lower --lr (now 0.01)" in last
    assert "Traceback" not in result.output and not out.exists()


# -- the output path -------------------------------------------------------------------------


def _make_device(path: Path) -> None:
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs privileges this run does not have")


def _make_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p.mkdir(), "a folder"),
        (os.mkfifo, "a named pipe"),
        (lambda p: p.symlink_to(p.parent / "elsewhere.pt"), "a symbolic link"),
        (lambda p: p.symlink_to(p.parent / "missing.pt"), "a symbolic link"),
        (_make_socket, "a socket"),
        (_make_device, "a device"),
    ],
)
@pytest.mark.parametrize("force", [False, True])
def test_out_refuses_anything_but_a_regular_file(tmp_path, make, kind, force):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "elsewhere.pt").write_bytes(b"keep me")
    out = folder / "m.pt"
    make(out)
    before = os.lstat(out)
    args = ["--force"] if force else []
    # DATA does not exist: the output check must come first
    result = invoke("train", tmp_path / "missing.tsv", "--out", out, *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"attnviz: error: {out}: exists and is {kind}; refusing to replace it"
    )
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert (folder / "elsewhere.pt").read_bytes() == b"keep me"
    assert sorted(p.name for p in folder.iterdir()) == ["elsewhere.pt", "m.pt"]
    with pytest.raises(OutputError, match="refusing to replace"):
        train([("a", "b")] * 8, out, overwrite=True)


def test_out_in_a_missing_folder_is_refused(tmp_path):
    result = invoke("train", tmp_path / "missing.tsv", "--out", tmp_path / "no" / "m.pt")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert not any(tmp_path.iterdir())


def test_cli_train_needs_force_to_replace_and_writes_metadata(corpus, tmp_path):
    out = tmp_path / "cli.pt"
    out.write_bytes(b"an older model")
    args = ["train", corpus, "--out", out, *TINY_CLI]
    args += ["--steps", "4", "--eval-every", "4", "--attention", "general"]
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert (
        refused.stderr.strip() == f"attnviz: error: {out}: file exists; pass --force to replace it"
    )
    assert out.read_bytes() == b"an older model"
    result = invoke(*args, "--force")
    assert result.exit_code == 0, result.output
    assert "done: 4 steps" in result.stderr and "step 4: validation loss" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.pt"]
    info = invoke("info", out)
    assert info.exit_code == 0
    assert "training.corpus_sha256" in info.stdout and "general" in info.stdout
    assert "training.command" in info.stdout
    config = torch.load(out, weights_only=True)["config"]
    assert config["decoder_hidden_size"] == 32  # the default: 2 directions x 16


def test_readme_training_snippet_runs(corpus, tmp_path, monkeypatch):
    readme = (RECIPE.parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### train") :]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    shutil.copy(corpus, tmp_path / "pairs.tsv")
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)  # as the other runs here (threads=1): the machine may be shared
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result, trainer = namespace["result"], namespace["trainer"]
    assert result.steps == 20 and trainer.model_config.decoder_hidden_size == 128
    assert torch.load(tmp_path / "model.pt", weights_only=True)["config"]["attention"] == "general"
