"""What-if decoding: a forced target prefix, then free decoding (greedy and beam), and the
top-k alternatives recorded at every step of every hypothesis."""

from __future__ import annotations

import json

import numpy as np
import pytest

SENTENCES = ["the boy ate an apple .", "did the cat sleep ?", "a dog runs in the park ."]


def batch(translator, sentences=SENTENCES):
    from attnviz.families.base import pad_batch

    ids = [translator.encode_source(s) for s in sentences]
    return pad_batch(ids, translator.config.pad_id, translator.device)


def teacher_forced_distributions(translator, sentence, tokens):
    """Run the decoder along ``tokens`` (ids) by hand: the softmax of every step, [T, V]."""
    import torch

    model = translator.model
    src, lengths = batch(translator, [sentence])
    rows = []
    with torch.inference_mode():
        keys, projected, mask, state = model.encode(src, lengths)
        prev = torch.tensor([translator.config.bos_id])
        for token in tokens:
            logits, state, _, _ = model.decoder.step(prev, state, keys, projected, mask)
            rows.append(torch.softmax(logits.float(), dim=-1)[0].double().numpy())
            prev = torch.tensor([token])
    return np.stack(rows)


def prefix_ids(translator, text="고양이가 책을"):
    ids = translator.tgt_tokenizer.encode(text)
    assert len(ids) >= 2
    return ids


# -- prefix -----------------------------------------------------------------------------------


def test_prefix_of_the_free_output_changes_nothing(translator):
    from attnviz.decoding import greedy_decode

    src, lengths = batch(translator)
    free = greedy_decode(translator.model, src, lengths)
    compared = 0
    for k in (1, 2):
        prefixes = [group[0].tokens[:k] for group in free]
        forced = greedy_decode(translator.model, src, lengths, prefixes=prefixes)
        for a, b in zip(free, forced, strict=True):
            assert a[0].tokens == b[0].tokens
            np.testing.assert_array_equal(a[0].weights, b[0].weights)
            np.testing.assert_array_equal(a[0].token_logprobs, b[0].token_logprobs)
            compared += 1
    assert compared == 2 * len(SENTENCES)


@pytest.mark.parametrize("beam", [1, 3])
def test_prefix_is_forced_then_each_step_is_free(translator, beam):
    from attnviz.decoding import beam_decode, forced_decode, greedy_decode

    src, lengths = batch(translator)
    prefix = prefix_ids(translator)
    prefixes = [prefix, [], prefix[:1]]  # per sentence; an empty prefix is free decoding
    if beam == 1:
        results = greedy_decode(translator.model, src, lengths, prefixes=prefixes, topk=1)
    else:
        results = beam_decode(
            translator.model, src, lengths, beam_size=beam, nbest=beam, prefixes=prefixes, topk=1
        )
    if beam == 1:  # no prefix: exactly free decoding
        assert results[1][0].tokens == greedy_decode(translator.model, src, lengths)[1][0].tokens
    for group, forced_prefix, sentence in zip(results, prefixes, SENTENCES, strict=True):
        assert len(group) == beam
        for hyp in group:
            assert hyp.tokens[: len(forced_prefix)] == forced_prefix
            # the step's log-probability of each forced token is the model's, not 0
            distributions = teacher_forced_distributions(translator, sentence, hyp.tokens)
            chosen = distributions[np.arange(len(hyp.tokens)), hyp.tokens]
            np.testing.assert_allclose(np.exp(hyp.token_logprobs), chosen, rtol=1e-5)
            # the same tokens teacher-forced give the same attention (forced decoding
            # appends </s>: a hypothesis cut at the length limit compares its own rows)
            eos = translator.config.eos_id
            body = hyp.tokens[:-1] if hyp.tokens[-1] == eos else hyp.tokens
            again = forced_decode(translator.model, *batch(translator, [sentence]), [body])
            size = len(hyp.tokens)
            np.testing.assert_allclose(again[0][0].weights[:size], hyp.weights, atol=1e-6)
            if beam == 1:  # greedy after the prefix: every free token is its step's argmax
                free_steps = range(len(forced_prefix), len(hyp.tokens))
                assert all(hyp.topk_ids[t, 0] == hyp.tokens[t] for t in free_steps)
                assert len(free_steps) >= 1


def test_beam_one_with_prefix_equals_greedy_with_prefix(translator):
    from attnviz.decoding import beam_decode, greedy_decode

    src, lengths = batch(translator)
    prefixes = [prefix_ids(translator)] * len(SENTENCES)
    greedy = greedy_decode(translator.model, src, lengths, prefixes=prefixes, topk=3)
    beam = beam_decode(translator.model, src, lengths, beam_size=1, prefixes=prefixes, topk=3)
    for g, b in zip(greedy, beam, strict=True):
        assert g[0].tokens == b[0].tokens
        np.testing.assert_allclose(g[0].weights, b[0].weights, atol=1e-6)
        np.testing.assert_array_equal(g[0].topk_ids, b[0].topk_ids)
        assert g[0].score == pytest.approx(b[0].score, abs=1e-5)


