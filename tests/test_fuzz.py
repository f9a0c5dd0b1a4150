"""Property tests over hostile input: text, checkpoint configs and metadata, alignment records,
and CLI option values. Whatever comes in, the outcome is a result or one attnviz error line:
never a traceback, never a foreign exception."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attnviz.alignment import Alignment, SentenceError
from attnviz.checkpoint import build_model, load_checkpoint
from attnviz.cli import app
from attnviz.errors import AttnvizError, CheckpointError
from attnviz.families.rnn.model import RNNConfig

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text with the characters that have broken tokenizers and terminals before
ODD = st.sampled_from(
    ["\udcff", "\x00", "\x1b[31m", "\u2028", "\r", "\n", "\t", " ", "▁", "[/]", "소", "\ufeff", "a"]
)
TEXT = st.one_of(st.text(max_size=40), st.lists(ODD, max_size=12).map("".join))
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def check_cli_outcome(result, ok_codes=(0,)) -> bool:
    """Either success, or a non-zero exit with exactly one attnviz error line. True on success."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    if result.exit_code in ok_codes:
        return True
    assert result.exit_code != 0
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("attnviz: error:"), lines[0]
    return False


def check_alignment(alignment: Alignment) -> None:
    rows, columns = alignment.weights.shape
    assert rows == len(alignment.tgt_tokens)
    assert columns == len(alignment.src_tokens)
    if rows and columns:
        np.testing.assert_allclose(alignment.weights.sum(axis=1), 1.0, rtol=1e-6)
        assert np.all(alignment.weights >= 0)


# -- text ------------------------------------------------------------------------------------


@FAST
@given(sentences=st.lists(TEXT, min_size=1, max_size=5))
def test_translate_api_on_any_text(translator, sentences):
    groups = translator.translate_grouped(sentences, batch_size=2)
    assert len(groups) == len(sentences)
    for index, (text, group) in enumerate(zip(sentences, groups, strict=True)):
        if isinstance(group, SentenceError):
            assert group.index == index
            assert "\n" not in group.message
            # only text that cannot be encoded is refused at this length
            with pytest.raises(UnicodeEncodeError):
                text.encode("utf-8")
            continue
        (alignment,) = group
        assert alignment.source == text
        check_alignment(alignment)


@pytest.mark.slow
@CLI
@given(texts=st.lists(TEXT, min_size=1, max_size=3))
def test_translate_cli_on_any_text(checkpoint_path, texts):
    args = ["translate", "-m", str(checkpoint_path), "--json", "--", *texts]
    result = CliRunner().invoke(app, args)
    succeeded = check_cli_outcome(result)
    assert succeeded == all(_encodable(text) for text in texts), result.stderr
    if succeeded:
        records = [json.loads(line) for line in result.stdout.split("\n")[:-1]]
        assert [r["source"] for r in records] == texts


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.slow
@CLI
@given(data=st.binary(max_size=200))
def test_translate_cli_on_any_stdin(checkpoint_path, data):
    result = CliRunner().invoke(
        app, ["translate", "-m", str(checkpoint_path), "--json", "--batch-size", "3"], input=data
    )
    succeeded = check_cli_outcome(result)
    assert succeeded == (bool(data) and _decodable(data)), result.stderr
    if succeeded:
        lines = data.decode("utf-8").removeprefix("\ufeff").split("\n")
        if lines[-1] == "":
            lines.pop()
        sources = [json.loads(line)["source"] for line in result.stdout.split("\n")[:-1]]
        assert sources == [line.removesuffix("\r") for line in lines]


