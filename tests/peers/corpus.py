"""A deterministic toy translation task for training tiny models in other toolkits.

The source is an English-like language (subject, verb, object, an optional place); the target is
a made-up language with subject-object-verb order, adjectives after nouns, no articles and
case particles, so attention has to reorder and some source words align to nothing.

    python tests/peers/corpus.py OUT_DIR      # train/valid/test .src and .tgt files

The same seed always gives the same files (``random.Random``, no other state).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

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


def sentence_pair(rng: random.Random, rare: bool = False) -> tuple[str, str]:
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


def corpus(size: int, seed: int, rare_every: int = 0) -> list[tuple[str, str]]:
    """``size`` pairs; with ``rare_every`` n, every n-th pair holds a word unseen in training."""
    rng = random.Random(seed)
    return [
        sentence_pair(rng, rare=rare_every > 0 and i % rare_every == rare_every - 1)
        for i in range(size)
    ]


SPLITS = {"train": (6000, 1, 0), "valid": (200, 2, 0), "test": (250, 3, 12)}


def write(out_dir: Path) -> dict[str, Path]:
    """Write ``<split>.src`` and ``<split>.tgt`` for every split; returns their stem paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = {}
    for split, (size, seed, rare_every) in SPLITS.items():
        pairs = corpus(size, seed, rare_every)
        stem = out_dir / split
        stem.with_suffix(".src").write_text("".join(s + "\n" for s, _ in pairs), "utf-8")
        stem.with_suffix(".tgt").write_text("".join(t + "\n" for _, t in pairs), "utf-8")
        stems[split] = stem
    return stems


if __name__ == "__main__":
    write(Path(sys.argv[1]))
