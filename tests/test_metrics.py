"""chrF and exact match (alignment metrics are tested in test_eval.py)."""

from __future__ import annotations

import pytest

from attnviz.metrics import chrf, exact_match

# -- chrF -----------------------------------------------------------------------------------


def test_chrf_identical_is_100_and_disjoint_is_0():
    assert chrf(["소년이 사과를 먹었다 ."], ["소년이 사과를 먹었다 ."]) == pytest.approx(100.0)
    assert chrf(["xyz"], ["abc"]) == 0.0
    assert chrf([""], ["abc"]) == 0.0
    assert chrf([], []) == 0.0


def test_chrf_ignores_whitespace():
    assert chrf(["a b c"], ["abc"]) == pytest.approx(100.0)


def test_chrf_hand_computed():
    # "ab" vs "abcdefgh": orders 1-2 only (the hypothesis has no 3-grams).
    # P = (2/2 + 1/1) / 2 = 1, R = (2/8 + 1/7) / 2 = 11/56,
    # F2 = 5PR / (4P + R) = (55/56) / (235/56) = 11/47
    assert chrf(["ab"], ["abcdefgh"]) == pytest.approx(100 * 11 / 47, abs=1e-9)


def test_chrf_sums_statistics_over_the_corpus():
    # order 1: hyp 4, ref 5, match 2; order 2: hyp 2, ref 3, match 1; order 3: no hypothesis
    # P = 1/2, R = (2/5 + 1/3) / 2 = 11/30, F2 = 55/142
    assert chrf(["ab", "ab"], ["ab", "cde"]) == pytest.approx(100 * 55 / 142, abs=1e-9)


@pytest.mark.parametrize(
    ("hyps", "refs", "expected"),
    [
        # reference values from sacrebleu 2.6.0, CHRF() defaults, corpus_score(hyps, [refs])
        (["소년이 사과를 먹는다 ."], ["소년이 사과를 먹었다 ."], 62.9034391534),
        (
            ["소녀가 책을 읽었다 .", "개가 달린다 ."],
            ["소녀가 책을 읽는다 .", "고양이가 공원에서 달린다 ."],
            35.1116728620,
        ),
        (["the cat sat on the mat"], ["the cat is on the mat"], 64.5779420625),
        (
            ["the boy ate an apple .", "did the cat sleep ?"],
            ["the boy ate the apple .", "did a cat sleep ?"],
            65.3809036626,
        ),
    ],
)
def test_chrf_matches_sacrebleu(hyps, refs, expected):
    assert chrf(hyps, refs) == pytest.approx(expected, abs=1e-6)


def test_chrf_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        chrf(["a"], [])


# -- exact match ----------------------------------------------------------------------------


def test_exact_match():
    assert exact_match(["a b", "c", "d ."], ["a b", "x", "d ."]) == pytest.approx(2 / 3)
    assert exact_match(["a"], ["a "]) == 0.0  # no normalisation
    assert exact_match([], []) == 0.0
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        exact_match(["a"], ["a", "b"])
