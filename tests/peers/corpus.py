"""Deterministic toy parallel corpora for training tiny models in other toolkits.

Two tasks, each deterministic (``random.Random`` with fixed seeds, no other state):

**Reversal** (the JoeyNMT fixtures; :func:`write`). Source sentences are 3 to 9 words drawn
from a small lexicon of two- and three-syllable words. The "translation" maps every word
through a fixed dictionary (syllables reversed, vowels shifted) and reverses the word order, so
the attention of a trained model runs along the anti-diagonal. One source word ("nemo")
becomes two target words, so some target words share a source word. Words share syllables, so
a BPE or SentencePiece model learns pieces that are smaller than words. Some dev and test
sentences hold a word never seen in training (OOV), made of known syllables: a word vocabulary
maps it to ``<unk>``, a subword model splits it into known pieces.

**Reordering** (the OpenNMT-py fixtures; :func:`write_reordering`). An English-like source
(subject, verb, object, an optional place) and a made-up target with subject-object-verb
order, adjectives after nouns, no articles and case particles, so attention has to reorder and
some source words align to nothing; every twelfth test sentence holds a word never seen in
training.

    python tests/peers/corpus.py OUT_DIR                # reversal: train/dev/test .src/.trg
    python tests/peers/corpus.py --reordering OUT_DIR   # reordering: train/valid/test .src/.tgt
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SYLLABLES = ("ka", "lo", "mi", "tu", "re", "sa", "no", "pi", "ve", "du")
SHIFT = str.maketrans("aeiou", "eioua")
SPLIT_WORD = "nemo"  # the one source word that becomes two target words
OOV_WORDS = ("kamire", "sanopi", "dulo")
OOV_RATE = {"train": 0.0, "dev": 0.1, "test": 0.15}
SIZES = {"train": 3000, "dev": 50, "test": 200}
SEEDS = {"train": 1, "dev": 2, "test": 3}


def lexicon(size: int = 24, seed: int = 0) -> list[str]:
    """``size`` distinct source words of two or three syllables, plus SPLIT_WORD."""
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
        if word not in words and word != SPLIT_WORD:
            words.append(word)
    return [*words, SPLIT_WORD]


def translate_word(word: str) -> list[str]:
    """The target word(s) for one source word."""
    if word == SPLIT_WORD:
        return ["ne", "omo"]
    syllables = [word[i : i + 2] for i in range(0, len(word), 2)]
    return ["".join(reversed(syllables)).translate(SHIFT)]


def translate(sentence: str) -> str:
    """Map every word and reverse the order."""
    words = sentence.split()
    return " ".join(piece for word in reversed(words) for piece in translate_word(word))


def sentences(count: int, seed: int, oov_rate: float = 0.0) -> list[str]:
    """``count`` source sentences of 3 to 9 words (a few words are more frequent).

    With probability ``oov_rate`` one word of a sentence is replaced by an OOV word.
    """
    words = lexicon()
    rng = random.Random(seed)
    weights = [1.0 / (1 + rank % 8) for rank in range(len(words))]
    result = []
    for _ in range(count):
        chosen = rng.choices(words, weights=weights, k=rng.randint(3, 9))
        if rng.random() < oov_rate:
            chosen[rng.randrange(len(chosen))] = rng.choice(OOV_WORDS)
        result.append(" ".join(chosen))
    return result


def pairs(split: str) -> list[tuple[str, str]]:
    """The (source, target) pairs of one split: train, dev or test."""
    return [(s, translate(s)) for s in sentences(SIZES[split], SEEDS[split], OOV_RATE[split])]


def write(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SIZES:
        data = pairs(split)
        (out_dir / f"{split}.src").write_text("".join(s + "\n" for s, _ in data), "utf-8")
        (out_dir / f"{split}.trg").write_text("".join(t + "\n" for _, t in data), "utf-8")


# -- reordering ------------------------------------------------------------------------------

NOUNS = {
    "cat": "neko",
    "dog": "inu",
    "boy": "shonen",
    "girl": "shojo",
    "teacher": "sensei",
    "bird": "tori",
    "apple": "ringo",
    "book": "hon",
    "ball": "tama",
    "letter": "tegami",
    "car": "kuruma",
    "song": "uta",
}
PLACES = {"park": "koen", "house": "ie", "school": "gakko", "river": "kawa"}
ADJECTIVES = {
    "small": "chiisai",
    "big": "ookii",
    "red": "akai",
    "old": "furui",
    "happy": "ureshii",
    "quiet": "shizuka",
}
VERBS = {
    "sees": "miru",
    "likes": "suki",
    "reads": "yomu",
    "finds": "mitsukeru",
    "carries": "hakobu",
    "draws": "kaku",
    "wants": "hoshii",
    "sings": "utau",
}
ARTICLES = ("the", "a")
SUBJECT_PARTICLE = "ga"
OBJECT_PARTICLE = "o"
PLACE_PARTICLE = "de"
PLURAL = "tachi"
# words that never occur in training data: they test unknown-word handling
RARE_SOURCE_WORDS = ("zebra", "violin")
RARE_TARGET_WORDS = {"zebra": "shimauma", "violin": "baiorin"}


def _noun_phrase(rng: random.Random, nouns: dict[str, str], rare: bool) -> tuple[list, list]:
    """(source words, target words) of one noun phrase."""
    if rare:
        word = rng.choice(RARE_SOURCE_WORDS)
        target_noun = RARE_TARGET_WORDS[word]
    else:
        word = rng.choice(sorted(nouns))
        target_noun = nouns[word]
    plural = rng.random() < 0.2
    source = [rng.choice(ARTICLES) if not plural else "two"]
    target = [target_noun]
    if plural:
        target = ["futatsu", target_noun, PLURAL]
    if rng.random() < 0.4:
        adjective = rng.choice(sorted(ADJECTIVES))
        source.append(adjective)
        target.append(ADJECTIVES[adjective])
    source.append(word + ("s" if plural else ""))
    return source, target


def reordering_pair(rng: random.Random, rare: bool = False) -> tuple[str, str]:
    """One (source, target) pair; ``rare`` puts a word never seen in training in the object."""
    subject_src, subject_tgt = _noun_phrase(rng, NOUNS, False)
    object_src, object_tgt = _noun_phrase(rng, NOUNS, rare)
    verb = rng.choice(sorted(VERBS))
    source = [*subject_src, verb, *object_src]
    target = [*subject_tgt, SUBJECT_PARTICLE]
    if rng.random() < 0.35:
        place = rng.choice(sorted(PLACES))
        source += ["in", "the", place]
        target += [PLACES[place], PLACE_PARTICLE]
    target += [*object_tgt, OBJECT_PARTICLE, VERBS[verb]]
    ending = rng.choice((".", ".", ".", "!"))
    return " ".join([*source, ending]), " ".join([*target, ending])


def reordering_corpus(size: int, seed: int, rare_every: int = 0) -> list[tuple[str, str]]:
    """``size`` pairs; with ``rare_every`` n, every n-th pair holds a word unseen in training."""
    rng = random.Random(seed)
    return [
        reordering_pair(rng, rare=rare_every > 0 and i % rare_every == rare_every - 1)
        for i in range(size)
    ]


REORDERING_SPLITS = {"train": (6000, 1, 0), "valid": (200, 2, 0), "test": (250, 3, 12)}


def write_reordering(out_dir: Path) -> dict[str, Path]:
    """Write ``<split>.src`` and ``<split>.tgt`` for every split; returns their stem paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = {}
    for split, (size, seed, rare_every) in REORDERING_SPLITS.items():
        data = reordering_corpus(size, seed, rare_every)
        stem = out_dir / split
        stem.with_suffix(".src").write_text("".join(s + "\n" for s, _ in data), "utf-8")
        stem.with_suffix(".tgt").write_text("".join(t + "\n" for _, t in data), "utf-8")
        stems[split] = stem
    return stems


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if arguments[:1] == ["--reordering"] and len(arguments) == 2:
        write_reordering(Path(arguments[1]))
    elif len(arguments) == 1:
        write(Path(arguments[0]))
    else:
        sys.exit("usage: corpus.py [--reordering] OUT_DIR")
