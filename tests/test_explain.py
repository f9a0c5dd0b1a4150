"""The step inspector: every intermediate recomputed from what it reports, and its scores and
weights equal to the decoder's own attention, for all three scorers."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

SENTENCE = "the boy ate an apple ."
EXACT = {"rtol": 1e-12, "atol": 1e-12}  # float64 on both sides
# the decoder's Alignment holds float32 copies of float64 values
AS_FLOAT32 = {"rtol": 2e-7, "atol": 1e-30}


def assert_close(actual, expected, **tolerance):
    import torch

    torch.testing.assert_close(
        torch.as_tensor(np.asarray(actual, dtype=np.float64)),
        torch.as_tensor(np.asarray(expected, dtype=np.float64)),
        **tolerance,
    )


def parameter(module, name):
    return getattr(module, name).detach().double().numpy()


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.fixture(scope="module", params=["additive", "dot", "general"])
def translator(request, spm_models):
    """float64 (float32 is the default): the decoder's numbers and the inspector's agree to
    the precision of the float32 copies an Alignment keeps."""
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    return Translator(make_checkpoint(spm_models, attention=request.param), "cpu", "float64")


@pytest.fixture(scope="module")
def explained(translator):
    from attnviz.explain import explain_steps

    return explain_steps(translator, SENTENCE, topk=4)


def test_scores_and_weights_equal_the_decoders_attention(translator, explained):
    alignment = translator.translate(SENTENCE)[0]
    assert [step.target_token for step in explained] == alignment.tgt_tokens
    assert len(explained) == alignment.shape[0] > 1
    for step in explained:
        assert step.src_tokens == alignment.src_tokens
        assert_close(step.scores, alignment.scores[step.step], **AS_FLOAT32)
        assert_close(step.weights, alignment.weights[step.step], **AS_FLOAT32)
        assert step.target_logprob == pytest.approx(
            float(alignment.token_logprobs[step.step]), rel=1e-6
        )
        assert not step.forced


def test_every_score_recomputed_from_the_printed_intermediates(translator, explained):
    """From the JSON (every intermediate in full) and the module's parameters only."""
    attention = translator.model.decoder.attention
    scorer = translator.config.attention
    for step in explained:
        record = json.loads(step.to_json())
        q = np.array(record["query"])  # [Q]
        keys = np.array(record["keys"])  # [N, H]
        assert keys.shape == (len(record["src"]), step.sizes["H"])
        if scorer == "additive":
            w_q = parameter(attention.W, "weight") @ q  # [D, Q] @ [Q] -> [D]
            u_h = keys @ parameter(attention.U, "weight").T  # [N, H] @ [H, D] -> [N, D]
            assert_close(record["projected_query"], w_q, **EXACT)
            assert_close(record["projected_keys"], u_h, **EXACT)
            hidden = np.tanh(
                np.array(record["projected_query"]) + np.array(record["projected_keys"])
            )
            assert_close(record["hidden"], hidden, **EXACT)
            assert_close(record["v"], parameter(attention, "v"), **EXACT)
            recomputed = np.array(record["hidden"]) @ np.array(record["v"])  # [N, D] @ [D]
        elif scorer == "general":
            w_a_h = keys @ parameter(attention.W_a, "weight").T  # [N, H] @ [H, Q] -> [N, Q]
            assert_close(record["projected_keys"], w_a_h, **EXACT)
            recomputed = np.array(record["projected_keys"]) @ q
            assert "hidden" not in record and "projected_query" not in record
        else:
            recomputed = keys @ q  # qᵀ h_j
            assert "projected_keys" not in record
        assert_close(record["scores"], recomputed, **EXACT)
        assert_close(record["weights"], softmax(np.array(record["scores"])), **EXACT)
        assert sum(record["weights"]) == pytest.approx(1.0, abs=1e-12)
        assert_close(record["context"], np.array(record["weights"]) @ keys, **EXACT)


