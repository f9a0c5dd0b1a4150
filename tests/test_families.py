"""The model-family house: the registry, checkpoints that name their family, decoding written
once against the protocol, and Alignment's [L, H, T, S] attention stack with its views.

A second family (tests/toy_family.py: 2 layers of 3 heads) goes through the same doors as
the RNN: saved, loaded by load_model, decoded greedy and by beam, exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz import families
from attnviz.alignment import Alignment, merge_word_weights, word_starts
from attnviz.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from attnviz.errors import CheckpointError, ConfigError, UsageError
from attnviz.families.base import pad_batch
from attnviz.options import HeadSelection
from attnviz.tokenizer import sentencepiece_spec

from conftest import SRC_LINES, SRC_VOCAB, TGT_VOCAB  # isort: skip


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(families.FAMILIES, "toy", "toy_family")


@pytest.fixture
def toy_path(tmp_path, spm_models, toy_registered):
    from toy_family import ToyConfig, ToyModel

    torch.manual_seed(3)
    config = ToyConfig(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB)
    model = ToyModel(config)
    checkpoint = Checkpoint(
        config=config,
        state_dict=model.state_dict(),
        src_tokenizer=sentencepiece_spec(spm_models[0]),
        tgt_tokenizer=sentencepiece_spec(spm_models[1]),
        family="toy",
    )
    return save_checkpoint(checkpoint, tmp_path / "toy.pt")


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown model family 'cnn'; known: rnn, transformer"):
        families.get_family("cnn")
    with pytest.raises(ConfigError, match="unknown model family int"):
        families.get_family(3)


def test_rnn_is_the_family_of_older_files_and_of_new_ones(checkpoint_path, tmp_path):
    payload = torch.load(checkpoint_path, weights_only=True)
    assert payload["family"] == "rnn"
    del payload["family"]
    payload["format_version"] = 3  # version 3 files have no family: they hold RNNs
    old = tmp_path / "v3.pt"
    torch.save(payload, old)
    assert load_checkpoint(old).family == "rnn"
    payload["format_version"] = 4  # a version 4 file must say it
    torch.save(payload, old)
    with pytest.raises(CheckpointError, match="checkpoint lacks family"):
        load_checkpoint(old)


def test_a_checkpoint_of_an_unknown_family_is_one_line(checkpoint_path, tmp_path):
    payload = torch.load(checkpoint_path, weights_only=True)
    payload["family"] = "transformer-xl\n"
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert str(bad) in message and "unknown model family" in message


def test_the_rnn_step_gives_one_layer_and_one_head(translator):
    model = translator.model
    assert model.attention_shape == (1, 1)
    src, lengths = pad_batch([[5, 6, 7, 3], [8, 3]], 0)
    with torch.inference_mode():  # as the decoding loops run it (the step is cached there)
        step = model.inference_step()
        memory, state = step.start(src, lengths)
        _, state, weights, scores = step(torch.tensor([2, 2]), state, memory)
        _, teacher = model(src, lengths, torch.tensor([[2], [2]]))
    assert weights.shape == scores.shape == (2, 1, 1, 4)
    assert torch.all(weights[1, 0, 0, 2:] == 0)
    assert teacher.shape == (2, 1, 1, 1, 4)
    torch.testing.assert_close(teacher[:, 0], weights, rtol=0, atol=1e-6)


# -- a second family through the same doors ------------------------------------------------


@pytest.mark.parametrize("beam", [1, 3])
def test_a_second_family_decodes_with_every_layer_and_head(toy_path, beam):
    import attnviz

    translator = attnviz.load_model(toy_path)
    assert translator.checkpoint.family == "toy"
    sentences = SRC_LINES[:3]
    alignments = translator.translate(sentences, beam=beam, nbest=beam)
    assert len(alignments) == 3 * beam
    compared = 0
    for alignment in alignments:
        assert alignment.stack_shape == (2, 3)
        stack = alignment.cross_attention
        assert stack.shape == (2, 3, *alignment.shape)
        np.testing.assert_allclose(stack.sum(axis=-1), 1.0, atol=1e-5)
        # the default view: the mean of the last layer's heads
        np.testing.assert_array_equal(alignment.weights, stack[-1].mean(axis=0))
        np.testing.assert_array_equal(alignment.scores, alignment.cross_scores[-1].mean(axis=0))
        # every recorded matrix is the model's own, for this hypothesis (beams reordered)
        ids = translator.encode_source(alignment.source)
        target = translator.target_ids(alignment.tgt_tokens)
        src, lengths = pad_batch([ids], 0)
        with torch.no_grad():
            _, teacher = translator.model(src, lengths, torch.tensor([[2, *target[:-1]]]))
        expected = teacher[0].permute(1, 2, 0, 3).numpy()  # [T, L, H, N] -> [L, H, T, N]
        np.testing.assert_allclose(stack, expected, rtol=0, atol=1e-6)
        compared += 1
    assert compared == 3 * beam


def test_a_second_family_alone_and_in_a_padded_batch(toy_path):
    import attnviz

    translator = attnviz.load_model(toy_path)
    together = translator.translate(SRC_LINES, beam=2)
    for sentence, batched in zip(SRC_LINES, together, strict=True):
        (alone,) = translator.translate(sentence, beam=2)
        assert alone.tgt_tokens == batched.tgt_tokens
        assert np.abs(alone.cross_attention - batched.cross_attention).max() <= 1e-5


def test_views_of_the_stack(toy_path):
    import attnviz

    (alignment,) = attnviz.load_model(toy_path).translate(SRC_LINES[0])
    head = alignment.with_view(HeadSelection(layer=0, head=1))
    np.testing.assert_array_equal(head.weights, alignment.cross_attention[0, 1])
    np.testing.assert_array_equal(head.scores, alignment.cross_scores[0, 1])
    assert head.with_view(HeadSelection()) == alignment
    assert head != alignment
    first_layer = alignment.with_view(HeadSelection(layer=-2))
    np.testing.assert_array_equal(first_layer.weights, alignment.cross_attention[0].mean(axis=0))
    with pytest.raises(UsageError, match=r"head 3 is outside the model's 3 heads per layer"):
        alignment.with_view(HeadSelection(head=3))
    with pytest.raises(UsageError, match=r"layer 2 is outside the model's 2 decoder layers"):
        alignment.with_view(HeadSelection(layer=2))


def test_word_level_merges_every_matrix_of_the_stack(toy_path):
    import attnviz

    (pieces,) = attnviz.load_model(toy_path).translate("the boy ate an apple .")
    words = pieces.to_words()
    src_starts = word_starts(pieces.src_tokens)
    tgt_starts = word_starts(pieces.tgt_tokens)
    assert words.cross_attention.shape == (2, 3, len(tgt_starts), len(src_starts))
    for layer in range(2):
        for head in range(3):
            expected = merge_word_weights(
                pieces.cross_attention[layer, head], src_starts, tgt_starts
            )
            np.testing.assert_array_equal(words.cross_attention[layer, head], expected)
    np.testing.assert_array_equal(words.weights, words.cross_attention[-1].mean(axis=0))


def test_a_second_family_exports(toy_path, tmp_path):
    import json

    from typer.testing import CliRunner

    from attnviz.cli import app

    source = tmp_path / "in.txt"
    source.write_text("\n".join(SRC_LINES) + "\n", "utf-8")
    result = CliRunner().invoke(
        app, ["export", str(source), "--out", str(tmp_path / "out"), "-m", str(toy_path)]
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "out" / "alignments.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == len(SRC_LINES)
    record = json.loads(lines[0])
    assert np.asarray(record["attention"]).shape == (
        len(record["tgt_tokens"]),
        len(record["src_tokens"]),
    )


# -- the selection type ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "head", "message"),
    [
        (True, "mean", "layer must be a whole number"),
        (1.5, "mean", "layer must be a whole number"),
        (-1, "max", "head must be a head number or 'mean'"),
        (-1, -2, "head must be between 0 and"),
        (5000, "mean", "layer must be between"),
    ],
)
def test_a_selection_is_validated_once(layer, head, message):
    with pytest.raises(UsageError, match=message):
        HeadSelection(layer, head)


def test_a_selection_parses_what_is_typed():
    assert HeadSelection.parse(2, "3") == HeadSelection(2, 3)
    assert HeadSelection.parse(-1, "mean") == HeadSelection()
    for bad in ("٣", "3.0", "-1", "99999", ""):
        with pytest.raises(UsageError, match="head must be a head number"):
            HeadSelection.parse(-1, bad)
    assert HeadSelection().describe(6, 8) == "layer 6/6, mean of 8 heads"
    assert HeadSelection(0, 2).describe(6, 8) == "layer 1/6, head 3/8"
    assert HeadSelection().describe(1, 1) == "layer 1/1"


def test_an_rnn_alignment_keeps_one_matrix(translator):
    (alignment,) = translator.translate(SRC_LINES[0])
    assert alignment.cross_attention is None and alignment.stack_shape == (1, 1)
    np.testing.assert_array_equal(alignment.attention_stack[0, 0], alignment.weights)
    assert alignment.with_view(HeadSelection(layer=0, head=0)).weights is not None
    with pytest.raises(UsageError, match="head 1 is outside"):
        alignment.with_view(HeadSelection(head=1))


def test_from_stack_checks_shapes():
    fields = dict(
        source="a",
        translation="b",
        src_tokens=["▁a", "</s>"],
        tgt_tokens=["▁b", "</s>"],
        token_logprobs=np.zeros(2),
        score=0.0,
    )
    with pytest.raises(ValueError, match=r"must be \[L, H, T, S\]"):
        Alignment.from_stack(np.ones((2, 2, 2)), np.ones((2, 2, 2)), **fields)
    with pytest.raises(ValueError, match="come together"):
        Alignment(
            weights=np.eye(2), scores=np.eye(2), cross_attention=np.ones((1, 2, 2, 2)), **fields
        )
    one = Alignment.from_stack(np.eye(2)[None, None], np.eye(2)[None, None], **fields)
    assert one.cross_attention is None  # one matrix: kept as weights alone
