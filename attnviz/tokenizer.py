"""Tokenizers behind one small interface, one class per kind, rebuilt from plain specs."""

from __future__ import annotations

import io
import re
import unicodedata
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from attnviz.errors import TokenizerError

WORD_START = "\u2581"  # SentencePiece's word-start mark


class Tokenizer(ABC):
    """What the translator needs of a tokenizer: ids, pieces, detokenization, word rule.

    Each kind is one subclass registered with :func:`register`; a checkpoint stores a
    tokenizer as a plain ``spec`` dict (``{"kind": ..., ...}``) and :func:`tokenizer_from_spec`
    rebuilds it, so the translator never knows which kind it holds.
    """

    #: Name stored in specs.
    kind: ClassVar[str] = ""
    #: How pieces group into words (attnviz.alignment.WORD_RULES): ``"sentencepiece"`` (a
    #: piece starting with ▁ opens a word), ``"bpe"`` (a piece ending in @@ joins the next),
    #: ``"whitespace"`` (every piece is a word).
    word_rule: ClassVar[str] = "sentencepiece"

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    def pieces(self, text: str) -> list[str]:
        """How each id of :meth:`encode` is shown (an unknown piece as ``<unk>``)."""
        return [self.id_to_piece(i) for i in self.encode(text)]

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


# -- vocabulary-list kinds (models imported from other toolkits) -----------------------------

_SPACES = re.compile("[ \u3000]+")
_SPACE_BEFORE = re.compile(r" ([?!,.:])")


