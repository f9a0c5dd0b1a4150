"""Checkpoint files: lossless round trip, and one clear CheckpointError for every bad file."""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import os
import pathlib
import re
from pathlib import Path

import pytest
import torch
from conftest import make_checkpoint

from attnviz.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Checkpoint,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from attnviz.errors import AttnvizError, CheckpointError

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


def _build_error(path: Path) -> str:
    checkpoint = load_checkpoint(path)
    with pytest.raises(CheckpointError) as err:
        build_model(checkpoint)
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
    message = _build_error(path)
    assert "missing keys" in message
    assert "decoder.output.weight" in message
    assert "decoder.output.bias" in message


def test_unexpected_state_dict_keys(tmp_path, spm_models):
    payload = _payload(make_checkpoint(spm_models))
    payload["state_dict"]["decoder.extra.weight"] = torch.zeros(2)
    path = tmp_path / "extra.pt"
    torch.save(payload, path)
    message = _build_error(path)
    assert "unexpected keys decoder.extra.weight" in message


def test_shape_mismatch_names_parameter_and_shapes(tmp_path, spm_models):
    checkpoint = make_checkpoint(spm_models)
    checkpoint.config = dataclasses.replace(checkpoint.config, tgt_vocab_size=50)
    path = save_checkpoint(checkpoint, tmp_path / "mismatch.pt")
    message = _build_error(path)
    assert "shape mismatch for decoder.embedding.weight" in message
    assert "[42, 16]" in message
    assert "[50, 16]" in message


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
