"""The synthetic English→Korean corpus: grammar invariants, gold alignments and the CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "sample_models" / "recipe" / "enko_corpus.py"


def _load():
    spec = importlib.util.spec_from_file_location("enko_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


ec = _load()


@pytest.fixture(scope="module")
def sample():
    return ec.generate(2024, 2000)


@pytest.fixture(scope="module")
def large_sample():
    return ec.generate(7, 20000)


# -- postpositions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("noun", "pair", "expected"),
    [
        ("사과", "을/를", "사과를"),
        ("책", "을/를", "책을"),
        ("소년", "이/가", "소년이"),
        ("소녀", "이/가", "소녀가"),
        ("선생님", "은/는", "선생님은"),
        ("아이", "은/는", "아이는"),
        ("친구", "과/와", "친구와"),
        ("소년", "과/와", "소년과"),
        ("연필", "으로/로", "연필로"),  # ㄹ-final takes 로
        ("칼", "으로/로", "칼로"),
        ("교실", "으로/로", "교실로"),
        ("지하철", "으로/로", "지하철로"),
        ("집", "으로/로", "집으로"),
        ("숟가락", "으로/로", "숟가락으로"),
        ("버스", "으로/로", "버스로"),
        ("물", "을/를", "물을"),  # ㄹ is an ordinary final consonant for other particles
        ("사과", "를/을", "사과를"),  # either order of the pair name is accepted
        ("친구", "와/과", "친구와"),
    ],
)
def test_josa_batchim_rule(noun, pair, expected):
    assert ec.josa(noun, pair) == expected


def test_josa_rejects_unknown_pair_and_non_hangul():
    with pytest.raises(ValueError, match="unknown particle pair"):
        ec.josa("사과", "에/에서")
    with pytest.raises(ValueError, match="Hangul"):
        ec.josa("apple", "을/를")


def test_every_noun_particle_in_output_follows_batchim(sample):
    nouns = ec.korean_nouns()
    checked: Counter[str] = Counter()
    rieul_ro = 0
    for pair in sample:
        en_words = pair.english.split(" ")
        sure = {j: i for i, j in pair.sure}
        for j, word in enumerate(pair.korean.split(" ")):
            for noun, _form, name in ec.particle_splits(word):
                assert ec.josa(noun, name) == word, (word, pair.korean)
                # the word's sure link is the English noun it translates
                assert en_words[sure[j]] == nouns[noun], (word, pair.english)
                checked[name] += 1
                if name == "으로/로" and ec.final_consonant(noun) == 8:
                    rieul_ro += 1
    assert set(checked) == set(ec.PARTICLE_PAIRS)
    assert min(checked.values()) >= 20
    assert rieul_ro > 0  # some 연필로 / 칼로 / 교실로 was checked


# -- determinism ----------------------------------------------------------------------------


def test_same_seed_same_output_and_different_seeds_differ():
    assert ec.generate(3, 300) == ec.generate(3, 300)
    assert ec.generate(3, 300) != ec.generate(4, 300)
    assert ec.generate(3, 50) == ec.generate(3, 300)[:50]


def test_identical_english_never_gets_two_translations(large_sample, sample):
    seen: dict[str, str] = {}
    for pair in [*large_sample, *sample]:
        assert seen.setdefault(pair.english, pair.korean) == pair.korean, pair.english
    assert len(seen) < len(large_sample) + len(sample)  # some short sentences do repeat


# -- shape of the sentences -----------------------------------------------------------------


def test_tokens_case_and_punctuation(sample):
    for pair in sample:
        for side in (pair.english, pair.korean):
            assert side == side.strip() and "  " not in side and "\t" not in side
        assert pair.english == pair.english.lower()
        end = pair.english[-1]
        assert end in ".?" and pair.english.endswith(" " + end) and pair.korean.endswith(" " + end)
        assert "?" not in pair.english[:-1] and "." not in pair.english[:-1]


def test_length_range_and_mix(large_sample):
    lengths = [len(p.english.split(" ")) for p in large_sample]
    assert min(lengths) == 3
    assert 20 <= max(lengths) <= 26  # at most 25 words plus the final punctuation
    assert 8.5 <= sum(lengths) / len(lengths) <= 11.5
    joined = sum(
        any(w in p.english.split(" ") for w in ("and", "because", "who")) for p in large_sample
    )
    assert 0.1 < joined / len(large_sample) < 0.4


def test_vocabulary_size_and_coverage(large_sample):
    vocab = ec.english_vocabulary()
    assert 300 <= len(vocab) <= 450
    assert "." not in vocab and "?" not in vocab
    seen = {w for p in large_sample for w in p.english.split(" ")} - {".", "?"}
    assert seen <= vocab
    assert len(seen) >= 0.95 * len(vocab)


def test_constructions_present(sample):
    english = [p.english for p in sample]
    korean = " ".join(p.korean for p in sample)
    questions = [p.korean for p in sample if p.korean.endswith(" ?")]
    for needle in ("because", "who", "not", "yesterday", "tomorrow", "with", "by"):
        assert any(needle in e.split(" ") for e in english), needle
    assert any(e.endswith("?") for e in english)
    for word in ("때문에", "함께", "않았다", "않는다", "않겠다"):
        assert word in korean, word
    assert questions and all(k.endswith("니 ?") for k in questions)


# -- gold alignments ------------------------------------------------------------------------


def test_alignment_invariants(sample):
    for pair in sample:
        n_en, n_ko = len(pair.english.split(" ")), len(pair.korean.split(" "))
        sure, possible = set(pair.sure), set(pair.possible)
        assert sure <= possible
        assert len(sure) == len(pair.sure) and len(possible) == len(pair.possible)
        for i, j in possible:
            assert 0 <= i < n_en and 0 <= j < n_ko
        sure_per_ko = Counter(j for _, j in sure)
        assert all(sure_per_ko[j] == 1 for j in range(n_ko)), pair
        assert {j for _, j in possible} == set(range(n_ko))
        assert list(pair.sure) == sorted(pair.sure, key=lambda ij: (ij[1], ij[0]))


def test_sure_links_point_at_content_words(sample):
    for pair in sample:
        en, ko = pair.english.split(" "), pair.korean.split(" ")
        for i, j in pair.sure:
            if ko[j] in (".", "?"):
                assert en[i] == ko[j]
            elif ko[j].startswith("않"):
                assert en[i] == "not"
            elif ko[j] == "때문에":
                assert en[i] == "because"
            elif ko[j] == "함께":
                assert en[i] == "with"
            assert en[i] not in ("the", "a", "an", "did", "does", "do", "will", "and", "to"), pair
        for i, _j in set(pair.possible) - set(pair.sure):
            assert en[i] not in (".", "?")


def test_pharaoh_line_format(sample):
    pair = sample[0]
    links = pair.pharaoh().split(" ")
    sure = {tuple(map(int, t.split("-"))) for t in links if "-" in t}
    possible = {tuple(map(int, t.replace("-", "?").split("?"))) for t in links}
    assert sure == set(pair.sure) and possible == set(pair.possible)
    order = [tuple(map(int, t.replace("-", "?").split("?"))) for t in links]
    assert order == sorted(order, key=lambda ij: (ij[1], ij[0]))


# -- command line ---------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess:
    # a fixed hash seed that differs from this process's: output must not depend on it
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_cli_writes_pairs_and_alignments(tmp_path):
    out, align = tmp_path / "pairs.tsv", tmp_path / "gold.pharaoh"
    result = _run("--seed", "5", "--n", "200", "--out", str(out), "--align", str(align))
    assert result.returncode == 0, result.stderr
    tsv = out.read_text(encoding="utf-8").split("\n")
    gold = align.read_text(encoding="utf-8").split("\n")
    assert tsv[-1] == "" and gold[-1] == ""  # every line ends with \n
    tsv, gold = tsv[:-1], gold[:-1]
    assert len(tsv) == len(gold) == 200
    expected = ec.generate(5, 200)
    assert tsv == [f"{p.english}\t{p.korean}" for p in expected]
    assert gold == [p.pharaoh() for p in expected]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_cli_exclude_and_stats(tmp_path):
    first, first_align = tmp_path / "a.tsv", tmp_path / "a.pharaoh"
    done = _run("--seed", "9", "--n", "300", "--out", str(first), "--align", str(first_align))
    assert done.returncode == 0, done.stderr
    held_out = first.read_text(encoding="utf-8").splitlines()[:150]
    exclude = tmp_path / "test.tsv"
    exclude.write_text("\n".join(held_out) + "\n", encoding="utf-8")
    out, align = tmp_path / "b.tsv", tmp_path / "b.pharaoh"
    result = _run(
        "--seed", "9", "--n", "300", "--out", str(out), "--align", str(align),
        "--exclude", str(exclude), "--stats",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300 == len(align.read_text(encoding="utf-8").splitlines())
    banned = {line.split("\t")[0] for line in held_out}
    assert not banned & {line.split("\t")[0] for line in lines}
    assert "english_vocab" in result.stderr and "english_len_mean" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--n", "abc", "--out", "x.tsv", "--align", "x.al"],
        ["--n", "-1", "--out", "x.tsv", "--align", "x.al"],
        ["--n", "5", "--align", "x.al"],
        ["--n", "5", "--out", "x.tsv", "--align", "x.al", "--bogus"],
        ["--n", "5", "--out", "x.tsv", "--align", "x.al", "--exclude", "missing.tsv"],
        ["--n", "5", "--out", "x.tsv", "--align", "x.tsv"],
    ],
)
def test_cli_bad_arguments(tmp_path, args):
    args = [str(tmp_path / a) if a.endswith((".tsv", ".al")) else a for a in args]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error" in result.stderr
    assert not (tmp_path / "x.tsv").exists()
