"""The fast decoding paths against plain references: the inference step against
AttnDecoder.step, the batched beam search against a sentence-by-sentence one, and dropping
finished sentences from the batch against keeping them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnviz.decoding import (  # noqa: E402
    ATTNVIZ_RULES,
    SearchRules,
    beam_decode,
    forced_decode,
    greedy_decode,
    normalized_score,
)
from attnviz.decoding import batch as decoding_batch  # noqa: E402
from attnviz.decoding.rules import length_limits  # noqa: E402
from attnviz.families.base import pad_batch  # noqa: E402
from attnviz.families.rnn import step as decoding_step  # noqa: E402
from attnviz.families.rnn.model import DecoderState, RNNConfig, RNNModel  # noqa: E402
from attnviz.families.rnn.step import FastStep, PlainStep, step_function  # noqa: E402

VOCAB = 17


def make_model(seed: int = 0, dtype=None, **overrides) -> RNNModel:
    torch.manual_seed(seed)
    values = dict(
        src_vocab_size=VOCAB,
        tgt_vocab_size=VOCAB,
        embedding_size=6,
        hidden_size=5,
        decoder_hidden_size=7,
        attention_size=4,
        dropout=0.0,
    )
    values.update(overrides)
    if values.get("attention") == "dot":
        values["decoder_hidden_size"] = values["hidden_size"] * (
            2 if values.get("bidirectional", True) else 1
        )
    model = RNNModel(RNNConfig(**values)).to(dtype or torch.float64).eval()
    with torch.no_grad():  # sharper distributions than the default init: EOS comes sooner
        model.decoder.output.weight.mul_(6.0)
    return model


def sources(count: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(4, VOCAB, size=int(rng.integers(1, 9))).tolist() for _ in range(count)]
    return pad_batch(ids, 0)


CONFIGS = [
    dict(rnn=rnn, attention=attention, input_feeding=feeding, decoder_layers=layers, **extra)
    for rnn, attention, feeding, layers, extra in itertools.product(
        ("gru", "lstm"),
        ("additive", "dot", "general"),
        (True, False),
        (1, 2),
        (
            {},
            {
                "attn_concat_order": "state_first",
                "attn_out_bias": False,
                "attn_out_tanh": False,
                "bidirectional": False,
                "output_bias": False,
                "tgt_embedding_size": 9,
            },
            {"attn_query_bias": True, "decoder_init": "zero"},
        ),
    )
]


def config_id(values: dict) -> str:
    return "-".join(f"{v}" for v in values.values())


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("overrides", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_fast_step_equals_decoder_step(overrides, precision):
    """float64: the same maths to 1e-12; float32: tanh through the sigmoid, within 1e-5."""
    model = make_model(dtype=getattr(torch, precision), **overrides)
    tolerance = 1e-12 if precision == "float64" else 1e-5
    src, lengths = sources(5)
    with torch.inference_mode():
        keys, projected, mask, state = model.encode(src, lengths)
        fast = FastStep(model)
        memory, _ = fast.start(src, lengths)
        prev = torch.tensor([2, 5, 7, 3, 9])
        slow_state = fast_state = state
        for _ in range(3):
            slow = model.decoder.step(prev, slow_state, keys, projected, mask)
            quick = fast(prev, fast_state, memory)
            for index in (0, 2, 3):  # logits, weights [R, 1, 1, N], scores
                assert quick[index].shape[1:-1] == ((1, 1) if index else ())
                torch.testing.assert_close(
                    quick[index].flatten(1), slow[index], rtol=0, atol=tolerance
                )
            slow_rnn, fast_rnn = slow[1].rnn, quick[1].rnn
            for a, b in zip(
                slow_rnn if isinstance(slow_rnn, tuple) else (slow_rnn,),
                fast_rnn if isinstance(fast_rnn, tuple) else (fast_rnn,),
                strict=True,
            ):
                assert a.shape == b.shape
                torch.testing.assert_close(b, a, rtol=0, atol=tolerance)
            torch.testing.assert_close(
                quick[1].attentional, slow[1].attentional, rtol=0, atol=tolerance
            )
            slow_state, fast_state = slow[1], quick[1]
            prev = slow[0].argmax(dim=-1)


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
def test_fast_step_shares_keys_among_the_beams_of_a_sentence(attention, precision):
    """keys [G, N, H] for K rows each equal keys repeated K times for AttnDecoder.step."""
    dtype = getattr(torch, precision)
    model = make_model(seed=2, dtype=dtype, attention=attention, rnn="lstm")
    src, lengths = sources(4, seed=9)
    k = 3
    tolerance = 1e-12 if precision == "float64" else 1e-5
    with torch.inference_mode():
        keys, projected, mask, state = model.encode(src, lengths)
        expand = torch.arange(4).repeat_interleave(k)
        state = state.index_select(expand)
        fast = FastStep(model)
        prev = torch.arange(4, 4 + 4 * k)
        slow = model.decoder.step(prev, state, keys[expand], projected[expand], mask[expand])
        memory, _ = fast.start(src, lengths)
        quick = fast(prev, state, memory)
        for index in (0, 2, 3):  # logits, weights [R, 1, 1, N], scores
            assert quick[index].flatten(1).shape == slow[index].shape
            torch.testing.assert_close(quick[index].flatten(1), slow[index], rtol=0, atol=tolerance)


def test_fast_step_is_rebuilt_when_weights_change():
    model = make_model()
    first = step_function(model)
    assert step_function(model) is first
    with torch.no_grad():
        model.decoder.embedding.weight.add_(1.0)
    second = step_function(model)
    assert second is not first
    expected = torch.nn.functional.linear(
        model.decoder.embedding.weight,
        model.decoder.rnn.weight_ih_l0[:, : model.config.embedding_size],
        model.decoder.rnn.bias_ih_l0,
    )
    torch.testing.assert_close(second.cells.table, expected, rtol=0, atol=0)


def test_models_in_training_mode_or_with_unknown_options_use_the_plain_step(monkeypatch):
    model = make_model(dropout=0.3)
    assert isinstance(step_function(model), FastStep)
    model.train()
    assert not isinstance(step_function(model), FastStep)
    model.eval()
    monkeypatch.setattr(
        decoding_step, "_FAST_FIELDS", decoding_step._FAST_FIELDS - {"attn_out_tanh"}
    )
    assert isinstance(step_function(model), FastStep)  # the default value is fine
    model = make_model(attn_out_tanh=False)
    assert not isinstance(step_function(model), FastStep)


# -- beam search against a sentence-by-sentence reference ------------------------------------


def reference_beam(
    model, src, lengths, k, nbest, length_penalty=1.0, rules=None, prefixes=None, topk=0
):
    """One sentence at a time, with AttnDecoder.step and Python lists: the rules written out.

    Per step the 2K best extensions (K with ``best_ended``) are read in order: one that ends
    (EOS or the limit) is kept while fewer than K have ended (always, with ``best_ended``),
    the others become the next beams until K are chosen. Inside its prefix a sentence may
    only extend the prefix. Tokens the rules forbid (and EOS before ``min_length``) never
    come. Returns per sentence (score, step, tokens, attention rows, log-probs, top-k rows).
    """
    rules = rules or ATTNVIZ_RULES
    best_ended = rules.beam_stop == "best_ended"
    eos, results = model.config.eos_id, []
    with torch.inference_mode():
        for b in range(src.size(0)):
            n = int(lengths[b])
            keys, projected, mask, state = model.encode(src[b : b + 1, :n], lengths[b : b + 1])
            prefix = prefixes[b] if prefixes is not None else []
            limit = rules.max_output_length(n)
            limit = max(limit, len(prefix) + 1) if prefixes is not None else limit
            beams = [(0.0, [], [], [], [], state)]  # (total, tokens, rows, lps, top-k, state)
            finished = []
            for t in range(limit):
                candidates = []
                for beam_index, (total, toks, rows, lps, tops, st) in enumerate(beams):
                    prev = torch.tensor([toks[-1] if toks else model.config.bos_id])
                    logits, new_state, weights, _ = model.decoder.step(
                        prev, st, keys, projected, mask
                    )
                    logprobs = torch.log_softmax(logits.float(), dim=-1)[0]
                    top = logprobs.topk(topk).indices.tolist() if topk else []
                    for token in range(logprobs.numel()):
                        if token in rules.forbidden or (token == eos and t < rules.min_length):
                            continue
                        if t < len(prefix) and token != prefix[t]:
                            continue
                        lp = float(logprobs[token])
                        candidates.append(
                            (
                                float(np.float32(total) + np.float32(lp)),
                                beam_index * logprobs.numel() + token,
                                token,
                                lp,
                                toks,
                                [*rows, weights[0].numpy()],
                                lps,
                                [*tops, top],
                                new_state,
                            )
                        )
                candidates.sort(key=lambda c: (-c[0], c[1]))
                beams, at_limit, best_has_ended = [], t + 1 >= limit, False
                width = k if best_ended else 2 * k
                for c, (total, _, token, lp, toks, rows, lps, tops, st) in enumerate(
                    candidates[:width]
                ):
                    if token == eos or at_limit:
                        best_has_ended = best_has_ended or c == 0
                        if best_ended or len(finished) < k:
                            score = normalized_score(total, t + 1, length_penalty, rules)
                            finished.append((score, t, [*toks, token], rows, [*lps, lp], tops))
                        continue
                    beams.append((total, [*toks, token], rows, [*lps, lp], tops, st))
                    if len(beams) == k:
                        break
                if best_ended:
                    stop = best_has_ended and len(finished) >= nbest
                else:
                    stop = len(finished) >= k
                if stop or at_limit or not beams:
                    break
            ranked = sorted(finished, key=lambda f: (-f[0], f[1]))[:nbest]
            results.append(ranked)
    return results


def assert_like_reference(fast, slow, count):
    compared = 0
    for got, want in zip(fast, slow, strict=True):
        assert [h.tokens for h in got] == [w[2] for w in want]
        assert [h.rank for h in got] == list(range(len(want)))
        for hyp, (score, _, _, rows, lps, tops) in zip(got, want, strict=True):
            assert hyp.score == pytest.approx(score, abs=1e-6)
            assert hyp.weights.shape[1:3] == (1, 1)  # [T, L, H, S]
            np.testing.assert_allclose(hyp.weights[:, 0, 0], np.stack(rows), rtol=0, atol=1e-6)
            np.testing.assert_allclose(hyp.token_logprobs, lps, rtol=0, atol=1e-6)
            if tops and tops[0]:
                assert hyp.topk_ids.tolist() == tops
                assert hyp.topk_logprobs.shape == hyp.topk_ids.shape
            else:
                assert hyp.topk_ids is None
            compared += 1
    assert compared == count


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("k, nbest", [(1, 1), (3, 2), (5, 5)])
def test_beam_equals_sentence_by_sentence_reference(rnn, k, nbest):
    model = make_model(seed=3, rnn=rnn)
    src, lengths = sources(7, seed=4)
    fast = beam_decode(model, src, lengths, beam_size=k, nbest=nbest)
    slow = reference_beam(model, src, lengths, k, nbest)
    assert_like_reference(fast, slow, 7 * nbest)


RULES = {
    "best_ended": dict(beam_stop="best_ended"),
    "gnmt": dict(length_norm="gnmt", length_penalty=0.6),
    "offset": dict(length_offset=2, max_length_ratio=1.0, max_length_offset=3.0),
    "forbidden": dict(min_length=4, forbidden=(5, 9)),
}


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("k, nbest", [(3, 1), (3, 2), (4, 4)])
def test_beam_follows_search_rules_like_the_reference(name, k, nbest):
    rules = SearchRules(**RULES[name])
    penalty = rules.length_penalty
    model = make_model(seed=2, rnn="gru")
    src, lengths = sources(12, seed=102)
    fast = beam_decode(
        model, src, lengths, beam_size=k, nbest=nbest, rules=rules, length_penalty=penalty
    )
    slow = reference_beam(model, src, lengths, k, nbest, penalty, rules)
    assert_like_reference(fast, slow, sum(len(w) for w in slow))
    assert sum(len(w) for w in slow) >= 12


@pytest.mark.parametrize("beam", [1, 3])
def test_prefixes_and_top_k_like_the_reference(monkeypatch, beam):
    """Prefixes forced, then free search; top-k rows follow each hypothesis's history, also
    when finished sentences leave the batch."""
    model = make_model(seed=23, rnn="lstm")
    src, lengths = sources(8, seed=24)
    prefixes = [[5, 6, 7], [], [8], [9, 10, 11, 12, 13], [4], [], [6, 6], [7]]
    monkeypatch.setattr(decoding_batch, "COMPACT_SHARE", 0.0)
    if beam == 1:
        fast = greedy_decode(model, src, lengths, prefixes=prefixes, topk=3)
    else:
        fast = beam_decode(model, src, lengths, beam_size=beam, nbest=2, prefixes=prefixes, topk=3)
    slow = reference_beam(model, src, lengths, beam, 1 if beam == 1 else 2, 1.0, None, prefixes, 3)
    assert_like_reference(fast, slow, sum(len(w) for w in slow))
    for group, prefix in zip(fast, prefixes, strict=True):
        for hyp in group:
            assert hyp.tokens[: len(prefix)] == prefix


@pytest.mark.parametrize("beam", [1, 3])
def test_plain_step_gives_the_same_hypotheses(monkeypatch, beam):
    """Models the fast step does not cover decode through AttnDecoder.step, keys expanded."""
    model = make_model(seed=11, attention="general")
    src, lengths = sources(6, seed=12)
    fast = beam_decode(model, src, lengths, beam_size=beam, nbest=beam)
    monkeypatch.setattr(decoding_step, "fast_step_applies", lambda model: False)
    assert isinstance(step_function(model), PlainStep)
    plain = beam_decode(model, src, lengths, beam_size=beam, nbest=beam)
    count = 0
    for a_group, b_group in zip(fast, plain, strict=True):
        assert [h.tokens for h in a_group] == [h.tokens for h in b_group]
        for a, b in zip(a_group, b_group, strict=True):
            np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-12)
            count += 1
    assert count == 6 * beam


@pytest.mark.parametrize("beam", [1, 4])
def test_dropping_finished_sentences_changes_nothing(monkeypatch, beam):
    """float64: the same bits whether finished sentences leave the batch or stay."""
    model = make_model(seed=5, rnn="lstm")
    src, lengths = sources(12, seed=6)

    def run():
        if beam == 1:
            return greedy_decode(model, src, lengths)
        return beam_decode(model, src, lengths, beam_size=beam, nbest=2)

    shrinks = []
    original = DecoderState.index_select

    def counting(state, index):
        shrinks.append(index.numel() < state.attentional.size(0))
        return original(state, index)

    monkeypatch.setattr(DecoderState, "index_select", counting)
    monkeypatch.setattr(decoding_batch, "COMPACT_SHARE", 0.0)  # drop at every chance
    dropped = run()
    assert any(shrinks)
    shrinks.clear()
    monkeypatch.setattr(decoding_batch, "COMPACT_SHARE", 2.0)  # never
    kept = run()
    assert not any(shrinks)
    lengths_seen = {len(h.tokens) for group in kept for h in group}
    assert len(lengths_seen) > 2  # sentences really end at different steps
    for a_group, b_group in zip(dropped, kept, strict=True):
        assert len(a_group) == len(b_group) > 0
        for a, b in zip(a_group, b_group, strict=True):
            assert a.tokens == b.tokens
            assert np.array_equal(a.weights, b.weights)
            assert np.array_equal(a.scores, b.scores)
            assert np.array_equal(a.token_logprobs, b.token_logprobs)
            assert a.score == b.score


def test_forced_decoding_uses_the_same_step_as_free_decoding():
    model = make_model(seed=7, rnn="lstm", decoder_layers=2)
    src, lengths = sources(6, seed=8)
    free = greedy_decode(model, src, lengths)
    eos = model.config.eos_id
    refs = [h[0].tokens[:-1] if h[0].tokens[-1] == eos else h[0].tokens for h in free]
    forced = forced_decode(model, src, lengths, refs)
    for f, g in zip(free, forced, strict=True):
        rows = len(f[0].tokens)
        assert np.array_equal(f[0].weights, g[0].weights[:rows])
        assert np.array_equal(f[0].token_logprobs, g[0].token_logprobs[:rows])


@pytest.mark.parametrize("beam", [1, 3])
def test_one_read_back_per_step(monkeypatch, beam):
    """On a GPU every read of a device value waits for the device: the loops read one number
    per step (how many sentences are done) and move the results to the host at the end."""
    model = make_model(seed=13, rnn="lstm")
    src, lengths = sources(9, seed=14)
    monkeypatch.setattr(decoding_batch, "COMPACT_SHARE", 2.0)  # dropping rows reads their indices
    steps = {"n": 0}
    assert isinstance(step_function(model), FastStep)
    real_step = FastStep.__call__

    def counting_step(self, *args):
        steps["n"] += 1
        return real_step(self, *args)

    reads = {"n": 0}
    for name in ("__int__", "__bool__", "__float__", "item", "tolist", "cpu", "numpy", "nonzero"):
        real = getattr(torch.Tensor, name)

        def counting(self, *args, real=real, **kwargs):
            reads["n"] += 1
            return real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    monkeypatch.setattr(FastStep, "__call__", counting_step)
    seen = []
    for max_length in (3, 12):
        steps["n"] = reads["n"] = 0
        if beam == 1:
            greedy_decode(model, src, lengths, max_length=max_length)
        else:
            beam_decode(model, src, lengths, beam_size=beam, max_length=max_length)
        seen.append((steps["n"], reads["n"]))
    (short_steps, short_reads), (long_steps, long_reads) = seen
    assert long_steps > short_steps
    # each further step adds exactly one read; the rest is a fixed cost around the loop
    assert long_reads - short_reads == long_steps - short_steps
    assert short_reads <= short_steps + 30


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("k, nbest", [(1, 1), (3, 3), (4, 2), (5, 5)])
def test_joeynmt_beam_equals_its_first_version(rnn, alpha, k, nbest):
    """The batched JoeyNMT beam against the version that carried slot histories along."""
    from joeynmt_beam_reference import reference_beam_joeynmt

    rules = SearchRules(
        beam_stop="all_slots_ended", length_norm="gnmt", length_penalty=alpha, min_length=1
    )
    model = make_model(seed=8, rnn=rnn)  # a seed where marks that moved with the
    src, lengths = sources(10, seed=58)  # hypotheses (not the slots) would change results
    fast = beam_decode(
        model, src, lengths, beam_size=k, nbest=nbest, rules=rules, length_penalty=alpha
    )
    limits = length_limits(lengths, None, rules)
    with torch.inference_mode():
        slow = reference_beam_joeynmt(model, src, lengths, k, nbest, limits, alpha, rules)
    count = 0
    for got, want in zip(fast, slow, strict=True):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        for a, b in zip(got, want, strict=True):
            assert a.rank == b.rank and a.score == pytest.approx(b.score, abs=1e-6)
            np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-9)
            np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, rtol=0, atol=1e-6)
            count += 1
    assert count >= 10  # every sentence has a hypothesis (JoeyNMT may collect fewer than nbest)
