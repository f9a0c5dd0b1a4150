"""Checkpoint files: lossless round trip, and one clear CheckpointError for every bad file."""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import os
import pathlib
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import make_checkpoint

from attnviz.checkpoint import (
    DIGEST_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    build_model,
    load_checkpoint,
    save_checkpoint,
    weights_digest,
)
from attnviz.errors import AttnvizError, CheckpointError, UsageError

METADATA = {
    "note": "test fixture",
    "epochs": 3,
    "losses": [2.5, 1.25, 0.625],
    "corpus": "영어-한국어 toy",
    "finished": True,
}


def _check_message(err: pytest.ExceptionInfo[CheckpointError], path: Path) -> str:
    message = str(err.value)
    assert isinstance(err.value, AttnvizError)
    assert "\n" not in message, message
    assert str(path) in message, message
    assert "Traceback" not in message
    return message


def _load_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    return _check_message(err, path)


def _payload(checkpoint: Checkpoint) -> dict:
    return checkpoint.to_payload()


# -- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["additive", "general"])
def test_round_trip_is_lossless(tmp_path, spm_models, rnn, attention):
    original = make_checkpoint(spm_models, attention=attention, rnn=rnn, seed=7)
    original.metadata = dict(METADATA)
    path = save_checkpoint(original, tmp_path / "sub" / "model.pt")
    assert path == tmp_path / "sub" / "model.pt"
    # the atomic write leaves no temporary file behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]

    loaded = load_checkpoint(path)

    assert loaded.path == path
    assert loaded.config == original.config
    assert loaded.config.rnn == rnn
    assert loaded.config.attention == attention
    assert list(loaded.state_dict) == list(original.state_dict)
    for key, tensor in original.state_dict.items():
        assert loaded.state_dict[key].dtype == tensor.dtype, key
        assert torch.equal(loaded.state_dict[key], tensor), key
    assert loaded.src_tokenizer == original.src_tokenizer
    assert loaded.src_tokenizer["model"] == spm_models[0]
    assert loaded.tgt_tokenizer["model"] == spm_models[1]
    assert isinstance(loaded.src_tokenizer["model"], bytes)
    assert loaded.metadata == METADATA

    model = build_model(loaded)
    assert not model.training
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, original.state_dict[key]), key


def test_lstm_and_gru_weights_differ_in_shape(spm_models):
    gru = make_checkpoint(spm_models, rnn="gru").state_dict
    lstm = make_checkpoint(spm_models, rnn="lstm").state_dict
    key = "encoder.rnn.weight_ih_l0"
    # LSTM has 4 gates, GRU 3: the round trip above really covered two layouts
    assert lstm[key].shape[0] // 4 == gru[key].shape[0] // 3


def test_payload_is_self_describing(checkpoint_path):
    raw = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT_NAME
    assert raw["format_version"] == FORMAT_VERSION
    assert isinstance(raw["config"], dict)
    assert raw["config"]["src_vocab_size"] == 40
    assert raw["config"]["tgt_vocab_size"] == 42


def test_load_uses_weights_only(monkeypatch, checkpoint_path):
    real_load = torch.load
    calls = []

    def guarded_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        assert kwargs.get("weights_only") is True, kwargs
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded_load)
    loaded = load_checkpoint(checkpoint_path)
    assert loaded.config.tgt_vocab_size == 42
    assert calls == [True]


def test_map_location_is_applied(checkpoint_path):
    loaded = load_checkpoint(checkpoint_path, map_location="cpu")
    assert all(t.device.type == "cpu" for t in loaded.state_dict.values())


# -- files that are not checkpoints ----------------------------------------------------------


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "nowhere.pt")
    assert "no such file" in message


def test_folder(tmp_path):
    folder = tmp_path / "model.pt"
    folder.mkdir()
    message = _load_error(folder)
    assert "folder" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    message = _load_error(path)
    assert "empty" in message


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(4096)))
    message = _load_error(path)
    # garbage is not a pickle holding code: say so plainly, not "could run code"
    assert re.search(r"not a (PyTorch|torch)", message), message
    assert "could run code" not in message


