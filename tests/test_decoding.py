"""Decoding invariants: batch == alone, beam 1 == greedy, forced == free, n-best histories."""

from __future__ import annotations

import numpy as np
import pytest

from attnviz.decoding import max_output_length
from attnviz.families.base import pad_batch

SENTENCES = [
    "the boy ate an apple .",
    "did the cat sleep ?",
    "my friend drinks water every day . the girl reads a book .",
    "a dog",
]
TOLERANCE = 1e-4  # float32 (the default): batch shapes change the rounding of matrix kernels


def assert_same(a, b):
    assert a.tgt_tokens == b.tgt_tokens
    assert a.src_tokens == b.src_tokens
    assert a.weights.shape == b.weights.shape
    assert np.abs(a.weights - b.weights).max() <= TOLERANCE
    assert np.abs(a.scores - b.scores).max() <= 1e-4
    assert np.abs(a.token_logprobs - b.token_logprobs).max() <= 1e-4


@pytest.mark.parametrize("beam", [1, 4])
def test_sentence_in_padded_batch_equals_alone(translator, beam):
    batched = translator.translate_grouped(SENTENCES, beam_size=beam, nbest=1, batch_size=4)
    for sentence, group in zip(SENTENCES, batched, strict=True):
        alone = translator.translate_grouped([sentence], beam_size=beam, batch_size=1)[0]
        assert_same(group[0], alone[0])


def test_batch_composition_does_not_matter(translator):
    one = translator.translate(SENTENCES, batch_size=2)
    other = translator.translate(list(reversed(SENTENCES)), batch_size=3)[::-1]
    for a, b in zip(one, other, strict=True):
        assert_same(a, b)


def test_beam_one_equals_greedy(translator):
    from attnviz.decoding import beam_decode, greedy_decode

    src, lengths = pad_batch([translator.encode_source(s) for s in SENTENCES], 0)
    greedy = greedy_decode(translator.model, src, lengths)
    beam = beam_decode(translator.model, src, lengths, beam_size=1)
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].tokens == b[0].tokens
        assert np.abs(g[0].weights - b[0].weights).max() <= TOLERANCE
        assert abs(g[0].score - b[0].score) <= 1e-4


def test_forced_decoding_of_own_ids_reproduces_attention_always(translator):
    from attnviz.decoding import forced_decode, greedy_decode

    src, lengths = pad_batch([translator.encode_source(s) for s in SENTENCES], 0)
    eos = translator.config.eos_id
    free = greedy_decode(translator.model, src, lengths)
    refs = [h[0].tokens[:-1] if h[0].tokens[-1] == eos else h[0].tokens for h in free]
    forced = forced_decode(translator.model, src, lengths, refs)
    assert len(forced) == len(free) == len(SENTENCES)
    for f, g in zip(free, forced, strict=True):
        # output that hit the length limit has no </s>; forcing it appends one more row
        ended = f[0].tokens[-1] == eos
        assert g[0].tokens == (f[0].tokens if ended else [*f[0].tokens, eos])
        rows = len(f[0].tokens)
        assert np.abs(f[0].weights - g[0].weights[:rows]).max() <= TOLERANCE
        assert np.abs(f[0].scores - g[0].scores[:rows]).max() <= 1e-4
        assert np.abs(f[0].token_logprobs - g[0].token_logprobs[:rows]).max() <= 1e-4


