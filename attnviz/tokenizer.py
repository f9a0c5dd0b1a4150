"""Thin SentencePiece wrapper built from a model's serialized bytes."""

from __future__ import annotations

from typing import Any

from attnviz.alignment import word_groups
from attnviz.errors import TokenizerError


class Tokenizer:
    """Pieces, ids, detokenization and the piece -> word map of one SentencePiece model."""

    def __init__(self, model_bytes: bytes) -> None:
        import sentencepiece as spm

        if not model_bytes:
            raise TokenizerError("the SentencePiece model is empty")
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(bytes(model_bytes))
        except Exception as err:  # sentencepiece raises RuntimeError/OSError variants
            raise TokenizerError(f"cannot read the SentencePiece model: {err}") from err
        self._sp: Any = processor

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def pieces(self, text: str) -> list[str]:
        return list(self._sp.encode(text, out_type=str))

    def id_to_piece(self, index: int) -> str:
        return str(self._sp.id_to_piece(int(index)))

    def piece_to_id(self, piece: str) -> int:
        return int(self._sp.piece_to_id(piece))

    def decode(self, ids: list[int]) -> str:
        return str(self._sp.decode([int(i) for i in ids]))

    @staticmethod
    def word_map(pieces: list[str]) -> list[int]:
        """Word index of each piece (a piece starting with ▁ starts a word)."""
        index = [0] * len(pieces)
        for word, group in enumerate(word_groups(pieces)):
            for position in group:
                index[position] = word
        return index


def train_sentencepiece(
    lines: list[str], vocab_size: int, *, model_type: str = "unigram", seed: int = 0
) -> bytes:
    """Train a SentencePiece model in memory; ids: pad 0, unk 1, bos 2, eos 3.

    Raises TokenizerError when the text is too small for the vocabulary size.
    """
    import io

    import sentencepiece as spm

    text = [line for line in lines if line.strip()]
    if not text:
        raise TokenizerError("no text to train a tokenizer on")
    stream = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text),
            model_writer=stream,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=1.0,
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            hard_vocab_limit=True,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        message = str(err).splitlines()[0] if str(err) else "training failed"
        if "smaller than required_chars" in message:
            import re

            need = re.search(r"(\d+) vs (\d+)", message)
            count = f" ({need.group(2)} needed)" if need else ""
            raise TokenizerError(
                f"a vocabulary of {vocab_size} cannot hold every character of the text"
                f"{count}; raise --vocab-size"
            ) from err
        if "Vocabulary size" in message or "vocab_size" in message:
            import re

            limit = re.search(r"<= (\d+)", message)
            hint = f"; use --vocab-size {limit.group(1)} or less" if limit else ""
            raise TokenizerError(
                f"the corpus is too small for a vocabulary of {vocab_size}{hint}"
            ) from err
        raise TokenizerError(f"tokenizer training failed: {message}") from err
    return stream.getvalue()