def test_attentional_state_and_top_k_from_the_model(translator, explained):
    decoder = translator.model.decoder
    vocabulary = translator.tgt_tokenizer
    for step in explained:
        concat = np.concatenate([step.context, step.query])  # context_first: [c; q]
        combine = parameter(decoder.combine, "weight") @ concat + parameter(decoder.combine, "bias")
        assert_close(step.attentional, np.tanh(combine), **EXACT)
        logits = parameter(decoder.output, "weight") @ step.attentional + parameter(
            decoder.output, "bias"
        )
        probabilities = softmax(logits)
        order = np.argsort(-probabilities)[:4]
        assert len(step.topk) == 4
        for (token, probability), index in zip(step.topk, order, strict=True):
            assert probability == pytest.approx(probabilities[index], rel=1e-5)
            expected = (
                "</s>" if index == translator.config.eos_id else vocabulary.id_to_piece(int(index))
            )
            assert token == expected
        # greedy: the emitted token is the most likely one
        assert step.topk[0][0] == step.target_token


def test_prefix_is_forced_then_decoding_is_greedy(translator):
    from attnviz.explain import explain_steps

    prefix = "고양이가 사과를"
    forced = translator.tgt_tokenizer.encode(prefix)
    explained = explain_steps(translator, SENTENCE, prefix=prefix, steps=len(forced) + 2)
    pieces = [translator.tgt_tokenizer.id_to_piece(i) for i in forced]
    assert [s.target_token for s in explained[: len(forced)]] == pieces
    assert all(s.forced for s in explained[: len(forced)])
    assert not any(s.forced for s in explained[len(forced) :])
    assert explained[len(forced)].prefix_tokens == pieces
    # after the prefix, each step emits its most likely token
    assert all(s.target_token == s.topk[0][0] for s in explained[len(forced) :])


def test_forced_along_a_beam_hypothesis_reproduces_its_attention(translator):
    from attnviz.explain import explain_steps

    for alignment in translator.translate(SENTENCE, beam_size=3, nbest=3):
        explained = explain_steps(translator, SENTENCE, forced_tokens=alignment.tgt_tokens)
        assert [s.target_token for s in explained] == alignment.tgt_tokens
        assert all(s.forced for s in explained)
        for step in explained:
            assert_close(step.weights, alignment.weights[step.step], **AS_FLOAT32)
            assert_close(step.scores, alignment.scores[step.step], **AS_FLOAT32)


def test_explain_step_picks_one_step_and_checks_its_range(translator, explained):
    from attnviz.errors import InputError, UsageError
    from attnviz.explain import explain_step

    one = explain_step(translator, SENTENCE, 1)
    assert one.step == 1
    assert one.prefix_tokens == [explained[0].target_token]
    assert_close(one.scores, explained[1].scores, **EXACT)
    with pytest.raises(UsageError, match=f"has {len(explained)} steps"):
        explain_step(translator, SENTENCE, len(explained) + 5)
    with pytest.raises(UsageError, match="0 or more"):
        explain_step(translator, SENTENCE, -1)
    with pytest.raises(InputError, match="empty"):
        explain_step(translator, "   ")
    with pytest.raises(UsageError, match="top-k"):
        explain_step(translator, SENTENCE, topk=0)


def test_to_dict_keeps_the_first_dims_of_vectors_only(explained):
    step = explained[0]
    short = step.to_dict(dims=3)
    full = step.to_dict()
    assert len(short["query"]) == 3 and len(full["query"]) == step.sizes["Q"] > 3
    assert len(short["keys"]) == step.sizes["N"] and len(short["keys"][0]) == 3
    assert short["scores"] == full["scores"] and len(full["scores"]) == step.sizes["N"]
    assert short["query"] == full["query"][:3]
    labels = full["labels"]
    assert labels["query"]["shape"] == "[B,1,Q]"
    assert labels["query"]["size"] == f"[1,1,{step.sizes['Q']}]"
    assert labels["scores"]["shape"] == "[B,N]"


def test_additive_labels_follow_the_course_notes(spm_models):
    from conftest import make_checkpoint

    from attnviz.explain import explain_steps
    from attnviz.translator import Translator

    translator = Translator(make_checkpoint(spm_models, attention="additive"), "cpu")
    labels = explain_steps(translator, SENTENCE, steps=1)[0].labels()
    assert labels["projected_query"]["name"] == "W q"
    assert labels["projected_query"]["shape"] == "[B,1,Q]→[B,1,D]"
    assert labels["projected_query"]["size"] == "[1,1,10]"  # attention_size 10
    assert labels["projected_keys"]["shape"] == "[B,N,H]→[B,N,D]"
    assert labels["hidden"]["name"] == "tanh(W q + U h_j)"
    assert labels["scores"]["name"] == "score_j = vᵀ tanh(W q + U h_j)"


