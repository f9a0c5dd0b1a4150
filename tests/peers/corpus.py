"""A deterministic toy parallel corpus for training tiny models in other toolkits.

Source sentences are 3 to 9 words drawn from a small lexicon of two- and three-syllable
words. The "translation" maps every word through a fixed dictionary (syllables reversed,
vowels shifted) and reverses the word order, so the attention of a trained model runs along
the anti-diagonal. One source word ("nemo") becomes two target words, so some target words
share a source word. Words share syllables, so a BPE or SentencePiece model learns
pieces that are smaller than words. Some dev and test sentences hold a word never seen in
training (OOV), made of known syllables: a word vocabulary maps it to ``<unk>``, a subword
model splits it into known pieces.

    python tests/peers/corpus.py OUT_DIR     # writes train/dev/test .src/.trg files
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: corpus.py OUT_DIR")
    write(Path(sys.argv[1]))
