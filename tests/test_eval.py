"""attnviz.eval: gold readers, link extraction, symmetrisation, Och & Ney metrics, diagnostics."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from attnviz.alignment import Alignment
from attnviz.errors import InputError, UsageError
from attnviz.eval import (
    CorpusScorer,
    Gold,
    LinkCounts,
    aer,
    count_links,
    crossing_fraction,
    detect_gold_format,
    diagnose,
    extract_links,
    parse_link_method,
    parse_pharaoh,
    read_gold,
    read_naacl,
    read_pharaoh,
    score_alignment,
    symmetrise,
)


def gold(sure=(), possible=()) -> Gold:
    return Gold(frozenset(sure), frozenset(set(possible) | set(sure)))


# -- Pharaoh gold -------------------------------------------------------------------------------


def test_parse_pharaoh_sure_and_possible():
    parsed = parse_pharaoh("1-0 0?0 4-1 3p1 2-2 5-3")
    assert parsed.sure == {(1, 0), (4, 1), (2, 2), (5, 3)}
    assert parsed.possible == parsed.sure | {(0, 0), (3, 1)}


def test_parse_pharaoh_empty_whitespace_and_duplicates():
    assert parse_pharaoh("") == Gold()
    assert parse_pharaoh("  0-0\t1?1 \n") == gold({(0, 0)}, {(1, 1)})
    assert parse_pharaoh("10-12 0-0 0-0") == gold({(10, 12), (0, 0)})
    # a link given both ways is sure (and, as every sure link, possible)
    assert parse_pharaoh("3p4 3-4") == gold({(3, 4)})


def test_parse_pharaoh_one_indexed_and_reversed():
    assert parse_pharaoh("1-1 3?2", one_indexed=True) == gold({(0, 0)}, {(2, 1)})
    assert parse_pharaoh("1-0 3?2", reverse=True) == gold({(0, 1)}, {(2, 3)})
    both = parse_pharaoh("2-1 4p3", one_indexed=True, reverse=True)
    assert both == gold({(0, 1)}, {(2, 3)})
    with pytest.raises(ValueError, match="index 0 in a 1-indexed file"):
        parse_pharaoh("1-1 0-2", one_indexed=True)


@pytest.mark.parametrize(
    "line",
    [
        "0-",
        "a-b",
        "1:2",
        "-1-2",
        "0-0-P",
        "0?",
        "1 - 2",
        "0-0,1-1",
        "1x2",
        "1P2",
        "１-２",
        "²-1",
        "1?p2",
    ],
)
def test_parse_pharaoh_rejects_malformed_tokens(line):
    with pytest.raises(ValueError, match="malformed alignment link"):
        parse_pharaoh(line)


def test_read_pharaoh_keeps_blank_lines_as_empty_sentences(tmp_path):
    path = tmp_path / "gold.pharaoh"
    path.write_text("0-0 1?1\n\n   \n2-0\n", encoding="utf-8")
    assert list(read_pharaoh(path)) == [gold({(0, 0)}, {(1, 1)}), Gold(), Gold(), gold({(2, 0)})]
    crlf = tmp_path / "crlf.pharaoh"
    crlf.write_bytes(b"\xef\xbb\xbf0-1\r\n\r\n1-0\r\n")  # BOM and CRLF line ends
    assert list(read_pharaoh(crlf)) == [gold({(0, 1)}), Gold(), gold({(1, 0)})]


def test_read_pharaoh_names_file_and_line(tmp_path):
    path = tmp_path / "gold.pharaoh"
    path.write_text("0-0\n1-1\n2=2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"gold\.pharaoh:3: malformed alignment link .2=2."):
        list(read_pharaoh(path))
    with pytest.raises(InputError, match="no such file"):
        list(read_pharaoh(tmp_path / "missing.pharaoh"))


# -- NAACL / WPT gold ---------------------------------------------------------------------------


def test_read_naacl(tmp_path):
    path = tmp_path / "test.wa"
    path.write_text(
        "1 1 1 S\n"
        "1 2 3 P\n"
        "1 3 2\n"  # no S/P: sure
        "1 0 4 S\n"  # NULL on the source side: dropped
        "\n"
        "3 2 2 s 0.8\n"  # lower case, with a confidence value
        "3 2 2 P\n",  # the same link again as possible: stays sure
        encoding="utf-8",
    )
    sentences = read_naacl(path)
    assert sentences == [gold({(0, 0), (2, 1)}, {(1, 2)}), Gold(), gold({(1, 1)})]
    assert read_naacl(path, reverse=True)[0] == gold({(0, 0), (1, 2)}, {(2, 1)})
    assert detect_gold_format(path) == "naacl"
    assert list(read_gold(path)) == sentences


def test_read_naacl_errors(tmp_path):
    path = tmp_path / "bad.wa"
    path.write_text("1 1 1 S\n1 2 X\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.wa:2: expected 'sentence i j \[S\|P\]'"):
        read_naacl(path)
    zero = tmp_path / "zero.wa"
    zero.write_text("0 1 1 S\n", encoding="utf-8")
    with pytest.raises(InputError, match="sentence numbers start at 1"):
        read_naacl(zero)


def test_gold_format_detection(tmp_path):
    pharaoh = tmp_path / "g.txt"
    pharaoh.write_text("\n0-0 1-1\n", encoding="utf-8")
    assert detect_gold_format(pharaoh) == "pharaoh"
    assert list(read_gold(pharaoh, format="pharaoh")) == [Gold(), gold({(0, 0), (1, 1)})]
    with pytest.raises(UsageError, match="gold format must be one of"):
        read_gold(pharaoh, format="talp")


# -- metrics ------------------------------------------------------------------------------------


def test_counts_worked_example():
    # A = {00, 12, 21}, S = {00, 11}, P = S + {12}: |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2
    counts = count_links({(0, 0), (1, 2), (2, 1)}, gold({(0, 0), (1, 1)}, {(1, 2)}))
    assert counts == LinkCounts(predicted=3, sure=2, hit_sure=1, hit_possible=2)
    assert counts.precision == pytest.approx(2 / 3, abs=1e-12)
    assert counts.recall == pytest.approx(1 / 2, abs=1e-12)
    assert counts.aer == pytest.approx(1 - 3 / 5, abs=1e-12)
    assert counts.f1 == pytest.approx(4 / 7, abs=1e-12)  # 2 * (2/3) * (1/2) / (7/6)


def test_possible_links_cost_nothing_either_way():
    g = gold({(0, 0)}, {(1, 1)})
    assert count_links({(0, 0), (1, 1)}, g).aer == 0.0  # predicting a possible link
    assert count_links({(0, 0)}, g).aer == 0.0  # missing it
    assert count_links({(0, 0), (1, 1)}, g).precision == 1.0
    # a possible set that omits the sure links is completed with them
    assert count_links({(0, 0)}, Gold(frozenset({(0, 0)}), frozenset())).aer == 0.0


def test_corpus_counts_are_summed_not_averaged():
    # sentence 1 hits 2 of 2; sentence 2 hits 0 of 4 -> 1 - 2/6 (a mean would give 0.5)
    first = count_links({(0, 0)}, gold({(0, 0)}))
    second = count_links({(0, 1), (1, 0)}, gold({(0, 0), (1, 1)}))
    assert (first + second).aer == pytest.approx(2 / 3, abs=1e-12)
    assert aer([{(0, 0)}, {(0, 1), (1, 0)}], [{(0, 0)}, {(0, 0), (1, 1)}], [set(), set()]) == (
        pytest.approx(2 / 3, abs=1e-12)
    )


def test_metric_edge_cases():
    nothing = count_links(set(), gold({(0, 0)}))
    assert (nothing.precision, nothing.recall, nothing.aer, nothing.f1) == (1.0, 0.0, 1.0, 0.0)
    empty = count_links(set(), Gold())
    assert (empty.precision, empty.recall, empty.aer, empty.f1) == (1.0, 1.0, 0.0, 1.0)
    wrong = count_links({(3, 3)}, gold({(0, 0)}))
    assert (wrong.precision, wrong.recall, wrong.aer, wrong.f1) == (0.0, 0.0, 1.0, 0.0)
    assert aer([], [], []) == 0.0
    with pytest.raises(ValueError, match="one predicted, sure and possible set per sentence"):
        aer([set()], [set(), set()], [set()])


# -- agreement with lilt/alignment-scripts ------------------------------------------------------


def lilt_corpus(seed: int = 2003, n: int = 400) -> tuple[list[str], list[str]]:
    """Gold (``i-j`` sure, ``ipj`` possible) and hypothesis lines, blank lines included."""
    rng = random.Random(seed)
    gold_lines, hyp_lines = [], []
    for _ in range(n):
        src, tgt = rng.randint(1, 14), rng.randint(1, 14)
        cells = [(i, j) for i in range(src) for j in range(tgt)]
        links = rng.sample(cells, rng.randint(0, min(len(cells), 18)))
        tokens = [f"{i}{'-' if rng.random() < 0.7 else 'p'}{j}" for i, j in links]
        if links and rng.random() < 0.1:
            tokens.append(f"{links[0][0]}p{links[0][1]}")  # the same link again, as possible
        gold_lines.append(" ".join(tokens))
        kept = [link for link in links if rng.random() < 0.6]
        noise = rng.sample(cells, rng.randint(0, min(len(cells), 6)))
        hyp_lines.append(" ".join(f"{i}-{j}" for i, j in kept + noise))
    return gold_lines, hyp_lines


# Output of scripts/aer.py of github.com/lilt/alignment-scripts (commit 4da9bbf), run on the
# files written by lilt_corpus() with --fAlpha 0.5; its precision, recall, aer and f_measure
# variables, printed with repr().
LILT_PRECISION = 0.6915855354659249
LILT_RECALL = 0.6263686131386861
LILT_AER = 0.33662194159431724
LILT_F = 0.657363495042989


def test_agrees_with_lilt_aer_script(tmp_path):
    gold_lines, hyp_lines = lilt_corpus()
    (tmp_path / "gold.talp").write_text("\n".join(gold_lines) + "\n", encoding="utf-8")
    total = LinkCounts()
    for g, line in zip(read_pharaoh(tmp_path / "gold.talp"), hyp_lines, strict=True):
        total += count_links(parse_pharaoh(line).possible, g)
    assert abs(total.precision - LILT_PRECISION) < 1e-9
    assert abs(total.recall - LILT_RECALL) < 1e-9
    assert abs(total.aer - LILT_AER) < 1e-9
    assert abs(total.f1 - LILT_F) < 1e-9


# -- hard links ---------------------------------------------------------------------------------

# 3 target rows over 4 source columns (real tokens only)
LINK_WEIGHTS = np.array(
    [
        [0.1, 0.6, 0.2, 0.1],
        [0.5, 0.1, 0.35, 0.05],
        [0.05, 0.1, 0.45, 0.4],
    ]
)


def test_link_methods_hand_worked():
    assert extract_links(LINK_WEIGHTS, "argmax") == [(1, 0), (0, 1), (2, 2)]
    # column maxima: col 0 -> row 1, col 1 -> row 0, col 2 -> row 2, col 3 -> row 2
    assert extract_links(LINK_WEIGHTS, "argmax-target") == [(1, 0), (0, 1), (2, 2), (3, 2)]
    assert extract_links(LINK_WEIGHTS, "both") == [(1, 0), (0, 1), (2, 2)]
    assert extract_links(LINK_WEIGHTS, "threshold:0.4") == [(1, 0), (0, 1), (2, 2), (3, 2)]
    assert extract_links(LINK_WEIGHTS, "threshold:0.35") == [(1, 0), (0, 1), (2, 1), (2, 2), (3, 2)]
    assert extract_links(LINK_WEIGHTS, "threshold:1") == []
    assert extract_links(np.zeros((0, 3)), "both") == []


def test_both_differs_from_argmax_when_a_column_prefers_another_row():
    # both rows pick column 0; column 0 picks row 1, column 1 picks row 0
    weights = np.array([[0.6, 0.4], [0.7, 0.3]])
    assert extract_links(weights, "argmax") == [(0, 0), (0, 1)]
    assert extract_links(weights, "argmax-target") == [(1, 0), (0, 1)]
    assert extract_links(weights, "both") == [(0, 1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max", "unknown link method 'max'"),
        ("threshold:", "threshold must be a number in \\(0, 1\\]"),
        ("threshold:0", "threshold must be a number"),
        ("threshold:1.5", "threshold must be a number"),
        ("threshold:nan", "threshold must be a number"),
    ],
)
def test_link_method_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_link_method(text)


def test_alignment_hard_links_default_is_unchanged_and_methods_skip_eos():
    alignment = Alignment(
        source="a b c",
        translation="x y",
        src_tokens=["▁a", "▁b", "▁c", "</s>"],
        tgt_tokens=["▁x", "▁y", "</s>"],
        weights=np.array(
            [[0.1, 0.2, 0.3, 0.4], [0.6, 0.2, 0.1, 0.1], [0.0, 0.0, 0.2, 0.8]], np.float32
        ),
        scores=np.zeros((3, 4)),
        token_logprobs=np.zeros(3),
        score=0.0,
    )
    assert alignment.hard_links() == [(2, 0), (0, 1)]
    assert alignment.pharaoh() == "0-1 2-0"
    # column b's best real target row is x (0.2 vs 0.2: the first wins)
    assert alignment.hard_links("argmax-target") == [(1, 0), (2, 0), (0, 1)]
    assert alignment.pharaoh("both") == "0-1 2-0"
    assert alignment.pharaoh("threshold:0.25") == "0-1 2-0"


# -- symmetrisation -----------------------------------------------------------------------------

# 6 x 6, hand-worked in the comments of test_symmetrise_hand_worked
FORWARD = {(0, 0), (1, 1), (4, 2), (2, 3), (1, 4), (5, 5)}  # one source word per target word
REVERSE = {(0, 0), (1, 1), (2, 2), (3, 0), (4, 4), (5, 3)}  # one target word per source word


def test_symmetrise_hand_worked():
    assert symmetrise(FORWARD, REVERSE, "intersection") == {(0, 0), (1, 1)}
    assert symmetrise(FORWARD, REVERSE, "union") == FORWARD | REVERSE
    # grow-diag from {00, 11}: at 11 the diagonal 22 is in the union and source 2 unaligned;
    # at 22, 23 (target 3 unaligned); at 23, the diagonal 14 (target 4 unaligned). Nothing
    # else touches an accepted link, so 42, 30, 44, 55, 53 stay out.
    grown = {(0, 0), (1, 1), (2, 2), (2, 3), (1, 4)}
    assert symmetrise(FORWARD, REVERSE, "grow-diag", 6, 6) == grown
    # final: forward first, 42 (source 4 unaligned), 55; then reverse, 30 (source 3
    # unaligned); 44 and 53 now have both words aligned
    assert symmetrise(FORWARD, REVERSE, "grow-diag-final", 6, 6) == grown | {
        (4, 2),
        (5, 5),
        (3, 0),
    }
    # final-and: only 55 has both words unaligned
    assert symmetrise(FORWARD, REVERSE, "grow-diag-final-and", 6, 6) == grown | {(5, 5)}


def test_symmetrise_textbook_sentence():
    # Maria0 no1 daba2 una3 bofetada4 a5 la6 bruja7 verde8 / Mary0 did1 not2 slap3 the4
    # green5 witch6
    forward = {(0, 0), (2, 1), (1, 2), (4, 3), (6, 4), (8, 5), (7, 6)}
    reverse = {(0, 0), (1, 2), (2, 3), (3, 3), (4, 3), (5, 4), (6, 4), (7, 6), (8, 5)}
    meet = {(0, 0), (1, 2), (4, 3), (6, 4), (7, 6), (8, 5)}
    assert symmetrise(forward, reverse, "intersection") == meet
    # from no-not: diagonal daba-did joins (daba unaligned); daba-slap, the next diagonal,
    # then has both words aligned and never joins. From bofetada-slap: una-slap (una
    # unaligned) and the diagonal a-the (a unaligned).
    grown = meet | {(2, 1), (3, 3), (5, 4)}
    for method in ("grow-diag", "grow-diag-final", "grow-diag-final-and"):
        assert symmetrise(forward, reverse, method, 9, 7) == grown, method
    assert symmetrise(forward, reverse, "union") == grown | {(2, 3)}


def test_symmetrise_lengths_default_to_the_links_and_methods_are_checked():
    assert symmetrise(FORWARD, REVERSE, "grow-diag-final") == symmetrise(
        FORWARD, REVERSE, "grow-diag-final", 6, 6
    )
    assert symmetrise(set(), set(), "grow-diag-final-and") == set()
    with pytest.raises(UsageError, match="unknown symmetrisation 'grow'"):
        symmetrise(FORWARD, REVERSE, "grow")


# -- diagnostics --------------------------------------------------------------------------------


def entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_diagnostics_hand_computed():
    src = ["▁a", "▁b", "</s>"]
    tgt = ["▁x", "▁y", "</s>"]
    weights = np.array([[0.5, 0.5, 0.0], [0.8, 0.0, 0.2], [0.0, 0.25, 0.75]])
    d = diagnose(weights, src, tgt)
    # coverage (column sums) = [1.3, 0.75, 0.95]
    cdp = -(math.log(1 + 0.3**2) + math.log(1 + 0.25**2) + math.log(1 + 0.05**2)) / 3
    rows = entropy([0.5, 0.5]) + entropy([0.8, 0.2]) + entropy([0.25, 0.75])
    cols = (
        entropy([0.5 / 1.3, 0.8 / 1.3])
        + entropy([0.5 / 0.75, 0.25 / 0.75])
        + entropy([0.2 / 0.95, 0.75 / 0.95])
    )
    assert d.cdp == pytest.approx(cdp, abs=1e-12)
    assert d.entropy == pytest.approx(rows / 3, abs=1e-12)
    assert d.ap_out == pytest.approx(-rows / 3, abs=1e-12)
    assert d.ap_in == pytest.approx(-cols / 3, abs=1e-12)
    assert d.confidence == pytest.approx(cdp - rows / 3 - cols / 3, abs=1e-12)
    assert d.eos_weight == pytest.approx((0.0 + 0.2) / 2, abs=1e-12)
    # argmax links over real tokens: x -> a (tie 0.5/0.5, first wins), y -> a: no crossing
    assert d.crossings == 0.0
    assert d.unattended == () and d.overattended == ()


def test_diagnostics_under_and_over_attended_words():
    src = ["▁a", "▁b", "▁c", "</s>"]
    tgt = ["▁w", "▁x", "▁y", "▁z", "</s>"]
    weights = np.array(
        [
            [0.9, 0.0, 0.1, 0.0],
            [0.7, 0.1, 0.2, 0.0],
            [0.1, 0.2, 0.7, 0.0],
            [0.6, 0.1, 0.3, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    d = diagnose(weights, src, tgt)
    # column sums: a 2.3 (> 2: over), b 0.4 (< 0.5: under), c 1.3, </s> 1.0 (not a word)
    assert d.unattended == (1,)
    assert d.overattended == (0,)
    # links w->a, x->a, y->c, z->a: pairs crossing: (c,y) with (a,z) only -> 1 of 6
    assert d.crossings == pytest.approx(1 / 6, abs=1e-12)
    assert d.eos_weight == 0.0
    assert d.cdp == pytest.approx(
        -(math.log(1 + 1.3**2) + math.log(1 + 0.6**2) + math.log(1 + 0.3**2) + 0.0) / 4,
        abs=1e-12,
    )
    line = d.summary(["a", "b", "c"])
    assert "unattended: b" in line and "over-attended: a" in line


def test_diagnostics_of_perfect_attention_are_zero():
    d = diagnose(np.eye(3), ["▁a", "▁b", "</s>"], ["▁x", "▁y", "</s>"])
    assert (d.entropy, d.cdp, d.ap_out, d.ap_in, d.eos_weight, d.crossings) == (0, 0, 0, 0, 0, 0)
    assert diagnose(np.zeros((0, 0)), [], []).confidence == 0.0


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        ([(0, 0), (1, 1), (2, 2)], 0.0),
        ([(2, 0), (1, 1), (0, 2)], 1.0),
        ([(1, 0), (0, 1), (2, 2)], 1 / 3),
        ([(0, 0), (0, 1)], 0.0),  # shared source word: not a crossing
        ([(0, 0)], 0.0),
        ([], 0.0),
    ],
)
def test_crossing_fraction(links, expected):
    assert crossing_fraction(links) == pytest.approx(expected, abs=1e-12)


def test_alignment_diagnostics_method():
    alignment = Alignment(
        source="a",
        translation="x",
        src_tokens=["▁a", "</s>"],
        tgt_tokens=["▁x", "</s>"],
        weights=np.array([[0.75, 0.25], [0.0, 1.0]], np.float32),
        scores=np.zeros((2, 2)),
        token_logprobs=np.zeros(2),
        score=0.0,
    )
    d = alignment.diagnostics()
    assert d.eos_weight == pytest.approx(0.25, abs=1e-7)
    assert d.entropy == pytest.approx(entropy([0.75, 0.25]) / 2, abs=1e-7)


# -- scoring sentences and corpora --------------------------------------------------------------


def word_alignment(src, tgt, weights, source="", translation="") -> Alignment:
    return Alignment(
        source=source or " ".join(src),
        translation=translation or " ".join(tgt),
        src_tokens=[*src, "</s>"],
        tgt_tokens=[*tgt, "</s>"],
        weights=np.asarray(weights, np.float32),
        scores=np.zeros(np.shape(weights)),
        token_logprobs=np.zeros(len(tgt) + 1),
        score=0.0,
        level="words",
    )


def test_score_alignment_with_gold_and_a_reverse_direction():
    # forward (a b -> x y): x looks at a, y at a; reverse (x y -> a b): a at x, b at y
    forward = word_alignment(
        ["a", "b"], ["x", "y"], [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.0, 0.0, 1.0]]
    )
    reverse = word_alignment(
        ["x", "y"], ["a", "b"], [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]]
    )
    g = gold({(0, 0), (1, 1)})
    alone = score_alignment(forward, gold=g)
    assert alone.links == [(0, 0), (0, 1)]
    assert alone.counts == LinkCounts(2, 2, 1, 1)
    meet = score_alignment(forward, gold=g, reverse=reverse, sym="intersection")
    assert meet.links == [(0, 0)]  # forward {00, 01} ∩ reverse swapped {00, 11}
    union = score_alignment(forward, gold=g, reverse=reverse, sym="union")
    assert union.links == [(0, 0), (0, 1), (1, 1)]
    assert union.counts.aer == pytest.approx(1 - 4 / 5, abs=1e-12)
    assert union.to_dict()["alignment"] == "0-0 0-1 1-1"


def test_score_alignment_errors_name_the_line():
    forward = word_alignment(["a", "b"], ["x"], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match=r"line 7: gold link 2-0 does not fit .* 2 source and 1"):
        score_alignment(forward, index=6, gold=gold({(2, 0)}))
    reverse = word_alignment(["x", "z"], ["a", "b"], np.full((3, 3), 1 / 3))
    with pytest.raises(InputError, match=r"line 1: the reverse direction has 2×2 words"):
        score_alignment(forward, reverse=reverse, sym="union")


def test_score_alignment_merges_pieces_into_words():
    pieces = Alignment(
        source="ab c",
        translation="x",
        src_tokens=["▁a", "b", "▁c", "</s>"],
        tgt_tokens=["▁x", "</s>"],
        weights=np.array([[0.3, 0.3, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0]], np.float32),
        scores=np.zeros((2, 4)),
        token_logprobs=np.zeros(2),
        score=0.0,
    )
    result = score_alignment(pieces, gold=gold({(0, 0)}))
    assert result.words.src_tokens == ["ab", "c", "</s>"]
    assert result.links == [(0, 0)]  # "ab" gets 0.6 at word level, "c" 0.4
    assert result.counts.aer == 0.0


def test_corpus_scorer_streams_totals_and_keeps_the_worst():
    scorer = CorpusScorer(worst=2, sort="aer")
    weights = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]]
    golds = [gold({(0, 0), (1, 1)}), gold({(1, 0), (0, 1)}), gold({(0, 0)}, {(1, 1)})]
    results = []
    for index, g in enumerate(golds):
        alignment = word_alignment(["a", "b"], ["x", "y"], weights)
        result = score_alignment(alignment, index=index, gold=g)
        results.append(result)
        scorer.add(result)
    # links 00 11 each time: AER 0, 1, 0 -> corpus: hits (2+2)+(0+0)+(1+2)=7 of 4+4+3=11
    summary = scorer.summary()
    assert summary["sentences"] == 3
    assert summary["aer"] == pytest.approx(1 - 7 / 11, abs=1e-12)
    assert summary["precision"] == pytest.approx(4 / 6, abs=1e-12)
    assert summary["recall"] == pytest.approx(3 / 5, abs=1e-12)
    assert summary["cdp"] == pytest.approx(results[0].diagnostics.cdp, abs=1e-12)
    assert [r.index for r in scorer.worst()] == [1, 0]  # AER 1, then the earlier of the 0s
    by_entropy = CorpusScorer(worst=1, sort="recall")
    for result in results:
        by_entropy.add(result)
    assert [r.index for r in by_entropy.worst()] == [1]
    with pytest.raises(UsageError, match="unknown sort key 'bleu'"):
        CorpusScorer(sort="bleu")


# -- reading records and streaming --------------------------------------------------------------


def test_gold_possible_always_contains_sure():
    assert Gold(frozenset({(0, 0)}), frozenset({(1, 1)})).possible == {(0, 0), (1, 1)}


def write_jsonl(path, records):
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")


def test_read_records_from_an_export_folder(tmp_path):
    from attnviz.eval import read_records

    first = word_alignment(["a", "b"], ["x"], [[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    second = word_alignment(["c"], ["y", "z"], [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    other = dict(second.to_dict(), rank=1)  # an n-best alternative: skipped
    write_jsonl(
        tmp_path / "alignments.jsonl",
        [
            dict(first.to_dict(), id=0),
            {"id": 1, "source": "", "error": "line 2: not UTF-8"},
            dict(second.to_dict(), id=2),
            other,
        ],
    )
    records = list(read_records(tmp_path))
    assert [index for index, _ in records] == [0, 1, 2]
    assert records[0][1].src_tokens == first.src_tokens
    np.testing.assert_array_equal(records[0][1].weights, first.weights)
    assert records[1][1] is None
    assert not records[2][1].scores.any()  # raw scores are not read


def test_read_records_errors(tmp_path):
    from attnviz.eval import read_records

    with pytest.raises(InputError, match=r"no alignments\.jsonl in this folder"):
        list(read_records(tmp_path))
    with pytest.raises(InputError, match="no such file or folder"):
        list(read_records(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(
        InputError, match=r"bad\.jsonl:1: bad alignment record: alignment record lacks"
    ):
        list(read_records(bad))
    bad.write_text("\n{nope\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not a JSON alignment record"):
        list(read_records(bad))


def test_scores_are_cut_only_when_they_are_plain_numbers():
    import json

    from attnviz.eval import _without_scores

    record = word_alignment(["a"], ["x"], [[0.25, 0.75], [0.0, 1.0]]).to_json()
    cut = json.loads(_without_scores(record))
    full = json.loads(record)
    full.pop("scores")
    assert cut == full
    # a "scores" value with strings or objects in it is left for the decoder
    for line in (
        '{"scores": [1, "x"], "source": "s"}',
        '{"scores": [{}, 2], "source": "s"}',
        '{"source": "a, \\"scores\\": [1], \\"b", "scores": [[1]]}',
    ):
        assert json.loads(_without_scores(line))["source"] == json.loads(line)["source"]


def test_evaluate_streams_in_order_with_gold_and_failed_lines():
    from attnviz.eval import evaluate

    diagonal = word_alignment(["a", "b"], ["x", "y"], [[0.9, 0.1, 0], [0.1, 0.9, 0], [0, 0, 1]])
    hypotheses = [(0, diagonal), (1, None), (2, diagonal)] * 200  # more than one chunk
    golds = [gold({(0, 0), (1, 1)}), Gold(), gold({(0, 1)})] * 200
    scorer = CorpusScorer(worst=3, sort="aer")
    results = list(evaluate(hypotheses, scorer, gold=golds))
    assert len(results) == 600 and results[1] is None
    assert [r.index for r in results if r is not None][:4] == [0, 2, 0, 2]
    summary = scorer.summary()
    assert (summary["sentences"], summary["failed"]) == (400, 200)
    # per pair: {00, 11} vs S {00, 11} -> 4 hits of 4; vs S {01} -> 0 of 3
    assert summary["aer"] == pytest.approx(1 - 4 / 7, abs=1e-12)
    assert [r.counts.aer for r in scorer.worst()] == [1.0, 1.0, 1.0]


def test_evaluate_count_mismatches_are_errors():
    from attnviz.eval import evaluate

    one = word_alignment(["a"], ["x"], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(InputError, match="the gold alignments end before hypothesis 2"):
        list(evaluate([(0, one), (1, one)], CorpusScorer(), gold=[Gold()]))
    with pytest.raises(InputError, match="more sentences than the 1 hypotheses"):
        list(evaluate([(0, one)], CorpusScorer(), gold=[Gold(), gold({(0, 0)})]))
    # trailing blank gold lines are tolerated
    assert len(list(evaluate([(0, one)], CorpusScorer(), gold=[Gold(), Gold()]))) == 1
    with pytest.raises(InputError, match="the reverse direction ends before hypothesis 1"):
        list(evaluate([(0, one)], CorpusScorer(), reverse=[], sym="union"))


def test_row_scorers_share_one_pass_over_the_inputs():
    from attnviz.eval import RowScorer, zip_inputs

    forward = word_alignment(
        ["a", "b"], ["x", "y"], [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.0, 0.0, 1.0]]
    )  # links 00 01
    reverse = word_alignment(
        ["x", "y"], ["a", "b"], [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]]
    )  # links 00 11 (x->a, y->b), i.e. 00 11 forward
    rows = [
        RowScorer("forward"),
        RowScorer("reverse", use="reverse"),
        RowScorer("union", use="both", sym="union"),
    ]
    items = zip_inputs([(0, forward)], gold=[gold({(0, 0), (1, 1)})], reverse=[(0, reverse)])
    for item in items:
        for row in rows:
            assert row.feed(item) == []  # nothing until a chunk is full
    results = [row.finish()[0] for row in rows]
    assert [r.links for r in results] == [
        [(0, 0), (0, 1)],
        [(0, 0), (1, 1)],
        [(0, 0), (0, 1), (1, 1)],
    ]
    assert [row.scorer.summary()["aer"] for row in rows] == pytest.approx([0.5, 0.0, 0.2])
    with pytest.raises(UsageError, match="needs both directions"):
        RowScorer(use="forward", sym="union")


def test_read_gold_reads_the_file_once_blank_lines_first(tmp_path):
    import os
    import threading

    path = tmp_path / "g.txt"
    path.write_text("\n\n0-0 1p1\n", encoding="utf-8")
    assert list(read_gold(path)) == [Gold(), Gold(), gold({(0, 0)}, {(1, 1)})]
    fifo = tmp_path / "gold.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("\n1 1 1\n1 2 2 P\n", "utf-8"))
    writer.start()
    try:
        assert list(read_gold(fifo)) == [gold({(0, 0)}, {(1, 1)})]  # NAACL, through a pipe
    finally:
        writer.join()


@pytest.mark.parametrize(
    "text",
    [
        '{"id": 3, "weights": [[0.5, 0.25]], "src_tokens": ["\\u00e9", "</s>"]}',
        '{"weights": [[NaN, Infinity]]}',  # what Python's json writes for non-finite floats
        '{"token": "\\udc80"}',  # a lone surrogate escape
    ],
)
def test_records_decode_as_the_standard_library_decodes_them(text):
    import json
    import math

    from attnviz.eval import _loads

    fast, plain = _loads(text), json.loads(text)
    assert json.dumps(fast, sort_keys=True) == json.dumps(plain, sort_keys=True)
    if "NaN" in text:
        assert math.isnan(fast["weights"][0][0]) and fast["weights"][0][1] == math.inf


@pytest.mark.parametrize("text", ["{", '{"a": 1} x', "[" * 5000 + "]" * 5000])
def test_records_that_are_not_json_fail_as_before(text):
    from attnviz.eval import _loads

    with pytest.raises((ValueError, RecursionError)):
        _loads(text)
