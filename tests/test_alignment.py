"""The Alignment value type: hard links, word merging, JSON round trip, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attnviz.alignment import Alignment, word_groups

SRC_PIECES = ["▁the", "▁hou", "se", "</s>"]
TGT_PIECES = ["▁집", "에서", "▁.", "</s>"]
# rows deliberately not normalised (row 0 sums to 2) so the final renormalisation shows
WEIGHTS = np.array(
    [
        [0.2, 1.0, 0.6, 0.2],
        [0.2, 0.2, 0.4, 0.2],
        [0.6, 0.1, 0.1, 0.2],
        [0.0, 0.25, 0.25, 0.5],
    ],
    np.float32,
)
SCORES = np.array(
    [
        [1.0, 2.0, 4.0, 0.0],
        [3.0, 0.0, 2.0, 1.0],
        [-1.0, 5.0, 7.0, 2.0],
        [0.0, 0.0, 0.0, 9.0],
    ],
    np.float32,
)
LOGPROBS = np.array([-0.5, -1.25, -0.25, -0.125], np.float32)


def make(
    src=SRC_PIECES,
    tgt=TGT_PIECES,
    weights=WEIGHTS,
    scores=SCORES,
    logprobs=LOGPROBS,
    **extra,
) -> Alignment:
    return Alignment(
        source=extra.pop("source", "the house"),
        translation=extra.pop("translation", "집에서 ."),
        src_tokens=list(src),
        tgt_tokens=list(tgt),
        weights=weights,
        scores=scores,
        token_logprobs=logprobs,
        score=extra.pop("score", -2.125),
        **extra,
    )


# -- hard links ------------------------------------------------------------------------------


def test_hard_links_argmax_per_target_token():
    alignment = make()
    # rows 0..2 are real target tokens; argmax over the real source columns 0..2
    assert alignment.hard_links() == [(1, 0), (2, 1), (0, 2)]
    assert alignment.pharaoh() == "0-2 1-0 2-1"


def test_hard_links_ignore_eos_on_both_sides():
    weights = np.array(
        [
            [0.1, 0.2, 0.7],  # </s> column is the max: ignored, best real column is 1
            [0.5, 0.1, 0.4],
            [0.9, 0.05, 0.05],  # the </s> row: no link at all
        ],
        np.float32,
    )
    alignment = make(
        src=["▁a", "▁b", "</s>"],
        tgt=["▁x", "▁y", "</s>"],
        weights=weights,
        scores=np.zeros((3, 3)),
        logprobs=np.zeros(3),
    )
    assert alignment.hard_links() == [(1, 0), (0, 1)]
    assert alignment.pharaoh() == "0-1 1-0"


def test_pharaoh_is_sorted_source_first():
    weights = np.eye(4, dtype=np.float32)[[2, 0, 3, 1]]  # target j looks at source perm[j]
    alignment = make(
        src=["▁a", "▁b", "▁c", "▁d"],
        tgt=["▁w", "▁x", "▁y", "▁z"],
        weights=weights,
        scores=np.zeros((4, 4)),
        logprobs=np.zeros(4),
    )
    assert alignment.hard_links() == [(2, 0), (0, 1), (3, 2), (1, 3)]
    assert alignment.pharaoh() == "0-1 1-3 2-0 3-2"


def test_hard_links_without_real_source_tokens():
    alignment = make(
        src=["</s>"],
        tgt=["▁x", "</s>"],
        weights=np.ones((2, 1)),
        scores=np.zeros((2, 1)),
        logprobs=np.zeros(2),
    )
    assert alignment.hard_links() == []
    assert alignment.pharaoh() == ""


# -- word merging ----------------------------------------------------------------------------


def test_word_groups():
    assert word_groups(SRC_PIECES) == [[0], [1, 2], [3]]
    assert word_groups(TGT_PIECES) == [[0, 1], [2], [3]]
    assert word_groups(["▁", "t", "h", "e", "▁bo", "y", "</s>"]) == [[0, 1, 2, 3], [4, 5], [6]]


def test_to_words_hand_computed():
    words = make(rank=1, meta={"model": "tiny"}).to_words()

    assert words.level == "words"
    assert words.src_tokens == ["the", "house", "</s>"]
    assert words.tgt_tokens == ["집에서", ".", "</s>"]
    assert all("▁" not in token for token in words.src_tokens + words.tgt_tokens)

    # sum over source pieces: row0 [.2, 1.6, .2], row1 [.2, .6, .2], row2 [.6, .2, .2],
    # row3 [0, .5, .5]; mean over target pieces 0,1: [.2, 1.1, .2] (sum 1.5); renormalise
    expected_weights = np.array(
        [
            [0.2 / 1.5, 1.1 / 1.5, 0.2 / 1.5],
            [0.6, 0.2, 0.2],
            [0.0, 0.5, 0.5],
        ],
        np.float32,
    )
    np.testing.assert_allclose(words.weights, expected_weights, rtol=0, atol=1e-6)
    np.testing.assert_allclose(words.weights.sum(axis=1), 1.0, atol=1e-6)
    assert words.weights.dtype == np.float32

    # raw scores: mean over source pieces, then over target pieces
    # row0 [1, 3, 0], row1 [3, 1, 1] -> [2, 2, .5]; row2 [-1, 6, 2]; row3 [0, 0, 9]
    expected_scores = np.array([[2.0, 2.0, 0.5], [-1.0, 6.0, 2.0], [0.0, 0.0, 9.0]], np.float32)
    np.testing.assert_allclose(words.scores, expected_scores, rtol=0, atol=1e-6)

    np.testing.assert_allclose(words.token_logprobs, [-1.75, -0.25, -0.125], rtol=0, atol=1e-7)

    # word-level links: 집에서 -> house, "." -> the
    assert words.hard_links() == [(1, 0), (0, 1)]
    assert words.pharaoh() == "0-1 1-0"

    assert words.source == "the house"
    assert words.translation == "집에서 ."
    assert words.score == -2.125
    assert words.rank == 1
    assert words.meta == {"model": "tiny"}
    assert words.shape == (3, 3)


def test_to_words_is_idempotent():
    words = make().to_words()
    assert words.to_words() is words


def test_to_words_zero_row_stays_zero():
    weights = WEIGHTS.copy()
    weights[2] = 0.0
    words = make(weights=weights).to_words()
    np.testing.assert_array_equal(words.weights[1], [0.0, 0.0, 0.0])
    assert not np.isnan(words.weights).any()


def test_to_words_keeps_input_unchanged():
    alignment = make()
    alignment.to_words()
    assert alignment.src_tokens == SRC_PIECES
    np.testing.assert_array_equal(alignment.weights, WEIGHTS)


# -- JSON ------------------------------------------------------------------------------------

ODD_FLOATS = np.array(
    [
        [1e-45, 1.0 / 3.0, 0.1, 3.4028235e38],
        [np.finfo(np.float32).tiny, -0.0, 2.0**-24, 0.7],
        [123456.789, 1e-30, 0.999999940395, 0.5],
        [np.nextafter(np.float32(1), np.float32(0)), 1e-7, 0.2, 0.3],
    ],
    np.float32,
)


def _bits(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, np.float32).view(np.uint32)


def test_json_round_trip_is_lossless():
    original = make(
        weights=ODD_FLOATS,
        scores=-ODD_FLOATS[::-1],
        logprobs=np.array([-1e-40, -0.1, -7.25, -1.0 / 3.0], np.float32),
        score=-1.0 / 3.0,
        rank=2,
        meta={"model": "enko-additive", "nbest": 3, "note": "한국어 ✓"},
        source="the house",
        translation="집에서 .",
    )
    line = original.to_json()
    assert "\n" not in line
    assert "집에서" in line  # kept as text, not \\u escapes

    loaded = Alignment.from_json(line)

    assert loaded == original
    np.testing.assert_array_equal(_bits(loaded.weights), _bits(original.weights))
    np.testing.assert_array_equal(_bits(loaded.scores), _bits(original.scores))
    np.testing.assert_array_equal(_bits(loaded.token_logprobs), _bits(original.token_logprobs))
    assert loaded.tgt_tokens == TGT_PIECES
    assert loaded.meta == {"model": "enko-additive", "nbest": 3, "note": "한국어 ✓"}
    assert loaded.score == original.score
    assert loaded.rank == 2


def test_json_record_keys_and_values():
    record = json.loads(make(meta={"extra": [1, 2]}).to_json())
    assert set(record) == {
        "source",
        "translation",
        "src_tokens",
        "tgt_tokens",
        "attention",
        "scores",
        "token_logprobs",
        "alignment",
        "score",
        "rank",
        "level",
        "extra",
    }
    assert record["alignment"] == "0-2 1-0 2-1"
    assert record["attention"][1] == pytest.approx([0.2, 0.2, 0.4, 0.2])
    assert record["level"] == "pieces"
    assert record["extra"] == [1, 2]


def test_nan_score_becomes_null_and_back():
    original = make(score=math.nan)
    line = original.to_json()
    record = json.loads(line)
    assert record["score"] is None
    assert "NaN" not in line
    loaded = Alignment.from_json(line)
    assert math.isnan(loaded.score)
    assert loaded == original


def test_words_level_round_trip():
    words = make().to_words()
    loaded = Alignment.from_json(words.to_json())
    assert loaded == words
    assert loaded.level == "words"


def test_from_dict_defaults_for_optional_keys():
    record = {
        "source": "a",
        "translation": "b",
        "src_tokens": ["▁a", "</s>"],
        "tgt_tokens": ["▁b", "</s>"],
        "attention": [[0.75, 0.25], [0.0, 1.0]],
    }
    loaded = Alignment.from_dict(record)
    np.testing.assert_array_equal(loaded.scores, np.zeros((2, 2)))
    np.testing.assert_array_equal(loaded.token_logprobs, np.zeros(2))
    assert loaded.rank == 0
    assert loaded.level == "pieces"
    assert loaded.meta == {}


@pytest.mark.parametrize("key", ["source", "translation", "src_tokens", "tgt_tokens", "attention"])
def test_from_dict_missing_key(key):
    record = make().to_dict()
    del record[key]
    with pytest.raises(ValueError, match=key):
        Alignment.from_dict(record)


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("attention", [[0.5, 0.5]], "attention has shape"),
        ("attention", [[0.1, 0.2, 0.3]] * 4, "attention has shape"),
        ("attention", [[0.1, 0.2], [0.3]], "attention"),
        ("attention", [["x"] * 4] * 4, "attention"),
        ("scores", [[0.0] * 3] * 4, "scores has shape"),
        ("token_logprobs", [0.0, 0.0], "token_logprobs"),
        ("src_tokens", ["▁the", "</s>"], "attention has shape"),
        ("level", "sentences", "level"),
    ],
)
def test_from_dict_rejects_inconsistent_records(key, value, pattern):
    record = make().to_dict()
    record[key] = value
    with pytest.raises(ValueError, match=pattern):
        Alignment.from_dict(record)


# -- constructor -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"weights": np.zeros((4, 3))}, "weights"),
        ({"weights": np.zeros((3, 4))}, "weights"),
        ({"weights": np.zeros(16)}, "weights"),
        ({"scores": np.zeros((4, 5))}, "scores"),
        ({"logprobs": np.zeros(3)}, "token_logprobs"),
        ({"logprobs": np.zeros((4, 1))}, "token_logprobs"),
        ({"src": ["▁the", "</s>"]}, r"\[T, S\]"),
        ({"level": "chars"}, "level"),
    ],
)
def test_constructor_rejects_wrong_shapes(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(**changes)


def test_constructor_converts_to_float32():
    alignment = make(weights=WEIGHTS.astype(np.float64).tolist())
    assert alignment.weights.dtype == np.float32
    assert alignment.scores.dtype == np.float32
    assert alignment.token_logprobs.dtype == np.float32
    assert alignment.shape == (4, 4)


def test_equality_compares_values():
    assert make() == make()
    other = WEIGHTS.copy()
    other[0, 0] += 1e-3
    assert make() != make(weights=other)
    assert make() != make(rank=1)


def _to_words_by_definition(alignment: Alignment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word merging written out group by group, the way the definition reads."""
    src_groups = word_groups(alignment.src_tokens)
    tgt_groups = word_groups(alignment.tgt_tokens)
    weights = np.stack([alignment.weights[:, g].sum(axis=1) for g in src_groups], axis=1)
    weights = np.stack([weights[g].mean(axis=0) for g in tgt_groups])
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    scores = np.stack([alignment.scores[:, g].mean(axis=1) for g in src_groups], axis=1)
    scores = np.stack([scores[g].mean(axis=0) for g in tgt_groups])
    logprobs = np.array([alignment.token_logprobs[g].sum() for g in tgt_groups], np.float32)
    return weights, scores, logprobs