def test_sentence_with_prefix_alone_equals_inside_a_batch(translator):
    from attnviz.decoding import beam_decode

    src, lengths = batch(translator)
    prefixes = [prefix_ids(translator), prefix_ids(translator, "소년이"), []]
    together = beam_decode(
        translator.model, src, lengths, beam_size=3, nbest=3, prefixes=prefixes, topk=2
    )
    for index, sentence in enumerate(SENTENCES):
        alone = beam_decode(
            translator.model,
            *batch(translator, [sentence]),
            beam_size=3,
            nbest=3,
            prefixes=[prefixes[index]],
            topk=2,
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[index]]
        for a, b in zip(alone, together[index], strict=True):
            np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)
            np.testing.assert_array_equal(a.topk_ids, b.topk_ids)


# -- top-k ------------------------------------------------------------------------------------


@pytest.mark.parametrize("beam", [1, 4])
def test_topk_probabilities_are_the_steps_softmax(translator, beam):
    from attnviz.decoding import beam_decode, greedy_decode

    src, lengths = batch(translator)
    k = 5
    if beam == 1:
        results = greedy_decode(translator.model, src, lengths, topk=k)
    else:
        results = beam_decode(translator.model, src, lengths, beam_size=beam, nbest=beam, topk=k)
    checked = 0
    for group, sentence in zip(results, SENTENCES, strict=True):
        for hyp in group:
            distributions = teacher_forced_distributions(translator, sentence, hyp.tokens)
            assert hyp.topk_ids.shape == hyp.topk_logprobs.shape == (len(hyp.tokens), k)
            for t, distribution in enumerate(distributions):
                expected = np.argsort(-distribution, kind="stable")[:k]
                np.testing.assert_allclose(
                    np.exp(hyp.topk_logprobs[t]), distribution[expected], rtol=1e-5
                )
                np.testing.assert_allclose(
                    distribution[hyp.topk_ids[t]], distribution[expected], rtol=1e-5
                )
                checked += 1
    assert checked >= sum(len(h.tokens) for g in results for h in g) > len(SENTENCES)


def test_forced_decoding_records_topk_too(translator):
    from attnviz.decoding import forced_decode

    reference = prefix_ids(translator)
    result = forced_decode(
        translator.model, *batch(translator, SENTENCES[:1]), [reference], topk=2
    )[0][0]
    distributions = teacher_forced_distributions(translator, SENTENCES[0], result.tokens)
    assert result.topk_ids.shape == (len(reference) + 1, 2)
    for t, distribution in enumerate(distributions):
        np.testing.assert_allclose(
            np.exp(result.topk_logprobs[t]), np.sort(distribution)[::-1][:2], rtol=1e-5
        )


def test_without_topk_nothing_is_recorded(translator):
    from attnviz.decoding import beam_decode, greedy_decode

    src, lengths = batch(translator)
    assert greedy_decode(translator.model, src, lengths)[0][0].topk_ids is None
    assert beam_decode(translator.model, src, lengths, beam_size=2)[0][0].topk_ids is None


# -- through the translator -----------------------------------------------------------------


@pytest.mark.parametrize("beam", [1, 3])
def test_translator_prefix_and_topk_in_alignments(translator, beam):
    from attnviz.alignment import Alignment

    prefix = "고양이가 책을"
    pieces = [translator.tgt_tokenizer.id_to_piece(i) for i in prefix_ids(translator, prefix)]
    alignments = translator.translate(SENTENCES, beam=beam, nbest=beam, prefix=prefix, topk=3)
    assert len(alignments) == beam * len(SENTENCES)
    for alignment in alignments:
        assert alignment.tgt_tokens[: len(pieces)] == pieces
        topk = alignment.meta["topk"]
        assert len(topk) == len(alignment.tgt_tokens)
        for t, step in enumerate(topk):
            probabilities = [p for _, p in step]
            assert len(step) == 3 and probabilities == sorted(probabilities, reverse=True)
            assert 0 < sum(probabilities) <= 1 + 1e-9
            if beam == 1 and t >= len(pieces):  # free greedy steps emit the most likely token
                assert step[0][0] == alignment.tgt_tokens[t]
                assert step[0][1] == pytest.approx(np.exp(alignment.token_logprobs[t]), rel=1e-6)
        record = alignment.to_dict()
        assert record["topk"] == topk
        assert Alignment.from_dict(record) == alignment


def test_word_level_keeps_what_each_words_first_piece_beat(translator):
    pieces = translator.translate(SENTENCES[0], topk=2)[0]
    words = translator.translate(SENTENCES[0], topk=2, words=True)[0]
    from attnviz.alignment import word_groups

    groups = word_groups(pieces.tgt_tokens)
    assert len(words.meta["topk"]) == len(words.tgt_tokens) == len(groups)
    first = [group[0] for group in groups]
    assert words.meta["topk"] == [
        [entry for entry in pieces.meta["topk"][t] if entry[0] != pieces.tgt_tokens[t]]
        for t in first
    ]
    # the emitted piece is left out: what remains is what the word's first piece beat
    assert all(len(entries) in (1, 2) for entries in words.meta["topk"])