def test_rich_panels_show_shapes_values_and_truncation(translator, explained):
    from rich.console import Console

    from attnviz.render.explain import explanation_view

    step = explained[1]
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(explanation_view(step, dims=3))
    text = console.file.getvalue()
    assert "[B,1,Q]" in text and f"[1,1,{step.sizes['Q']}]" in text
    assert step.score_formula in text
    assert f"… ({step.sizes['Q']} values)" in text
    # the first vector drawn is the query: its first 3 values, then "…"
    line = next(line for line in text.splitlines() if f"… ({step.sizes['Q']} values)" in line)
    shown = re.findall(r"[+-]\d+\.\d{3}", line.split("…")[0])
    assert shown == [f"{value:+.3f}" for value in step.query[:3]]
    for j in range(step.sizes["N"]):
        assert f"{step.scores[j]:+.4f}" in text
        assert f"{step.weights[j]:.4f}" in text
    if translator.config.attention == "additive":
        assert "W q" in text and "[B,1,Q]→[B,1,D]" in text and "[B,N,H]→[B,N,D]" in text
    elif translator.config.attention == "general":
        assert "W_a h_j" in text and "[B,N,H]→[B,N,Q]" in text
    else:
        assert "qᵀ h_j" in text


def test_rich_panels_never_print_markup_or_control_characters_from_tokens(explained):
    from dataclasses import replace

    from rich.console import Console

    from attnviz.render.explain import explanation_view

    step = replace(
        explained[0],
        src_tokens=["[bold]x[/bold]", "\x1b[31mred", *explained[0].src_tokens[2:]],
    )
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(explanation_view(step))
    text = console.file.getvalue()
    assert "[bold]x[/bold]" in text
    assert "\x1b" not in text


# -- on the command line ------------------------------------------------------------------


def cli(args):
    from typer.testing import CliRunner

    from attnviz.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_explain_command_json_holds_every_intermediate(checkpoint_path, spm_models):
    from conftest import make_checkpoint

    from attnviz.explain import explain_step
    from attnviz.translator import Translator

    result = cli(
        ["explain", SENTENCE, "--step", "2", "--json", "--model", checkpoint_path,
         "--device", "cpu", "--precision", "float64"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    translator = Translator(make_checkpoint(spm_models), "cpu", "float64")
    expected = explain_step(translator, SENTENCE, 2)
    assert record["step"] == 2 and record["target"] == expected.target_token
    for name, array in expected.arrays().items():
        assert_close(record[name], array, **EXACT)
    # scores from the printed intermediates: vᵀ tanh(W q + U h_j)
    hidden = np.tanh(np.array(record["projected_query"]) + np.array(record["projected_keys"]))
    assert_close(record["scores"], hidden @ np.array(record["v"]), **EXACT)


def test_explain_command_draws_the_panels(checkpoint_path, spm_models):
    from conftest import make_checkpoint

    from attnviz.translator import Translator

    tokenizer = Translator(make_checkpoint(spm_models), "cpu").tgt_tokenizer
    first = tokenizer.id_to_piece(tokenizer.encode("고양이가")[0])
    result = cli(
        ["explain", SENTENCE, "--dims", "2", "--prefix", "고양이가", "--step", "1",
         "--model", checkpoint_path, "--device", "cpu"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "score_j = vᵀ tanh(W q + U h_j)" in result.stdout
    assert "[B,1,Q]→[B,1,D]" in result.stdout
    so_far = next(line for line in result.stdout.splitlines() if line.startswith("so far"))
    assert so_far.split() == ["so", "far", first]  # the first piece of the forced prefix


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["--step", "99"], "step must be below", 2),
        (["--step", "-1"], "--step must be 0 or more", 2),
        (["--dims", "0"], "--dims must be at least 1", 2),
        (["--topk", "0"], "--topk must be between 1 and 50", 2),
    ],
)
def test_explain_command_errors_are_one_line(checkpoint_path, args, fragment, code):
    result = cli(["explain", SENTENCE, "--model", checkpoint_path, "--device", "cpu", *args])
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output