def test_every_nbest_hypothesis_carries_its_own_attention(translator):
    """Back-pointer re-indexing: each n-best history equals forcing that hypothesis."""

    from attnviz.decoding import beam_decode, forced_decode

    src, lengths = pad_batch([translator.encode_source(s) for s in SENTENCES[:3]], 0)
    eos = translator.config.eos_id
    results = beam_decode(translator.model, src, lengths, beam_size=4, nbest=4)
    for b, hyps in enumerate(results):
        assert [h.rank for h in hyps] == list(range(len(hyps)))
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        for hyp in hyps:
            body = hyp.tokens[:-1] if hyp.tokens[-1] == eos else hyp.tokens
            forced = forced_decode(translator.model, src[b : b + 1], lengths[b : b + 1], [body])
            rows = len(hyp.tokens)
            assert np.abs(hyp.weights - forced[0][0].weights[:rows]).max() <= TOLERANCE
            assert np.abs(hyp.scores - forced[0][0].scores[:rows]).max() <= 1e-4
            assert np.abs(hyp.token_logprobs - forced[0][0].token_logprobs[:rows]).max() <= 1e-4
            expected = float(hyp.token_logprobs.sum()) / len(hyp.tokens)
            assert abs(hyp.score - expected) <= 1e-4


def test_rows_sum_to_one_and_shapes(translator):
    for alignment in translator.translate(SENTENCES, beam_size=3, nbest=2):
        t, s = alignment.shape
        assert t == len(alignment.tgt_tokens) and s == len(alignment.src_tokens)
        assert np.allclose(alignment.weights.sum(axis=1), 1.0, atol=1e-5)
        assert (alignment.weights >= 0).all()


def test_output_length_scales_with_source(translator):
    for alignment in translator.translate(SENTENCES):
        assert len(alignment.tgt_tokens) <= max_output_length(len(alignment.src_tokens))
    assert max_output_length(50) > max_output_length(5)


def test_empty_sentence_gives_empty_alignment(translator):
    empty, full = translator.translate(["   ", "a dog"])
    assert empty.translation == "" and empty.shape == (0, 0)
    assert full.shape[0] > 0


def test_lstm_batch_equals_alone(spm_models):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    translator = Translator(make_checkpoint(spm_models, "general", rnn="lstm"), "cpu")
    batched = translator.translate(SENTENCES, beam_size=3)
    for sentence, alignment in zip(SENTENCES, batched, strict=True):
        assert_same(alignment, translator.translate(sentence, beam_size=3)[0])


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_float32_is_the_default_and_batch_equals_alone_within_tolerance(spm_models, rnn):
    """float32 kernels depend on batch shape: the same tokens, attention within 1e-4."""
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    for attention in ("additive", "dot", "general"):
        translator = Translator(make_checkpoint(spm_models, attention, rnn=rnn), "cpu")
        assert translator.dtype == torch_dtype("float32")
        assert translator.model.decoder.output.weight.dtype == torch_dtype("float32")
        for beam in (1, 3):
            batched = translator.translate(SENTENCES, beam_size=beam, batch_size=4)
            for sentence, alignment in zip(SENTENCES, batched, strict=True):
                assert_same(alignment, translator.translate(sentence, beam_size=beam)[0])


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("beam", [1, 3])
def test_float64_makes_batch_and_alone_bit_identical(spm_models, rnn, beam):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    for attention in ("additive", "dot", "general"):
        translator = Translator(make_checkpoint(spm_models, attention, rnn=rnn), "cpu", "float64")
        assert translator.dtype == torch_dtype("float64")
        batched = translator.translate(SENTENCES, beam_size=beam, nbest=beam, batch_size=4)
        alone = [
            a for sentence in SENTENCES for a in translator.translate(sentence, beam, nbest=beam)
        ]
        assert len(batched) == len(alone) >= len(SENTENCES)
        for a, b in zip(batched, alone, strict=True):
            assert a.tgt_tokens == b.tgt_tokens
            assert np.array_equal(a.weights, b.weights)
            assert np.array_equal(a.scores, b.scores)
            assert np.array_equal(a.token_logprobs, b.token_logprobs)
            assert a.score == b.score


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def test_unknown_precision_lists_valid_ones(spm_models):
    from conftest import make_checkpoint

    from attnviz.errors import UsageError
    from attnviz.translator import Translator

    with pytest.raises(UsageError, match="auto, float32, float64"):
        Translator(make_checkpoint(spm_models), "cpu", "float16")