def _decodable(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- checkpoint configs and metadata ---------------------------------------------------------

CONFIG_VALUE = st.one_of(
    JSON_SCALAR,
    st.floats(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
CONFIG_KEY = st.one_of(
    st.sampled_from([field.name for field in dataclasses.fields(RNNConfig)]),
    st.text(max_size=6),
    st.integers(min_value=-5, max_value=5),
)


def _load_outcome(payload: dict) -> bool:
    """True when the payload loads and builds; False for one CheckpointError line naming the
    file; anything else fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.pt"
        torch.save(payload, path)
        try:
            checkpoint = load_checkpoint(path)
            build_model(checkpoint)
            checkpoint.tokenizers()
        except CheckpointError as err:
            message = str(err)
            assert "\n" not in message
            assert message.startswith(str(path)), message
            return False
    return True


def test_load_outcome_sees_both_sides(spm_models):
    payload = make_checkpoint(spm_models).to_payload()
    assert _load_outcome(payload) is True
    payload["config"] = {**payload["config"], "hidden_size": 13}
    assert _load_outcome(payload) is False


@FAST
@given(changes=st.dictionaries(CONFIG_KEY, CONFIG_VALUE, min_size=1, max_size=4))
def test_any_config_values_load_or_fail_in_one_line(spm_models, changes):
    payload = make_checkpoint(spm_models).to_payload()
    payload["config"] = {**payload["config"], **changes}
    _load_outcome(payload)


@FAST
@given(
    config=st.fixed_dictionaries(
        {
            "src_vocab_size": st.integers(min_value=-2, max_value=60),
            "tgt_vocab_size": st.integers(min_value=-2, max_value=60),
            "hidden_size": st.integers(min_value=-2, max_value=10**6),
            "encoder_layers": st.integers(min_value=-2, max_value=10**8),
            "attention": st.sampled_from(["additive", "dot", "general", "multihead"]),
            "rnn": st.sampled_from(["gru", "lstm", "rnn"]),
        }
    )
)
def test_plausible_configs_over_fixed_weights(spm_models, config):
    payload = make_checkpoint(spm_models).to_payload()
    payload["config"] = {**payload["config"], **config}
    _load_outcome(payload)


METADATA_VALUE = st.recursive(
    st.one_of(
        JSON_SCALAR,
        st.floats(),
        st.binary(max_size=4),
        st.just(torch.zeros(2)),
        st.just(torch.float32),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=3),
    ),
    max_leaves=10,
)


def _plain(value) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _same(left, right) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)
    if type(left) in (list, tuple):
        return len(left) == len(right) and all(
            _same(a, b) for a, b in zip(left, right, strict=True)
        )
    if type(left) is dict:
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return left == right


@FAST
@given(metadata=st.dictionaries(st.text(max_size=5), METADATA_VALUE, max_size=4))
def test_metadata_is_kept_when_plain_and_refused_otherwise(spm_models, metadata):
    payload = make_checkpoint(spm_models).to_payload()
    payload["metadata"] = metadata
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "meta.pt"
        torch.save(payload, path)
        if _plain(metadata):
            assert _same(load_checkpoint(path).metadata, metadata)
        else:
            # refused by our metadata check, or earlier by the weights-only unpickler
            with pytest.raises(CheckpointError) as caught:
                load_checkpoint(path)
            assert str(caught.value).startswith(str(path))
            assert "\n" not in str(caught.value)


# -- alignment records for heatmap --from ----------------------------------------------------


RECORD_KEYS = [
    *("source", "translation", "src_tokens", "tgt_tokens", "attention", "scores", "nbest"),
    *("score", "rank", "level", "error", "token_logprobs", "id"),
]


@pytest.fixture(scope="module")
def base_record(translator) -> dict:
    (alignment,) = translator.translate("the boy ate an apple .")
    return alignment.to_dict()


@pytest.mark.slow
@CLI
@given(
    changes=st.dictionaries(
        st.sampled_from(RECORD_KEYS),
        JSON,
        max_size=3,
    ),
    drop=st.lists(st.sampled_from(["attention", "src_tokens", "tgt_tokens"]), max_size=1),
    index=st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),
)
def test_heatmap_from_any_record(base_record, changes, drop, index):
    record = {**base_record, **changes}
    for key in drop:
        record.pop(key, None)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "records.jsonl"
        source.write_text(json.dumps(record) + "\n", encoding="utf-8")
        out = Path(folder) / "fig.png"
        args = ["heatmap", "--from", str(source), "--out", str(out)]
        if index is not None:
            args += ["--index", str(index)]
        result = CliRunner().invoke(app, args)
        succeeded = check_cli_outcome(result)
        if not changes and not drop:
            assert succeeded == (index in (None, 0)), result.stderr
        if succeeded:
            assert out.is_file() and out.stat().st_size > 0
        else:
            assert not out.exists()


@FAST
@given(line=st.one_of(st.text(max_size=60), JSON.map(json.dumps)))
def test_heatmap_from_any_line(line):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "records.jsonl"
        source.write_text(line + "\n", encoding="utf-8")
        out = Path(folder) / "fig.png"
        result = CliRunner().invoke(app, ["heatmap", "--from", str(source), "--out", str(out)])
        check_cli_outcome(result)


# -- numeric CLI options ---------------------------------------------------------------------

NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(min_value=-3, max_value=70).map(str),
    st.floats().map(str),
    st.sampled_from(["", "x", "1e3", "0x10", " 3", "٣", "nan", "-inf"]),
)


@pytest.mark.slow
@CLI
@given(
    option=st.sampled_from(["--beam", "--nbest", "--batch-size"]),
    value=NUMBER_TEXT,
)
def test_translate_numeric_options(checkpoint_path, option, value):
    result = CliRunner().invoke(
        app, ["translate", "-m", str(checkpoint_path), "--json", f"{option}={value}", "a b"]
    )
    valid = {"--beam": (1, 64), "--nbest": (1, 1), "--batch-size": (1, 4096)}[option]
    expected = _expected(value, *valid)
    assert check_cli_outcome(result) == expected if expected is not None else True


def _expected(value: str, low: int, high: int) -> bool | None:
    """True for a plain decimal in range, False for a plain decimal out of it or for text that
    is no number at all; None where parsers may differ (spaces, other digits, exponents)."""
    if re.fullmatch(r"-?[0-9]+", value):
        return low <= int(value) <= high
    if not re.search(r"[0-9]", value) and value.strip().lower() not in ("nan", "inf", "-inf"):
        return False
    return None


@pytest.mark.slow
@CLI
@given(option=st.sampled_from(["--dpi", "--index", "--beam", "--nbest"]), value=NUMBER_TEXT)
def test_heatmap_numeric_options(base_record, option, value):
    if option == "--dpi" and re.fullmatch(r"[0-9]+", value):
        assert_dpi_outcome = 10 <= int(value) <= 9999
    else:
        assert_dpi_outcome = None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "records.jsonl"
        source.write_text(json.dumps(base_record) + "\n", encoding="utf-8")
        out = Path(folder) / "fig.png"
        args = ["heatmap", "--from", str(source), "--out", str(out), f"{option}={value}"]
        succeeded = check_cli_outcome(CliRunner().invoke(app, args))
        if option == "--index" and re.fullmatch(r"-?[0-9]+", value):
            assert succeeded == (value in ("0", "-0"))
        if assert_dpi_outcome is not None:
            assert succeeded == assert_dpi_outcome
        assert succeeded == out.is_file()


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    option=st.sampled_from(
        ["--batch-size", "--workers", "--dpi", "--chunk-lines", "--beam", "--nbest"]
    ),
    value=NUMBER_TEXT,
)
def test_export_numeric_options(checkpoint_path, option, value):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input.txt"
        source.write_text("the boy ate an apple .\ndid the cat sleep ?\n", encoding="utf-8")
        args = ["export", str(source), "--out", str(Path(folder) / "out")]
        args += ["-m", str(checkpoint_path), f"{option}={value}"]
        check_cli_outcome(CliRunner().invoke(app, args))


def test_fuzz_helpers_detect_what_they_guard():
    """The outcome check fails on a traceback-like result and on two error lines."""

    class Result:
        output = ""
        stderr = "attnviz: error: one\nattnviz: error: two\n"
        exit_code = 1
        exception = None

    with pytest.raises(AssertionError):
        check_cli_outcome(Result())
    Result.stderr = "attnviz: error: one\n"
    assert check_cli_outcome(Result()) is False
    Result.exception = ValueError("raw")
    with pytest.raises(AssertionError):
        check_cli_outcome(Result())
    assert isinstance(CheckpointError("x"), AttnvizError)
