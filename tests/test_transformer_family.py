"""The Transformer family: incremental decoding with caches equals teacher forcing, per layer
and head; padding gets exactly 0; it decodes end to end through load_model, greedy and beam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.checkpoint import Checkpoint, save_checkpoint
from attnviz.errors import ConfigError
from attnviz.families.base import pad_batch
from attnviz.families.transformer import TransformerConfig, TransformerModel
from attnviz.tokenizer import sentencepiece_spec

from conftest import SRC_LINES, SRC_VOCAB, TGT_VOCAB  # isort: skip

VARIANTS = [
    dict(encoder_layer_norm="pre", decoder_layer_norm="pre", positions="sinusoidal"),
    dict(
        encoder_layer_norm="post",
        decoder_layer_norm="post",
        encoder_final_norm=False,
        decoder_final_norm=False,
        positions="learned",
    ),
    dict(positions="relative", max_relative_positions=4, activation="gated-gelu"),
]


def make_model(seed: int = 0, **overrides) -> TransformerModel:
    torch.manual_seed(seed)
    values = dict(
        src_vocab_size=SRC_VOCAB,
        tgt_vocab_size=TGT_VOCAB,
        d_model=16,
        heads=4,
        ff_size=32,
        encoder_layers=2,
        decoder_layers=3,
        dropout=0.0,
        attention_dropout=0.0,
        max_positions=256,
        positions="sinusoidal",
    )
    values.update(overrides)
    if values["positions"] not in ("sinusoidal", "learned"):
        del values["max_positions"]
    return TransformerModel(TransformerConfig(**values)).double().eval()


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda v: v["positions"])
def test_incremental_steps_equal_teacher_forcing(overrides):
    model = make_model(**overrides)
    assert model.attention_shape == (3, 4)
    src, lengths = pad_batch([[5, 6, 7, 8, 3], [9, 10, 3]], 0)
    tgt_in = torch.tensor([[2, 11, 12, 13], [2, 14, 15, 16]])
    with torch.no_grad():
        logits, teacher = model(src, lengths, tgt_in)  # [B, T, L, H, N]
        step = model.inference_step()
        memory, state = step.start(src, lengths)
        for t in range(tgt_in.size(1)):
            step_logits, state, weights, scores = step(tgt_in[:, t], state, memory)
            assert weights.shape == scores.shape == (2, 3, 4, 5)
            torch.testing.assert_close(weights, teacher[:, t], rtol=0, atol=1e-10)
            torch.testing.assert_close(step_logits, logits[:, t], rtol=0, atol=1e-9)
    assert torch.all(teacher[1, ..., 3:] == 0)  # padding: exactly 0
    torch.testing.assert_close(teacher.sum(-1), torch.ones_like(teacher.sum(-1)))


def test_weights_are_the_softmax_of_the_scores():
    model = make_model(seed=4)
    src, lengths = pad_batch([[5, 6, 7, 3]], 0)
    with torch.no_grad():
        step = model.inference_step()
        memory, state = step.start(src, lengths)
        _, _, weights, scores = step(torch.tensor([2]), state, memory)
    head_size = 16 // 4
    assert scores.abs().max() > 0
    torch.testing.assert_close(weights, torch.softmax(scores, dim=-1), rtol=0, atol=1e-12)
    assert head_size == model.config.head_size


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="heads"):
        TransformerConfig(src_vocab_size=10, tgt_vocab_size=10, d_model=16, heads=3)
    with pytest.raises(ConfigError, match="d_model"):
        TransformerConfig(src_vocab_size=10, tgt_vocab_size=10, d_model="16")
    with pytest.raises(ConfigError, match="unknown"):
        TransformerConfig.from_dict({"src_vocab_size": 10, "tgt_vocab_size": 10, "colour": 1})
    config = make_model().config
    shapes = config.expected_shapes()
    actual = {k: tuple(v.shape) for k, v in TransformerModel(config).state_dict().items()}
    assert shapes == actual


@pytest.mark.parametrize("beam", [1, 3])
def test_a_transformer_decodes_through_load_model(tmp_path, spm_models, beam):
    import attnviz

    model = make_model(seed=2).float()
    checkpoint = Checkpoint(
        config=model.config,
        state_dict=model.state_dict(),
        src_tokenizer=sentencepiece_spec(spm_models[0]),
        tgt_tokenizer=sentencepiece_spec(spm_models[1]),
        family="transformer",
    )
    path = save_checkpoint(checkpoint, tmp_path / "tf.pt")
    translator = attnviz.load_model(path)
    together = translator.translate(SRC_LINES, beam=beam)
    for sentence, batched in zip(SRC_LINES, together, strict=True):
        assert batched.stack_shape == (3, 4)
        np.testing.assert_array_equal(batched.weights, batched.cross_attention[-1].mean(axis=0))
        (alone,) = translator.translate(sentence, beam=beam)
        assert alone.tgt_tokens == batched.tgt_tokens
        assert np.abs(alone.cross_attention - batched.cross_attention).max() <= 1e-4