@pytest.mark.parametrize(
    "text",
    ["hello world\nthis is a text file, not a model\n", "not a model\n", "# notes\n", "{}\n"],
    ids=["hello", "not-a-model", "comment", "braces"],
)
def test_text_file(tmp_path, text):
    path = tmp_path / "notes.pt"
    path.write_text(text, encoding="utf-8")
    message = _load_error(path)
    assert "not a PyTorch checkpoint" in message


def test_truncated_file(tmp_path, checkpoint_path):
    data = checkpoint_path.read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    message = _load_error(path)
    assert "truncated or damaged" in message


def test_bare_state_dict(tmp_path, spm_models):
    path = tmp_path / "weights.pt"
    torch.save(make_checkpoint(spm_models).state_dict, path)
    message = _load_error(path)
    assert "bare state dict" in message
    assert "not an attnviz checkpoint" in message


def test_foreign_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(2, 3)}, "vocab": ["a", "b", "c"]}, path)
    message = _load_error(path)
    assert "not an attnviz checkpoint" in message
    assert "model, vocab" in message


def test_not_a_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    message = _load_error(path)
    assert "holds a list" in message


def test_namespace_checkpoint_is_refused_without_unpickling(tmp_path, monkeypatch, spm_models):
    # OpenNMT-py stores its options as an argparse.Namespace next to the weights
    path = tmp_path / "onmt.pt"
    torch.save(
        {"model": make_checkpoint(spm_models).state_dict, "opt": argparse.Namespace(rnn="lstm")},
        path,
    )
    real_load = torch.load
    modes = []

    def recording_load(*args, **kwargs):
        modes.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    message = _load_error(path)
    assert "refused to load" in message
    assert "argparse.Namespace" in message
    # refused by the weights-only unpickler, never retried with full unpickling
    assert modes == [True]


class _TouchMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class _SystemMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _OpenMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload_class", [_TouchMarker, _SystemMarker, _OpenMarker])
@pytest.mark.parametrize("where", ["top", "metadata"])
def test_malicious_pickle_never_runs(tmp_path, spm_models, payload_class, where):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if where == "top":
        torch.save(payload_class(marker), path)
    else:
        payload = _payload(make_checkpoint(spm_models))
        payload["metadata"] = {"note": payload_class(marker)}
        torch.save(payload, path)
    assert path.stat().st_size > 0
    assert not marker.exists()

    message = _load_error(path)

    assert "refused to load" in message
    assert "could run code" in message
    assert not marker.exists()


# -- attnviz files that do not fit -----------------------------------------------------------