def test_prefix_and_references_do_not_combine(translator):
    from attnviz.errors import UsageError

    with pytest.raises(UsageError, match="prefix"):
        translator.translate(SENTENCES[:1], refs=["소년이"], prefix="소년이")


# -- on the command line ------------------------------------------------------------------


def cli(args):
    from typer.testing import CliRunner

    from attnviz.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_translate_prefix_and_topk_in_json(checkpoint_path, spm_models):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    translator = Translator(make_checkpoint(spm_models), "cpu")
    pieces = [translator.tgt_tokenizer.id_to_piece(i) for i in prefix_ids(translator)]
    result = cli(
        ["translate", SENTENCES[0], "--model", checkpoint_path, "--device", "cpu",
         "--prefix", "고양이가 책을", "--topk", "2", "--beam", "2", "--nbest", "2", "--json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    expected = translator.translate(SENTENCES[0], beam=2, nbest=2, prefix="고양이가 책을", topk=2)
    for record, alignment in zip(records, expected, strict=True):
        assert record["tgt_tokens"][: len(pieces)] == pieces
        assert record["topk"] == alignment.meta["topk"]
        assert all(len(step) == 2 for step in record["topk"])


def test_translate_table_shows_the_runner_up(checkpoint_path):
    args = [SENTENCES[1], "--model", checkpoint_path, "--device", "cpu", "--topk", "2"]
    table = cli(["translate", *args])
    data = cli(["translate", *args, "--json"])
    assert table.exit_code == 0 and data.exit_code == 0, table.output + data.output
    record = json.loads(data.stdout)
    assert "runner-up" in table.stdout
    lines = table.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if "runner-up" in line)
    rows = lines[header + 1 : header + 1 + len(record["tgt_tokens"])]
    assert len(rows) == len(record["tgt_tokens"]) > 1
    for row, token, step in zip(rows, record["tgt_tokens"], record["topk"], strict=True):
        name, probability = next(pair for pair in step if pair[0] != token)
        shown = f"{probability:.2f}" if probability >= 0.01 else f"{probability:.1e}"
        assert row.strip().startswith(token), row
        assert row.rstrip().endswith(f"{name} {shown}"), row


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--prefix", "x", "--ref", "y"], "prefix and references do not combine"),
        (["--topk", "51"], "topk must be between 0 and 50"),
        (["--topk", "-1"], "topk must be between 0 and 50"),
    ],
)
def test_bad_what_if_options_are_one_line(checkpoint_path, args, fragment):
    result = cli(["translate", SENTENCES[0], "--model", checkpoint_path, "--device", "cpu", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnviz: error:") and fragment in lines[0]


def test_heatmap_with_a_prefix(checkpoint_path, tmp_path):
    out = tmp_path / "what-if.png"
    result = cli(
        ["heatmap", SENTENCES[0], "--model", checkpoint_path, "--device", "cpu",
         "--prefix", "고양이가", "--out", out]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_force_pieces_reproduces_a_hypothesis_exactly(translator):
    from attnviz.errors import InputError

    for alignment in translator.translate(SENTENCES[0], beam=3, nbest=3):
        again = translator.force_pieces(SENTENCES[0], alignment.tgt_tokens)
        assert again.tgt_tokens == alignment.tgt_tokens
        np.testing.assert_allclose(again.weights, alignment.weights, atol=1e-6)
        np.testing.assert_allclose(again.token_logprobs, alignment.token_logprobs, atol=1e-5)
    cut = translator.force_pieces(SENTENCES[0], alignment.tgt_tokens[:2], topk=2)
    assert cut.tgt_tokens == alignment.tgt_tokens[:2] and cut.shape[0] == 2
    assert len(cut.meta["topk"]) == 2
    np.testing.assert_allclose(cut.weights, alignment.weights[:2], atol=1e-6)
    with pytest.raises(InputError, match="no piece"):
        translator.force_pieces(SENTENCES[0], ["▁no-such-piece-here"])


def test_prefix_with_other_toolkits_search_rules(translator):
    from attnviz.decoding import SearchRules, beam_decode, greedy_decode
    from attnviz.errors import UsageError

    src, lengths = batch(translator)
    prefixes = [prefix_ids(translator)] * len(SENTENCES)
    opennmt = SearchRules(beam_stop="best_ended")
    for group in beam_decode(
        translator.model, src, lengths, beam_size=3, nbest=2, rules=opennmt, prefixes=prefixes
    ):
        assert [h.tokens[: len(prefixes[0])] for h in group] == [prefixes[0]] * len(group)
    joeynmt = SearchRules(beam_stop="all_slots_ended", length_norm="gnmt")
    with pytest.raises(UsageError, match="greedy decoding"):
        beam_decode(translator.model, src, lengths, beam_size=3, rules=joeynmt, prefixes=prefixes)
    with pytest.raises(UsageError, match="greedy decoding"):
        beam_decode(translator.model, src, lengths, beam_size=3, rules=joeynmt, topk=2)
    greedy = greedy_decode(translator.model, src, lengths, rules=joeynmt, prefixes=prefixes)
    assert all(g[0].tokens[: len(prefixes[0])] == prefixes[0] for g in greedy)