def _normalize(text: str) -> str:
    """NFKC, straight quotes, one space between words and none before ?!,.: (JoeyNMT's rule)."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return _tidy(text)


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text.replace("\u200b", ""))
    return _SPACE_BEFORE.sub(r"\1", text).strip()


@register
class VocabularyTokenizer(Tokenizer):
    """Words split on whitespace and looked up in a vocabulary list (id = position).

    A word that is not in the list becomes the unknown id (shown as ``<unk>``). ``specials``
    are ids left out of detokenized text (padding, sentence start and end). ``lowercase``
    and ``normalize`` (see :func:`_normalize`) are applied to the text before splitting.
    """

    kind = "vocabulary"
    word_rule = "whitespace"

    def __init__(
        self,
        tokens: list[str],
        *,
        unk_id: int,
        specials: list[int] | tuple[int, ...] = (),
        lowercase: bool = False,
        normalize: bool = False,
    ) -> None:
        if not isinstance(tokens, list | tuple) or not all(isinstance(t, str) for t in tokens):
            raise TokenizerError(f"{self.kind} tokenizer: tokens must be a list of strings")
        if not tokens:
            raise TokenizerError(f"{self.kind} tokenizer: the vocabulary is empty")
        for name, value in (("unk_id", unk_id), *((f"special id {i}", i) for i in specials)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value < len(tokens)
            ):
                raise TokenizerError(
                    f"{self.kind} tokenizer: {name} must be an id below {len(tokens)}, "
                    f"not {value!r}"
                )
        if not isinstance(lowercase, bool) or not isinstance(normalize, bool):
            raise TokenizerError(f"{self.kind} tokenizer: lowercase and normalize must be booleans")
        self.tokens = list(tokens)
        self.unk_id = unk_id
        self.specials = frozenset(specials)
        self.lowercase = lowercase
        self.normalize = normalize
        self._ids: dict[str, int] = {}
        for index, token in enumerate(self.tokens):
            self._ids.setdefault(token, index)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def _prepare(self, text: str) -> str:
        if self.normalize:
            text = _normalize(text)
        return text.lower() if self.lowercase else text

    def split(self, text: str) -> list[str]:
        """Pieces of prepared text."""
        return text.split()

    def join(self, pieces: list[str]) -> str:
        """Text of pieces (special tokens already left out)."""
        return " ".join(pieces)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(piece, self.unk_id) for piece in self.split(self._prepare(text))]

    def pieces(self, text: str) -> list[str]:
        unknown = self.tokens[self.unk_id]
        return [
            piece if piece in self._ids else self.show_unknown(piece, unknown)
            for piece in self.split(self._prepare(text))
        ]

    def show_unknown(self, piece: str, unknown: str) -> str:
        """How a piece outside the vocabulary is shown: the unknown token."""
        return unknown

    def decode(self, ids: list[int]) -> str:
        pieces = [self.id_to_piece(i) for i in ids if int(i) not in self.specials]
        text = self.join(pieces)
        return _tidy(text) if self.normalize else text

    def id_to_piece(self, index: int) -> str:
        if not 0 <= int(index) < len(self.tokens):
            raise TokenizerError(f"id {index} is outside the vocabulary of {len(self.tokens)}")
        return self.tokens[int(index)]

    def piece_to_id(self, piece: str) -> int:
        return self._ids.get(piece, self.unk_id)

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tokens": list(self.tokens),
            "unk_id": self.unk_id,
            "specials": sorted(self.specials),
            "lowercase": self.lowercase,
            "normalize": self.normalize,
        }

    @classmethod
    def _options(cls, spec: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments from a spec; the unknown token is its id or its text (``unk``)."""
        specials = spec.get("specials", [])
        if not isinstance(specials, list | tuple):
            raise TokenizerError(f"{cls.kind} tokenizer: specials must be a list of ids")
        unk_id = spec.get("unk_id")
        tokens = spec.get("tokens")
        if unk_id is None and isinstance(tokens, list) and spec.get("unk", "<unk>") in tokens:
            unk_id = tokens.index(spec.get("unk", "<unk>"))
        return {
            "unk_id": unk_id,
            "specials": tuple(specials),
            "lowercase": spec.get("lowercase", False),
            "normalize": spec.get("normalize", False),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> VocabularyTokenizer:
        return cls(spec.get("tokens"), **cls._options(spec))  # type: ignore[arg-type]


@register
class SubwordNmtTokenizer(VocabularyTokenizer):
    """subword-nmt BPE (``@@`` joiners) over a vocabulary list; needs the subword-nmt package.

    As JoeyNMT applies it, a merge is kept only when its pieces are in the vocabulary.
    """

    kind = "subword_nmt"
    word_rule = "bpe"
    separator = "@@"

    def __init__(self, tokens: list[str], *, codes: str, **options: Any) -> None:
        super().__init__(tokens, **options)
        if not isinstance(codes, str) or not codes.strip():
            raise TokenizerError("subword-nmt tokenizer: the BPE codes are empty")
        try:
            from subword_nmt.apply_bpe import BPE
        except ImportError as err:
            raise TokenizerError(
                "this model's tokenizer needs the subword-nmt package: pip install 'attnviz[bpe]'"
            ) from err
        special_tokens = {self.tokens[i] for i in self.specials | {self.unk_id}}
        vocabulary = set(self.tokens) - special_tokens
        try:
            self._bpe = BPE(io.StringIO(codes), separator=self.separator, vocab=vocabulary)
        except (ValueError, IndexError, SystemExit) as err:
            raise TokenizerError("subword-nmt tokenizer: cannot read the BPE codes") from err
        self.codes = codes

    def split(self, text: str) -> list[str]:
        return self._bpe.process_line(text).split()

    def show_unknown(self, piece: str, unknown: str) -> str:
        """``<unk>@@`` for an unknown piece that continues a word, so words still group."""
        return unknown + self.separator if piece.endswith(self.separator) else unknown

    def join(self, pieces: list[str]) -> str:
        text = " ".join(pieces).replace(self.separator + " ", "")
        return text[: -len(self.separator)] if text.endswith(self.separator) else text

    def to_spec(self) -> dict[str, Any]:
        return {**super().to_spec(), "codes": self.codes}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SubwordNmtTokenizer:
        return cls(spec.get("tokens"), codes=spec.get("codes"), **cls._options(spec))  # type: ignore[arg-type]


@register
class SentencePieceVocabularyTokenizer(VocabularyTokenizer):
    """SentencePiece segmentation, with ids from a separate vocabulary list.

    The SentencePiece model should already be restricted to that list (see
    :func:`restrict_sentencepiece`), as JoeyNMT restricts it before encoding (OpenNMT-py does
    not). ``raw_decode``: text is what SentencePiece makes of the pieces, as OpenNMT-py writes
    it (spaces at the ends kept); otherwise word starts become spaces and the ends are
    stripped, as JoeyNMT does.
    """

    kind = "sentencepiece_vocabulary"
    word_rule = "sentencepiece"

    def __init__(
        self, tokens: list[str], *, model: bytes, raw_decode: bool = False, **options: Any
    ) -> None:
        super().__init__(tokens, **options)
        if not isinstance(raw_decode, bool):
            raise TokenizerError(f"{self.kind} tokenizer: raw_decode must be a boolean")
        self._spm = SentencePieceTokenizer(model)
        self.raw_decode = raw_decode

    def split(self, text: str) -> list[str]:
        return list(self._spm._sp.encode(text, out_type=str))

    def show_unknown(self, piece: str, unknown: str) -> str:
        """``▁<unk>`` for an unknown piece that starts a word, so words still group."""
        return WORD_START + unknown if piece.startswith(WORD_START) else unknown

    def join(self, pieces: list[str]) -> str:
        text = str(self._spm._sp.decode(pieces))
        return text if self.raw_decode else text.replace(WORD_START, " ").strip()

    def to_spec(self) -> dict[str, Any]:
        spec = {**super().to_spec(), "model": self._spm.to_spec()["model"]}
        if self.raw_decode:
            spec["raw_decode"] = True
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SentencePieceVocabularyTokenizer:
        return cls(
            spec.get("tokens"),  # type: ignore[arg-type]
            model=spec.get("model", b""),
            raw_decode=spec.get("raw_decode", False),
            **cls._options(spec),
        )


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise TokenizerError("the SentencePiece model is damaged")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _proto_fields(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """Top-level protobuf fields: (number, wire type, raw field bytes, value bytes)."""
    fields, position = [], 0
    while position < len(data):
        start = position
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, position)
            value = data[position:end]
        elif wire == 1:
            end = position + 8
            value = data[position:end]
        elif wire == 2:
            size, position = _varint(data, position)
            end = position + size
            value = data[position:end]
        elif wire == 5:
            end = position + 4
            value = data[position:end]
        else:
            raise TokenizerError("the SentencePiece model is damaged")
        if end > len(data):
            raise TokenizerError("the SentencePiece model is damaged")
        fields.append((number, wire, data[start:end], value))
        position = end
    return fields


_PIECE_NORMAL, _PIECE_UNUSED = 1, 5
_PIECE_KEEP = {2, 3, 4}  # unknown, control and user-defined pieces keep their type


def restrict_sentencepiece(model: bytes, vocabulary: list[str]) -> bytes:
    """The model with every piece outside ``vocabulary`` marked unused, as JoeyNMT does.

    SentencePiece then never emits those pieces: a BPE merge that makes one is undone.
    Single characters, control, unknown and user-defined pieces are kept. Works on the
    serialized model (protobuf wire format), so no protobuf package is needed.
    """
    allowed = set(vocabulary)
    out = bytearray()
    for number, wire, raw, value in _proto_fields(bytes(model)):
        if number != 1 or wire != 2:  # not a piece: copied unchanged
            out += raw
            continue
        piece, kind, others = "", _PIECE_NORMAL, bytearray()
        for inner_number, inner_wire, inner_raw, inner_value in _proto_fields(value):
            if inner_number == 3 and inner_wire == 0:
                kind = _varint(inner_value, 0)[0]
                continue
            if inner_number == 1 and inner_wire == 2:
                piece = inner_value.decode("utf-8", errors="replace")
            others += inner_raw
        if kind not in _PIECE_KEEP:
            kind = _PIECE_NORMAL if piece in allowed or len(piece) == 1 else _PIECE_UNUSED
        message = bytes(others) + b"\x18" + _encode_varint(kind)
        out += b"\x0a" + _encode_varint(len(message)) + message
    return bytes(out)