def test_newer_format_version(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert "newer" in message
    assert "upgrade attnviz" in message


def test_format_version_not_an_integer(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = "1"
    path = tmp_path / "strver.pt"
    torch.save(payload, path)
    assert "format_version" in _load_error(path)


@pytest.mark.parametrize("key", ["tgt_tokenizer", "src_tokenizer", "config", "state_dict"])
def test_missing_required_key(tmp_path, spm_models, key):
    payload = _payload(make_checkpoint(spm_models))
    del payload[key]
    path = tmp_path / f"no_{key}.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert f"lacks {key}" in message


def test_tokenizer_not_a_spec(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["src_tokenizer"] = "/home/someone/src.model"
    path = tmp_path / "nospm.pt"
    torch.save(payload, path)
    assert "src_tokenizer" in _load_error(path)


def test_version_1_file_with_spm_bytes_is_migrated(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = 1
    payload["src_spm"] = payload.pop("src_tokenizer")["model"]
    payload["tgt_spm"] = payload.pop("tgt_tokenizer")["model"]
    path = tmp_path / "v1.pt"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.src_tokenizer == {"kind": "sentencepiece", "model": spm_models[0]}
    assert loaded.tgt_tokenizer == {"kind": "sentencepiece", "model": spm_models[1]}
    source, target = loaded.tokenizers()
    assert source.vocab_size == 40 and target.vocab_size == 42


def test_version_1_file_without_spm_bytes(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = 1
    del payload["src_tokenizer"], payload["tgt_tokenizer"]
    payload["src_spm"] = "src.model"
    path = tmp_path / "v1bad.pt"
    torch.save(payload, path)
    assert "src_spm must be the SentencePiece model as bytes" in _load_error(path)


def test_unknown_tokenizer_kind_is_one_line(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["tgt_tokenizer"] = {"kind": "magic"}
    path = tmp_path / "magic.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unknown tokenizer kind 'magic'"):
        load_checkpoint(path).tokenizers()


def test_bad_config_value(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["config"]["attention"] = "multihead"
    path = tmp_path / "badcfg.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert "bad model config" in message
    assert "multihead" in message


def test_missing_state_dict_keys(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    del payload["state_dict"]["decoder.output.weight"]
    del payload["state_dict"]["decoder.output.bias"]
    path = tmp_path / "partial.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert "missing keys" in message
    assert "decoder.output.weight" in message
    assert "decoder.output.bias" in message


def test_unexpected_state_dict_keys(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["state_dict"]["decoder.extra.weight"] = torch.zeros(2)
    path = tmp_path / "extra.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert "unexpected keys decoder.extra.weight" in message


def test_shape_mismatch_names_parameter_and_shapes(tmp_path, spm_models):
    checkpoint = make_checkpoint(spm_models)
    checkpoint.config = dataclasses.replace(checkpoint.config, tgt_vocab_size=50)
    path = save_checkpoint(checkpoint, tmp_path / "mismatch.pt")
    message = _load_error(path)
    assert "shape mismatch for decoder.embedding.weight" in message
    assert "[42, 16]" in message
    assert "[50, 16]" in message


def test_in_memory_checkpoint_is_checked_by_build_model(spm_models):
    checkpoint = make_checkpoint(spm_models)
    checkpoint.state_dict = dict(checkpoint.state_dict)
    checkpoint.state_dict["decoder.output.bias"] = torch.full((42,), float("nan"))
    with pytest.raises(CheckpointError, match=r"decoder\.output\.bias holds NaN or infinite"):
        build_model(checkpoint)


# -- config values: types and ranges, checked before anything is built ----------------------

BAD_CONFIGS = [
    ({"hidden_size": 12.0}, "hidden_size must be a whole number, not 12.0"),
    ({"hidden_size": "12"}, "hidden_size must be a whole number, not '12'"),
    ({"src_vocab_size": True}, "src_vocab_size must be a whole number, not True"),
    ({"bidirectional": "yes"}, "bidirectional must be true or false, not 'yes'"),
    ({"input_feeding": 1}, "input_feeding must be true or false, not 1"),
    ({"dropout": "0.1"}, "dropout must be a number, not '0.1'"),
    ({"dropout": float("nan")}, "dropout must be a number, not nan"),
    ({"attention": 3}, "attention must be text, not 3"),
    ({"rnn": None}, "rnn must be text, not NoneType"),
    ({"pad_id": 40}, "pad_id 40 is outside the vocabularies (sizes 40 and 42)"),
    ({"eos_id": -1}, "eos_id -1 is outside the vocabularies"),
    ({"bos_id": 42}, "bos_id 42 is outside the target vocabulary (size 42)"),
    ({"encoder_layers": 10**7}, "encoder_layers must be between 1 and 32, not 10000000"),
    ({"hidden_size": 0}, "hidden_size must be between 1 and 16,384, not 0"),
    ({"tgt_vocab_size": 10**9}, "tgt_vocab_size must be between 1 and 1,000,000"),
    ({"attention": "dot"}, "dot attention needs the decoder query size (20)"),
    ({7: 1}, "config keys must be text; found int 7"),
    ({"colour": "red"}, "unknown config fields: 'colour'"),
]


@pytest.mark.parametrize(("change", "fragment"), BAD_CONFIGS, ids=[str(c) for c, _ in BAD_CONFIGS])
def test_bad_config_types_and_ranges(tmp_path, spm_models, monkeypatch, change, fragment):
    from attnviz.families.rnn import model as model_module

    payload = _payload(make_checkpoint(spm_models))
    payload["config"].update(change)
    path = tmp_path / "cfg.pt"
    torch.save(payload, path)
    built = []
    real_init = model_module.RNNModel.__init__

    def recording_init(self, config):
        built.append(torch.empty(0).device.type)  # "meta" inside the shape computation
        real_init(self, config)

    monkeypatch.setattr(model_module.RNNModel, "__init__", recording_init)
    message = _load_error(path)
    assert "bad model config" in message
    assert fragment in message
    assert built == []  # refused before any network, even a meta one, was built


def test_huge_config_over_small_weights_is_refused_before_building(
    tmp_path, spm_models, monkeypatch
):
    """hidden_size 8000 over the weights of a tiny model: refused from shapes alone."""
    from attnviz.families.rnn import model as model_module

    payload = _payload(make_checkpoint(spm_models))
    payload["config"].update(hidden_size=8000, decoder_hidden_size=8000, attention_size=8000)
    path = tmp_path / "huge.pt"
    torch.save(payload, path)
    devices = []
    real_init = model_module.RNNModel.__init__

    def recording_init(self, config):
        devices.append(torch.empty(0).device.type)
        real_init(self, config)

    monkeypatch.setattr(model_module.RNNModel, "__init__", recording_init)
    message = _load_error(path)
    assert "shape mismatch for encoder.rnn.weight_ih_l0" in message
    assert "config expects [24000, 16]" in message
    assert devices == ["meta"]  # only the allocation-free shape computation ran


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("layers", [1, 3])
def test_expected_shapes_match_a_built_network(rnn, attention, bidirectional, layers):
    from attnviz.families.rnn.model import RNNConfig, RNNModel

    hidden = 7
    config = RNNConfig(
        src_vocab_size=11,
        tgt_vocab_size=13,
        embedding_size=5,
        hidden_size=hidden,
        decoder_hidden_size=hidden * (2 if bidirectional else 1) if attention == "dot" else 9,
        attention_size=4,
        attention=attention,
        rnn=rnn,
        bidirectional=bidirectional,
        encoder_layers=layers,
        decoder_layers=layers,
        input_feeding=layers == 1,
        attn_out_bias=layers == 1,
        dropout=0.0,
    )
    built = {name: tuple(t.shape) for name, t in RNNModel(config).state_dict().items()}
    assert list(config.expected_shapes().items()) == list(built.items())


# -- weights: dense, real, floating, finite, and no more data than the config uses -----------


def _save_with_weight(tmp_path, spm_models, key, value, name="w.pt"):
    payload = _payload(make_checkpoint(spm_models))
    payload["state_dict"] = dict(payload["state_dict"])
    payload["state_dict"][key] = value
    path = tmp_path / name
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("make_value", "fragment"),
    [
        (lambda t: t.clone().fill_(float("nan")), "holds NaN or infinite values"),
        (lambda t: t.clone().index_fill_(0, torch.tensor([3]), float("inf")), "NaN or infinite"),
        (lambda t: -t.abs().clone().fill_(float("inf")), "NaN or infinite"),
        (lambda t: t.to_sparse(), "is a sparse_coo tensor; only dense weights"),
        (lambda t: torch.empty(t.shape, device="meta"), "holds no data (a meta tensor)"),
        (lambda t: t.long(), "has dtype int64; weights must be real floating point"),
        (lambda t: t.to(torch.complex64), "has dtype complex64"),
        (lambda t: t.tolist(), "is not a tensor"),
    ],
    ids=["nan", "inf", "-inf", "sparse", "meta", "int", "complex", "list"],
)
def test_bad_weight_tensors(tmp_path, spm_models, make_value, fragment):
    original = make_checkpoint(spm_models).state_dict["decoder.output.weight"]
    path = _save_with_weight(tmp_path, spm_models, "decoder.output.weight", make_value(original))
    message = _load_error(path)
    assert "decoder.output.weight" in message
    assert fragment in message


def test_half_precision_weights_load(tmp_path, spm_models):
    checkpoint = make_checkpoint(spm_models)
    checkpoint.state_dict = {k: v.half() for k, v in checkpoint.state_dict.items()}
    path = save_checkpoint(checkpoint, tmp_path / "half.pt")
    loaded = load_checkpoint(path)
    assert loaded.state_dict["decoder.output.weight"].dtype == torch.float16
    model = build_model(loaded)
    assert torch.equal(
        model.decoder.output.weight.half(), checkpoint.state_dict["decoder.output.weight"]
    )


def test_tensor_data_beyond_the_config_is_refused(tmp_path, spm_models):
    # a 42-value bias that is a view into 4 MB: torch.save writes the whole storage
    big = torch.zeros(1_000_000)
    path = _save_with_weight(tmp_path, spm_models, "decoder.output.bias", big[:42])
    message = _load_error(path)
    held = re.search(r"holds ([\d,]+) bytes of tensor data", message)
    assert held, message
    assert int(held.group(1).replace(",", "")) >= 4_000_000


def _deflated_copy(source: Path, target: Path) -> Path:
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as packed,
    ):
        for entry in original.infolist():
            packed.writestr(entry.filename, original.read(entry.filename))
    return target


@pytest.mark.parametrize("where", ["metadata", "weights"])
def test_compressed_entries_are_refused_before_reading(tmp_path, spm_models, monkeypatch, where):
    payload = _payload(make_checkpoint(spm_models))
    if where == "metadata":
        payload["metadata"] = {"blob": torch.zeros(2_000_000)}  # 8 MB deflating to a few KB
    plain = tmp_path / "plain.pt"
    torch.save(payload, plain)
    packed = _deflated_copy(plain, tmp_path / "packed.pt")
    assert packed.stat().st_size < 1_000_000
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    message = _load_error(packed)
    assert "is compressed" in message
    assert "uncompressed" in message
    assert calls == []  # refused from the zip directory, nothing inflated


def test_tensor_in_metadata_is_refused_without_reading_it(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["metadata"] = {"blob": torch.zeros(3)}
    path = tmp_path / "tensor_meta.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert "metadata.blob holds a tensor" in message


def test_loaded_weights_do_not_depend_on_the_file(tmp_path, spm_models):
    """Tensor data is memory-mapped while checking, then copied: the file may go away."""
    checkpoint = make_checkpoint(spm_models)
    path = save_checkpoint(checkpoint, tmp_path / "gone.pt")
    loaded = load_checkpoint(path)
    path.write_bytes(b"")  # truncating a mapped file would fault any tensor still mapped
    for key, tensor in checkpoint.state_dict.items():
        assert torch.equal(loaded.state_dict[key], tensor), key


# -- format_version, metadata, tokenizers ----------------------------------------------------


@pytest.mark.parametrize("version", [True, False, -3, 0, 2.0, None, [2]])
def test_format_version_must_be_a_positive_integer(tmp_path, spm_models, version):
    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = version
    path = tmp_path / "ver.pt"
    torch.save(payload, path)
    assert "format_version is missing or not a positive integer" in _load_error(path)


def _self_containing_list() -> list:
    loop: list = ["x"]
    loop.append(loop)
    return loop


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"raw": b"\x00\x01"}, "metadata.raw holds a bytes"),
        ({"loop": _self_containing_list()}, "metadata.loop[1] contains itself"),
        ({"deep": _nested(40)}, "is nested more than 32 levels deep"),
        ({"pairs": {1: "one"}}, "metadata.pairs has a int key; keys must be text"),
        ({"many": list(range(200_000))}, "metadata holds more than 100,000 values"),
        ({"big": "x" * (5 << 20)}, "characters of text"),
        ({"shape": torch.Size([2, 3])}, "metadata.shape holds a Size"),
        ({"kind": torch.float32}, "metadata.kind holds a dtype"),
    ],
    ids=["bytes", "self", "deep", "int-key", "many", "text", "size", "dtype"],
)
def test_metadata_must_be_plain_and_bounded(tmp_path, spm_models, metadata, fragment):
    payload = _payload(make_checkpoint(spm_models))
    payload["metadata"] = metadata
    path = tmp_path / "meta.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert fragment in message
    with pytest.raises(CheckpointError, match="metadata"):
        save_checkpoint(
            dataclasses.replace(make_checkpoint(spm_models), metadata=metadata),
            tmp_path / "refused.pt",
        )
    assert not (tmp_path / "refused.pt").exists()


def test_plain_metadata_with_markup_and_nesting_round_trips(tmp_path, spm_models):
    metadata = {
        "note": "[/] [bold]not markup[/bold]",
        "history": [{"step": 1, "loss": 2.5}, {"step": 2, "loss": None}],
        "flags": [True, False],
        "nested": _nested(30),
        "nan": float("nan"),
    }
    checkpoint = dataclasses.replace(make_checkpoint(spm_models), metadata=metadata)
    loaded = load_checkpoint(save_checkpoint(checkpoint, tmp_path / "m.pt"))
    assert loaded.metadata["history"] == metadata["history"]
    assert loaded.metadata["note"] == metadata["note"]
    assert loaded.metadata["nested"] == metadata["nested"]


def test_swapped_tokenizers_are_refused(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["src_tokenizer"], payload["tgt_tokenizer"] = (
        payload["tgt_tokenizer"],
        payload["src_tokenizer"],
    )
    path = tmp_path / "swapped.pt"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    with pytest.raises(CheckpointError) as err:
        loaded.tokenizers()
    message = _check_message(err, path)
    assert "the source tokenizer has 42 entries" in message
    assert "source vocabulary has 40" in message
    assert "swapped" in message


# -- weights checksum ------------------------------------------------------------------------


def test_saved_file_holds_the_weights_checksum(tmp_path, spm_models):
    checkpoint = make_checkpoint(spm_models)
    path = save_checkpoint(checkpoint, tmp_path / "sum.pt")
    raw = torch.load(path, weights_only=True)
    assert raw[DIGEST_KEY] == weights_digest(checkpoint.state_dict)
    assert re.fullmatch(r"[0-9a-f]{64}", raw[DIGEST_KEY])
    changed = dict(checkpoint.state_dict)
    changed["decoder.output.bias"] = changed["decoder.output.bias"].clone()
    changed["decoder.output.bias"][0] += 1e-6
    assert weights_digest(changed) != raw[DIGEST_KEY]


def _data_offset(path: Path, name: str) -> int:
    with zipfile.ZipFile(path) as archive:
        entry = archive.getinfo(name)
    with path.open("rb") as stream:
        stream.seek(entry.header_offset)
        header = stream.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return entry.header_offset + 30 + name_length + extra_length


def test_flipped_bit_in_a_weight_is_an_error_naming_the_file(tmp_path, spm_models):
    path = save_checkpoint(make_checkpoint(spm_models), tmp_path / "flip.pt")
    with zipfile.ZipFile(path) as archive:
        storages = [n for n in archive.namelist() if "/data/" in n and not n.endswith("/")]
    offset = _data_offset(path, storages[0])
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01  # lowest mantissa bit of the first value: still a finite float
    path.write_bytes(bytes(data))
    message = _load_error(path)
    assert "do not match the checksum saved with them" in message


def test_files_without_a_checksum_still_load(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    assert DIGEST_KEY not in payload
    path = tmp_path / "nosum.pt"
    torch.save(payload, path)
    assert load_checkpoint(path).config.tgt_vocab_size == 42


@pytest.mark.parametrize("digest", ["abc", 123, "0" * 63 + "g"])
def test_malformed_checksum(tmp_path, spm_models, digest):
    payload = _payload(make_checkpoint(spm_models))
    payload[DIGEST_KEY] = digest
    path = tmp_path / "badsum.pt"
    torch.save(payload, path)
    assert f"{DIGEST_KEY} is not a SHA-256 hex digest" in _load_error(path)


# -- refusals never suggest an unsafe way round them; special files --------------------------


@pytest.mark.parametrize("kind", ["namespace", "garbage", "reduce"])
def test_refusal_never_points_at_unsafe_loading(tmp_path, spm_models, kind):
    path = tmp_path / "refused.pt"
    if kind == "namespace":
        torch.save({"opt": argparse.Namespace(rnn="lstm")}, path)
    elif kind == "garbage":
        path.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(4096)))
    else:
        torch.save(_OpenMarker(tmp_path / "marker"), path)
    message = _load_error(path)
    for unsafe in ("weights_only", "safe_globals", "trust", "\x1b"):
        assert unsafe not in message, message


def test_named_pipe_is_named(tmp_path):
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    assert "is a named pipe, not a checkpoint file" in _load_error(fifo)


def test_device_file_is_named():
    path = Path("/dev/zero")
    if not path.exists():
        pytest.skip("no /dev/zero on this system")
    assert "is a device, not a checkpoint file" in _load_error(path)


@pytest.mark.parametrize("bad", [123, None, b"model.pt"])
def test_path_of_the_wrong_type(bad):
    with pytest.raises(UsageError, match="a checkpoint path must be text or a path"):
        load_checkpoint(bad)


def test_version_2_file_is_migrated_to_attnviz_search_rules(tmp_path, spm_models):
    from attnviz.decoding import SearchRules

    payload = _payload(make_checkpoint(spm_models))
    payload["format_version"] = 2
    del payload["search"]
    path = tmp_path / "v2.pt"
    torch.save(payload, path)
    loaded = load_checkpoint(path)
    assert loaded.search == {}
    assert loaded.rules() == SearchRules()


def test_search_rules_round_trip(tmp_path, spm_models):
    from attnviz.decoding import SearchRules

    rules = SearchRules(
        beam_stop="all_slots_ended", max_length_ratio=1.5, max_length_offset=0, forbidden=(1, 2)
    )
    checkpoint = make_checkpoint(spm_models)
    checkpoint.search = rules.to_dict()
    path = tmp_path / "rules.pt"
    save_checkpoint(checkpoint, path)
    assert load_checkpoint(path).rules() == rules


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"beam_stop": "fairseq"}, "unknown beam_stop 'fairseq'"),
        ({"min_length": -1}, "min_length must be a whole number >= 0"),
        ({"forbidden": ["<s>"]}, "forbidden must be a list of token ids"),
        ({"penalty": 1.0}, "unknown search rules: penalty"),
    ],
)
def test_bad_search_rules_are_one_line(tmp_path, spm_models, search, expected):
    payload = _payload(make_checkpoint(spm_models))
    payload["search"] = search
    path = tmp_path / "badrules.pt"
    torch.save(payload, path)
    message = _load_error(path)
    assert "bad search rules" in message and expected in message


def test_weights_are_checked_on_one_thread_and_the_setting_restored(checkpoint_path, monkeypatch):
    import torch

    from attnviz.checkpoint import build_model, load_checkpoint

    seen = []
    isfinite = torch.isfinite

    def recording(tensor):
        seen.append(torch.get_num_threads())
        return isfinite(tensor)

    monkeypatch.setattr(torch, "isfinite", recording)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        checkpoint = load_checkpoint(checkpoint_path)
        assert seen and set(seen) == {1}
        count = len(seen)
        build_model(checkpoint)
        assert len(seen) > count and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