def test_to_words_is_bit_identical_to_the_group_by_group_definition():
    rng = np.random.default_rng(7)
    for _ in range(300):
        tokens = []
        for side_words in rng.integers(1, 14, size=2):
            side = []
            for w in range(side_words):
                pieces = int(rng.choice([1, 1, 2, 3, 5, 8, 11]))  # 8 and 11: numpy sums pairwise
                side += [f"▁w{w}"] + ["<unk>" if rng.random() < 0.1 else "p"] * (pieces - 1)
            tokens.append([*side, "</s>"])
        src, tgt = tokens
        weights = rng.random((len(tgt), len(src))).astype(np.float32)
        weights /= weights.sum(axis=1, keepdims=True)
        scores = rng.normal(size=weights.shape).astype(np.float32)
        scores[rng.random(scores.shape) < 0.05] = -0.0
        alignment = make(
            src=src,
            tgt=tgt,
            weights=weights,
            scores=scores,
            logprobs=-rng.random(len(tgt)).astype(np.float32),
        )
        words = alignment.to_words()
        expected = _to_words_by_definition(alignment)
        got_all = (words.weights, words.scores, words.token_logprobs)
        for got, want in zip(got_all, expected, strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()  # bit for bit, signs of zeros included


def test_to_dict_with_a_link_method_and_diagnostics_round_trips():
    alignment = make()
    record = alignment.to_dict(links="argmax-target", diagnostics=True)
    assert record["alignment"] == alignment.pharaoh("argmax-target")
    assert record["alignment"] != alignment.pharaoh()
    assert record["diagnostics"] == alignment.diagnostics().to_dict()
    assert "diagnostics" not in alignment.to_dict()
    back = Alignment.from_json(json.dumps(record))
    assert back == alignment and "diagnostics" not in back.meta


def test_merging_many_matrices_at_once_is_bit_identical_to_one_by_one():
    from attnviz.alignment import merge_word_weights, merge_word_weights_many, word_starts

    rng = np.random.default_rng(11)
    items, expected = [], []
    for _ in range(120):
        sides = []
        for words in rng.integers(1, 16, size=2):
            tokens = []
            for w in range(words):
                tokens += [f"▁w{w}"] + ["p"] * (int(rng.choice([1, 1, 2, 3, 9])) - 1)
            sides.append([*tokens, "</s>"])
        src, tgt = sides
        weights = rng.random((len(tgt), len(src))).astype(np.float32)
        weights[rng.random(weights.shape) < 0.2] = 0.0
        if rng.random() < 0.1:
            weights[0] = 0.0  # an all-zero row stays zero
        alignment = make(src=src, tgt=tgt, weights=weights, scores=np.zeros(weights.shape),
                         logprobs=np.zeros(len(tgt)))  # fmt: skip
        items.append((alignment.weights, word_starts(src), word_starts(tgt)))
        expected.append(_to_words_by_definition(alignment)[0])
    merged = merge_word_weights_many(items)
    for got, want, item in zip(merged, expected, items, strict=True):
        assert got.tobytes() == want.tobytes() and got.shape == want.shape
        assert merge_word_weights(*item).tobytes() == want.tobytes()


def test_arrays_are_read_only_so_cached_links_cannot_go_stale():
    weights = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    alignment = Alignment(
        source="a b",
        translation="x y",
        src_tokens=["a", "b"],
        tgt_tokens=["x", "y"],
        weights=weights,
        scores=np.zeros((2, 2), np.float32),
        token_logprobs=np.zeros(2, np.float32),
        score=0.0,
    )
    assert alignment.pharaoh() == "0-0 1-1"
    for name in ("weights", "scores", "token_logprobs"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(alignment, name)[0] = 0.5
    assert alignment.pharaoh() == "0-0 1-1"
    weights[0, 0] = 0.0  # the caller's own array stays writable
    assert weights.flags.writeable
