"""Tokenizers behind one small interface, one class per kind, rebuilt from plain specs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from attnviz.errors import TokenizerError


class Tokenizer(ABC):
    """What the translator needs of a tokenizer: ids, pieces, detokenization, word rule.

    Each kind is one subclass registered with :func:`register`; a checkpoint stores a
    tokenizer as a plain ``spec`` dict (``{"kind": ..., ...}``) and :func:`tokenizer_from_spec`
    rebuilds it, so the translator never knows which kind it holds.
    """

    #: Name stored in specs.
    kind: ClassVar[str] = ""
    #: How pieces group into words: ``"sentencepiece"`` (a piece starting with ▁ opens a word).
    word_rule: ClassVar[str] = "sentencepiece"

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    @abstractmethod
    def id_to_piece(self, index: int) -> str: ...

    @abstractmethod
    def piece_to_id(self, piece: str) -> int: ...

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """Plain data (str, int, bytes, lists, dicts) that :meth:`from_spec` reads back."""

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: dict[str, Any]) -> Tokenizer: ...


TOKENIZER_KINDS: dict[str, type[Tokenizer]] = {}


def register(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make a tokenizer kind loadable from specs."""
    TOKENIZER_KINDS[cls.kind] = cls
    return cls


def tokenizer_from_spec(spec: Any) -> Tokenizer:
    """Rebuild a tokenizer from its spec; every problem is a TokenizerError."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise TokenizerError("a tokenizer spec must be a dict with a 'kind'")
    kind = spec["kind"]
    if kind not in TOKENIZER_KINDS:
        valid = ", ".join(sorted(TOKENIZER_KINDS))
        raise TokenizerError(f"unknown tokenizer kind {kind[:40]!r}; known: {valid}")
    return TOKENIZER_KINDS[kind].from_spec(spec)


@register
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model, stored as its serialized bytes."""

    kind = "sentencepiece"

    def __init__(self, model_bytes: bytes) -> None:
        import sentencepiece as spm

        if not isinstance(model_bytes, bytes | bytearray) or not model_bytes:
            raise TokenizerError("the SentencePiece model is empty or not bytes")
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(bytes(model_bytes))
        except Exception as err:  # sentencepiece raises RuntimeError/OSError variants
            raise TokenizerError(f"cannot read the SentencePiece model: {err}") from err
        self._bytes = bytes(model_bytes)
        self._sp: Any = processor

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def id_to_piece(self, index: int) -> str:
        return str(self._sp.id_to_piece(int(index)))

    def piece_to_id(self, piece: str) -> int:
        return int(self._sp.piece_to_id(piece))

    def decode(self, ids: list[int]) -> str:
        return str(self._sp.decode([int(i) for i in ids]))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self._bytes}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SentencePieceTokenizer:
        return cls(spec.get("model", b""))


def sentencepiece_spec(model_bytes: bytes) -> dict[str, Any]:
    """The spec of a SentencePiece model given as bytes (as :func:`train_sentencepiece` makes)."""
    return {"kind": SentencePieceTokenizer.kind, "model": bytes(model_bytes)}


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


@register
class VocabularyTokenizer(Tokenizer):
    """A vocabulary list: text split on whitespace, each word looked up; unknown -> ``unk``.

    Every token is a word (word rule ``whitespace``). ``tokens[i]`` is the token of id ``i``;
    a token listed twice keeps its first id.
    """

    kind = "vocabulary"
    word_rule = "whitespace"

    def __init__(self, tokens: list[str], unk: str = "<unk>") -> None:
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TokenizerError("a vocabulary must be a list of strings")
        if not isinstance(unk, str) or unk not in tokens:
            raise TokenizerError(f"the vocabulary has no unknown-word token {unk[:40]!r}")
        self._tokens = list(tokens)
        self._unk = unk
        self._ids: dict[str, int] = {}
        for index, token in enumerate(tokens):
            self._ids.setdefault(token, index)
        self._unk_id = self._ids[unk]

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def split(self, text: str) -> list[str]:
        return text.split()

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(token, self._unk_id) for token in self.split(text)]

    def id_to_piece(self, index: int) -> str:
        return self._tokens[int(index)]

    def piece_to_id(self, piece: str) -> int:
        return self._ids.get(piece, self._unk_id)

    def decode(self, ids: list[int]) -> str:
        return " ".join(self._tokens[int(i)] for i in ids)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "tokens": list(self._tokens), "unk": self._unk}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> VocabularyTokenizer:
        return cls(spec.get("tokens"), spec.get("unk", "<unk>"))  # type: ignore[arg-type]


@register
class SentencePieceVocabularyTokenizer(VocabularyTokenizer):
    """SentencePiece segmentation with ids from a separate vocabulary list.

    The toolkit trained on SentencePiece pieces but numbered them with its own vocabulary:
    pieces come from the SentencePiece model, ids from ``tokens`` (a piece not listed ->
    ``unk``), and decoding joins pieces as SentencePiece does.
    """

    kind = "sentencepiece_vocabulary"
    word_rule = "sentencepiece"

    def __init__(self, model_bytes: bytes, tokens: list[str], unk: str = "<unk>") -> None:
        super().__init__(tokens, unk)
        self._sp: Any = SentencePieceTokenizer(model_bytes)._sp
        self._bytes = bytes(model_bytes)

    def split(self, text: str) -> list[str]:
        return list(self._sp.encode(text, out_type=str))

    def decode(self, ids: list[int]) -> str:
        pieces = [self._tokens[int(i)] for i in ids]
        return str(self._sp.decode_pieces(pieces))

    def to_spec(self) -> dict[str, Any]:
        return {**super().to_spec(), "model": self._bytes}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SentencePieceVocabularyTokenizer:
        return cls(spec.get("model", b""), spec.get("tokens"), spec.get("unk", "<unk>"))  # type: ignore[arg-type]
