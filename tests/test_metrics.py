"""Alignment error rate, Pharaoh parsing, chrF and exact match."""

from __future__ import annotations

import pytest

from attnviz.metrics import aer, chrf, exact_match, parse_pharaoh

# -- Pharaoh lines --------------------------------------------------------------------------


def test_parse_pharaoh_sure_and_possible():
    sure, possible = parse_pharaoh("1-0 0?0 4-1 3?1 2-2 5-3")
    assert sure == {(1, 0), (4, 1), (2, 2), (5, 3)}
    assert possible == sure | {(0, 0), (3, 1)}


def test_parse_pharaoh_empty_and_whitespace():
    assert parse_pharaoh("") == (set(), set())
    assert parse_pharaoh("  0-0\t1?1 \n") == ({(0, 0)}, {(0, 0), (1, 1)})
    assert parse_pharaoh("10-12 0-0 0-0") == ({(10, 12), (0, 0)}, {(10, 12), (0, 0)})


@pytest.mark.parametrize("line", ["0-", "a-b", "1:2", "-1-2", "0-0-P", "0?", "1 - 2", "0-0,1-1"])
def test_parse_pharaoh_rejects_malformed_tokens(line):
    with pytest.raises(ValueError, match="malformed alignment link"):
        parse_pharaoh(line)


# -- AER ------------------------------------------------------------------------------------


def test_aer_perfect_alignment_is_zero():
    gold = {(0, 0), (1, 2), (2, 1)}
    assert aer([gold], [gold], [gold]) == 0.0


def test_aer_counts_possible_links():
    # (1, 1) is only possible: predicting it costs nothing, and missing it costs nothing
    sure, possible = {(0, 0)}, {(0, 0), (1, 1)}
    assert aer([{(0, 0), (1, 1)}], [sure], [possible]) == 0.0
    assert aer([{(0, 0)}], [sure], [possible]) == 0.0


def test_aer_worked_example():
    # A∩S = 1, A∩P = 2, |A| = 3, |S| = 2  ->  1 - 3/5
    predicted = {(0, 0), (1, 2), (2, 1)}
    sure = {(0, 0), (1, 1)}
    possible = sure | {(1, 2)}
    assert aer([predicted], [sure], [possible]) == pytest.approx(2 / 5)


def test_aer_is_corpus_level_not_a_mean_of_sentences():
    # sentence 1: hits 2 of 2; sentence 2: hits 0 of 4  ->  1 - 2/6 (a mean would give 0.5)
    predicted = [{(0, 0)}, {(0, 1), (1, 0)}]
    sure = [{(0, 0)}, {(0, 0), (1, 1)}]
    assert aer(predicted, sure, sure) == pytest.approx(2 / 3)


def test_aer_edge_cases():
    assert aer([set()], [{(0, 0)}], [{(0, 0)}]) == 1.0
    assert aer([set()], [set()], [set()]) == 0.0
    assert aer([], [], []) == 0.0
    # possible sets that omit the sure links are completed with them
    assert aer([{(0, 0)}], [{(0, 0)}], [set()]) == 0.0


def test_aer_from_parsed_lines_and_generators():
    gold = [parse_pharaoh("0-0 1?0 2-1"), parse_pharaoh("0-1 1-0")]
    predicted = [{(0, 0), (1, 0), (2, 1)}, {(0, 0), (1, 1)}]
    # hits: (2 + 3) + (0 + 0) = 5; |A| + |S| = (3 + 2) + (2 + 2) = 9
    result = aer(iter(predicted), (s for s, _ in gold), (p for _, p in gold))
    assert result == pytest.approx(1 - 5 / 9)


def test_aer_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one predicted, sure and possible set per sentence"):
        aer([set()], [set(), set()], [set()])


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
