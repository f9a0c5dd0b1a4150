"""The bundled sample models: listed, loadable, and right on held-out sentences."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.samples import DEFAULT_MODEL, resolve_model_path, sample_models

RECIPE = Path(__file__).resolve().parent.parent / "sample_models" / "recipe"
NAMES = ["enko-additive", "enko-dot", "enko-general"]


@pytest.fixture(scope="module")
def held_out():
    sys.path.insert(0, str(RECIPE))
    try:
        import enko_corpus
    finally:
        sys.path.remove(str(RECIPE))
    # seed 3 is the model card's held-out seed; seed 1 made the training data
    return enko_corpus.generate(seed=3, n=12)


def test_models_listed_with_default():
    models = {m.name: m for m in sample_models()}
    assert sorted(models) == [*NAMES, "koen-additive"] and DEFAULT_MODEL == "enko-additive"
    for model in models.values():
        assert model.path.is_file() and model.path.stat().st_size <= 8 * 1024 * 1024
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("enko-additive (default): ")


def test_names_resolve_with_or_without_suffix():
    assert resolve_model_path(None) == resolve_model_path("enko-additive.pt")
    assert resolve_model_path("enko-dot").name == "enko-dot.pt"


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_model_name_is_refused_not_the_default(name):
    from attnviz.errors import UsageError

    with pytest.raises(UsageError, match="model name is empty"):
        resolve_model_path(name)
    result = CliRunner().invoke(app, ["translate", "the boy", "--model", name])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "attnviz: error: the model name is empty; give a checkpoint path or a bundled name"
    )


@pytest.mark.parametrize("name", NAMES)
def test_model_translates_held_out_sentences(name, held_out):
    from attnviz import load_model

    translator = load_model(name)
    alignments = translator.translate([pair.english for pair in held_out], batch_size=12)
    correct = sum(
        a.translation == pair.korean for a, pair in zip(alignments, held_out, strict=True)
    )
    assert correct >= len(held_out) - 1, [
        (a.translation, p.korean) for a, p in zip(alignments, held_out, strict=True)
    ]
    for alignment in alignments:
        assert abs(alignment.weights.sum(axis=1) - 1).max() < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_batch_equals_alone(name, held_out):
    """The acceptance check on real weights: float32 within 1e-4, float64 to the bit."""
    import numpy as np

    from attnviz import load_model

    sentences = [pair.english for pair in held_out]
    for precision, tolerance in (("float32", 1e-4), ("float64", 0.0)):
        translator = load_model(name, precision=precision)
        for beam in (1, 4):
            batched = translator.translate(sentences, beam_size=beam, batch_size=len(sentences))
            for sentence, alignment in zip(sentences, batched, strict=True):
                alone = translator.translate(sentence, beam_size=beam)[0]
                assert alone.tgt_tokens == alignment.tgt_tokens
                assert np.abs(alone.weights - alignment.weights).max() <= tolerance


@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-4), ("float64", 1e-6)])
@pytest.mark.parametrize("name", NAMES)
def test_forced_decoding_of_own_output_reproduces_attention(name, held_out, precision, tolerance):
    """Forcing a model's own translation (as text) gives back its tokens and attention."""
    import numpy as np

    from attnviz import load_model

    translator = load_model(name, precision=precision)
    sentences = [pair.english for pair in held_out]
    free = translator.translate(sentences)
    forced = translator.translate(sentences, refs=[a.translation for a in free])
    assert len(free) == len(forced) == len(sentences)
    for f, g in zip(free, forced, strict=True):
        # output that hit the length limit has no </s>; forcing it appends one more row
        ended = f.tgt_tokens[-1] == "</s>"
        assert g.tgt_tokens == (f.tgt_tokens if ended else [*f.tgt_tokens, "</s>"])
        rows = len(f.tgt_tokens)
        assert np.abs(g.weights[:rows] - f.weights).max() <= tolerance
        assert np.abs(g.scores[:rows] - f.scores).max() <= 1e-4
        assert np.abs(g.token_logprobs[:rows] - f.token_logprobs).max() <= 1e-4
