"""One self-describing checkpoint file: format, version, config, weights, tokenizers, metadata.

Loading never runs pickled code: ``torch.load(..., weights_only=True)`` only rebuilds plain
data (dicts, lists, strings, bytes, numbers, tensors). Nothing in a file is trusted: the zip
archive is inspected before loading (no compressed entries, a bounded pickle), tensor data is
memory-mapped rather than read until the config has been checked against it, the config's
types and ranges are checked before a module is built, weights must be dense, real, floating
and finite, metadata must be plain JSON-like values, and a SHA-256 of the weights written at
save time is checked at load time.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.device import torch_threads
from attnviz.errors import AttnvizError, CheckpointError, TokenizerError, UsageError
from attnviz.families import get_family
from attnviz.tokenizer import sentencepiece_spec

if TYPE_CHECKING:
    import torch

    from attnviz.decoding import SearchRules
    from attnviz.families.base import FamilyConfig, Seq2SeqModel
    from attnviz.tokenizer import Tokenizer

FORMAT_NAME = "attnviz-checkpoint"
#: 1: SentencePiece models as ``src_spm``/``tgt_spm`` bytes. 2: tokenizer specs
#: (``src_tokenizer``/``tgt_tokenizer``, see attnviz.tokenizer). 3: ``search``, the model's
#: search rules (attnviz.decoding.SearchRules; empty: attnviz's own), and config fields for
#: imported models (their defaults are version 2's behaviour). 4: ``family``, the model family
#: that reads ``config`` (attnviz.families; older files hold RNNs). Older files are migrated.
FORMAT_VERSION = 4
#: Largest pickle part (config, tokenizers, metadata) read from a file.
MAX_PICKLE_BYTES = 64 << 20
#: Metadata bounds: nesting depth, number of values, characters of text.
MAX_METADATA_DEPTH = 32
MAX_METADATA_ITEMS = 100_000
MAX_METADATA_TEXT = 4 << 20
#: Tokenizer specs may hold whole vocabularies; bounded all the same.
MAX_SPEC_ITEMS = 4_000_000
#: Tensor data beyond what the config's weights need (at 8 bytes a value) is refused.
STORAGE_SLACK_BYTES = 1 << 20
DIGEST_KEY = "weights_sha256"
REQUIRED_KEYS = (
    "format",
    "format_version",
    "config",
    "state_dict",
    "src_tokenizer",
    "tgt_tokenizer",
    "search",
    "family",
)


@dataclass
class Checkpoint:
    """A model: family, config, weights, both tokenizers (as specs), search rules and metadata.

    ``search`` holds :class:`attnviz.decoding.SearchRules` as a plain dict (empty: attnviz's
    own rules); an imported model carries its toolkit's. ``family`` names the model family
    (see :mod:`attnviz.families`) whose config type ``config`` is.
    """

    config: FamilyConfig
    state_dict: dict[str, Any]
    src_tokenizer: dict[str, Any]
    tgt_tokenizer: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    search: dict[str, Any] = field(default_factory=dict)
    family: str = "rnn"

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "config": self.config.to_dict(),
            "state_dict": self.state_dict,
            "src_tokenizer": self.src_tokenizer,
            "tgt_tokenizer": self.tgt_tokenizer,
            "search": self.search,
            "metadata": self.metadata,
        }

    def rules(self) -> SearchRules:
        """The search rules; a bad stored value is a CheckpointError naming the file."""
        from attnviz.decoding import SearchRules

        try:
            return SearchRules.from_dict(self.search)
        except AttnvizError as err:
            raise CheckpointError(f"{self.path or 'checkpoint'}: bad search rules: {err}") from err

    def tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        """Source and target tokenizers; a bad spec is a CheckpointError naming the file."""
        from attnviz.tokenizer import tokenizer_from_spec

        name = self.path or "checkpoint"
        try:
            source = tokenizer_from_spec(self.src_tokenizer)
            target = tokenizer_from_spec(self.tgt_tokenizer)
        except TokenizerError as err:
            raise CheckpointError(f"{name}: {err}") from err
        for side, tokenizer, size in (
            ("source", source, self.config.src_vocab_size),
            ("target", target, self.config.tgt_vocab_size),
        ):
            if tokenizer.vocab_size != size:
                raise CheckpointError(
                    f"{name}: the {side} tokenizer has {tokenizer.vocab_size} entries but the "
                    f"model's {side} vocabulary has {size} (a wrong or swapped tokenizer)"
                )
        return source, target


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename."""
    import torch

    from attnviz.io import atomic_write

    for name in ("src_tokenizer", "tgt_tokenizer"):
        if not getattr(checkpoint, name):
            raise CheckpointError(f"{name} is empty: a checkpoint needs both tokenizers")
    check_plain(checkpoint.metadata, "metadata")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = checkpoint.to_payload()
    payload["state_dict"] = {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()}
    payload[DIGEST_KEY] = weights_digest(payload["state_dict"])
    return atomic_write(target, lambda stream: torch.save(payload, stream))


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every weight's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _migrate(payload: dict[str, Any], file: Path) -> dict[str, Any]:
    """Bring an older payload to the current layout."""
    if payload["format_version"] == 1:
        payload = dict(payload)
        for side in ("src", "tgt"):
            model = payload.pop(f"{side}_spm", None)
            if not isinstance(model, bytes) or not model:
                raise CheckpointError(
                    f"{file}: {side}_spm must be the SentencePiece model as bytes"
                )
            payload[f"{side}_tokenizer"] = sentencepiece_spec(model)
        payload["format_version"] = 2
    if payload["format_version"] == 2:
        payload = {**payload, "search": {}, "format_version": 3}
    if payload["format_version"] == 3:
        payload = {**payload, "family": "rnn", "format_version": 4}
    return payload


def _unsafe_global(message: str) -> str | None:
    """The disallowed global named in torch's weights-only error, or None if there is none."""
    if "GLOBAL" not in message and "global" not in message:
        return None
    found = re.search(r"GLOBAL ([\w.]+) ", message) or re.search(
        r"[Uu]nsupported global:?\s*(?:GLOBAL\s*)?([\w.]+)", message
    )
    return found.group(1) if found else "an unknown class"


def _refusal_reason(message: str) -> str:
    """What torch's weights-only unpickler objected to, without its advice.

    torch's message suggests loading with ``weights_only=False`` or allow-listing classes:
    both would let the file run code, so only the objection itself is kept.
    """
    found = re.search(r"WeightsUnpickler error:\s*(.*)", message)
    reason = found.group(1) if found else ""
    reason = re.split(r"\.\s|\bPlease\b|weights_only|safe_globals", reason)[0]
    return _plain(reason.strip(" .")) or "unsupported pickle content"


def _plain(text: str, limit: int = 160) -> str:
    """Untrusted text for a one-line message: control characters shown as '?', length capped."""
    shown = "".join(c if c.isprintable() else "?" for c in text.strip())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _check_file(file: Path) -> None:
    from attnviz.io import check_input_file

    info = check_input_file(file, "checkpoint file", pipes=False, error=CheckpointError)
    if info.st_size == 0:
        raise CheckpointError(f"{file}: file is empty")


def _inspect_archive(file: Path) -> int | None:
    """Check a zip checkpoint's entries before torch reads any; bytes of tensor data, or None
    for a file that is not a zip archive (torch's older format, or not a checkpoint at all).

    torch writes every entry uncompressed. A compressed entry would be inflated in memory on
    every load (a small file can hold gigabytes), so it is refused, as is an oversized pickle.
    """
    try:
        with zipfile.ZipFile(file) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return None
    except OSError as err:
        raise CheckpointError(f"{file}: cannot read ({err.strerror or err})") from err
    storage = 0
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"{file}: entry {_plain(entry.filename, 60)} is compressed "
                f"({entry.file_size:,} bytes inflated); checkpoints are read only as torch.save "
                "writes them, uncompressed"
            )
        parts = entry.filename.split("/")
        if parts[-1] == "data.pkl" and entry.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"{file}: its pickle (config, tokenizers, metadata) is {entry.file_size:,} "
                f"bytes; at most {MAX_PICKLE_BYTES:,} are read"
            )
        if len(parts) >= 2 and parts[-2] == "data":
            storage += entry.file_size
    return storage


class RefusedObject(CheckpointError):
    """A file whose pickle holds an object beyond plain data; ``name`` is its class."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def read_payload(file: Path, allowed: tuple[type, ...] = ()) -> tuple[Any, int | None]:
    """The unpickled content of a PyTorch file (weights-only, tensors memory-mapped from zip
    archives) and its bytes of tensor data (None for torch's older, non-zip format).

    ``allowed``: classes let through besides plain data (an importer names exactly what its
    toolkit stores). The file is checked first: a regular, non-empty file whose archive has no
    compressed entries and a bounded pickle.
    """
    _check_file(file)
    storage_bytes = _inspect_archive(file)
    return _read(file, "cpu", mmap=storage_bytes is not None, allowed=allowed), storage_bytes


def _read(path: Path, map_location: Any, mmap: bool = False, allowed: tuple[type, ...] = ()) -> Any:
    import contextlib
    import pickle

    import torch

    try:
        with (
            torch.serialization.safe_globals(list(allowed)) if allowed else contextlib.nullcontext()
        ):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        message = str(err)
        if "Weights only load failed" in message:
            unsafe = _unsafe_global(message)
            if unsafe is not None:
                raise RefusedObject(
                    f"{path}: refused to load: it holds a Python object ({_plain(unsafe, 80)}) "
                    "beyond plain data, which could run code; it is not an attnviz checkpoint",
                    unsafe,
                ) from err
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint of plain data and weights "
                f"({_refusal_reason(message)})"
            ) from err
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(err)})") from err
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as err:
        message = str(err)
        if "central directory" in message or "truncated" in message or isinstance(err, EOFError):
            raise CheckpointError(f"{path}: file is truncated or damaged") from err
        if "failed reading" in message or "PytorchStreamReader" in message:
            raise CheckpointError(f"{path}: file is truncated or damaged") from err
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(err)})") from err
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from err
    except MemoryError as err:
        raise CheckpointError(f"{path}: too large to load into memory") from err
    except RecursionError as err:
        raise CheckpointError(f"{path}: its pickle is nested too deeply") from err
    except Exception as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return _plain(text[0]) if text else type(err).__name__


def _looks_like_state_dict(payload: dict[str, Any]) -> bool:
    import torch

    return bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())


def check_plain(
    value: Any,
    where: str,
    *,
    allow_bytes: bool = False,
    max_items: int = MAX_METADATA_ITEMS,
    max_text: int = MAX_METADATA_TEXT,
) -> None:
    """Refuse anything but JSON-like data (text, numbers, booleans, None, lists, dicts with text
    keys; bytes where allowed), nested at most MAX_METADATA_DEPTH deep and bounded in size.

    Raises CheckpointError naming the offending place, e.g. ``metadata.history[3]``.
    """
    budget = {"items": max_items, "text": max_text}
    on_path: set[int] = set()

    def visit(item: Any, place: str, depth: int) -> None:
        budget["items"] -= 1
        if budget["items"] < 0:
            raise CheckpointError(f"{where} holds more than {max_items:,} values")
        kind = type(item)
        if item is None or kind in (bool, int, float):
            return
        if kind is str or (allow_bytes and kind is bytes):
            if kind is str:
                budget["text"] -= len(item)
                if budget["text"] < 0:
                    raise CheckpointError(
                        f"{where} holds more than {max_text:,} characters of text"
                    )
            return
        if kind not in (dict, list, tuple):
            shown = "a tensor" if kind.__name__ in ("Tensor", "Parameter") else f"a {kind.__name__}"
            raise CheckpointError(
                f"{place} holds {shown}; only text, numbers, true/false, lists and dicts are "
                "allowed there"
            )
        if depth >= MAX_METADATA_DEPTH:
            raise CheckpointError(f"{place} is nested more than {MAX_METADATA_DEPTH} levels deep")
        if id(item) in on_path:
            raise CheckpointError(f"{place} contains itself")
        on_path.add(id(item))
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    raise CheckpointError(
                        f"{place} has a {type(key).__name__} key; keys must be text"
                    )
                visit(child, f"{place}.{_plain(key, 40)}", depth + 1)
        else:
            for position, child in enumerate(item):
                visit(child, f"{place}[{position}]", depth + 1)
        on_path.discard(id(item))

    visit(value, where, 0)


def check_weights(
    config: FamilyConfig,
    state_dict: Any,
    name: str | Path,
    *,
    values: bool = True,
    expected: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """The weights fit the config: the same names and shapes, dense real floating tensors, all
    values finite (``values=False`` skips that one, the only check that reads tensor data).
    Shapes come from the config alone, so nothing is built or allocated first.
    """
    import torch

    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{name}: state_dict is not a dict")
    for key in state_dict:
        if not isinstance(key, str):
            raise CheckpointError(f"{name}: state_dict has a {type(key).__name__} key")
    expected = expected if expected is not None else config.expected_shapes()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [_plain(k, 60) for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        raise CheckpointError(f"{name}: weights do not fit the config: {'; '.join(parts)}")
    for key, shape in expected.items():
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{name}: weight {key} is not a tensor")
        if tuple(value.shape) != shape:
            raise CheckpointError(
                f"{name}: shape mismatch for {key}: checkpoint {list(value.shape)}, "
                f"config expects {list(shape)}"
            )
        if value.layout != torch.strided:
            raise CheckpointError(
                f"{name}: weight {key} is a {str(value.layout).removeprefix('torch.')} tensor; "
                "only dense weights are supported"
            )
        if value.device.type == "meta":
            raise CheckpointError(f"{name}: weight {key} holds no data (a meta tensor)")
        if value.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            # float8 types are floating point too, but torch cannot compute with them
            raise CheckpointError(
                f"{name}: weight {key} has dtype {str(value.dtype).removeprefix('torch.')}; "
                "weights must be real floating point (float16, bfloat16, float32 or float64)"
            )
        if values and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{name}: weight {key} holds NaN or infinite values")


def _check_storage(
    file: Path, storage_bytes: int | None, expected: dict[str, tuple[int, ...]]
) -> None:
    """Tensor data in the file is bounded by what the config's weights can use."""
    if storage_bytes is None:
        return
    needed = sum(math.prod(shape) for shape in expected.values())
    allowed = needed * 8 + STORAGE_SLACK_BYTES
    if storage_bytes > allowed:
        raise CheckpointError(
            f"{file}: holds {storage_bytes:,} bytes of tensor data but its config's weights "
            f"need at most {needed * 8:,}; refusing the rest"
        )


def _device(map_location: Any) -> torch.device:
    import torch

    if isinstance(map_location, torch.device):
        return map_location
    if isinstance(map_location, str):
        try:
            return torch.device(map_location)
        except RuntimeError as err:
            raise UsageError(f"unknown device {map_location!r}") from err
    raise UsageError(
        f"map_location must be a device name or torch.device, not {type(map_location).__name__}"
    )


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Read and validate a checkpoint; every problem is one CheckpointError line naming the file."""
    if not isinstance(path, str | os.PathLike):
        raise UsageError(f"a checkpoint path must be text or a path, not {type(path).__name__}")
    device = _device(map_location)
    file = Path(path)
    # zip archives are memory-mapped: no tensor data is read before the checks below
    payload, storage_bytes = read_payload(file)
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{file}: not an attnviz checkpoint (holds a {type(payload).__name__}, not a dict)"
        )
    if payload.get("format") != FORMAT_NAME:
        if _looks_like_state_dict(payload):
            raise CheckpointError(
                f"{file}: a bare state dict without config or tokenizers, not an attnviz checkpoint"
            )
        known = _plain(", ".join(sorted(str(k)[:40] for k in payload)[:6]))
        raise CheckpointError(
            f"{file}: not an attnviz checkpoint (no format marker; top-level keys: {known})"
        )
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{file}: format_version is missing or not a positive integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {version} is newer than this attnviz reads "
            f"(up to {FORMAT_VERSION}); upgrade attnviz"
        )
    payload = _migrate(payload, file)
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"{file}: checkpoint lacks {', '.join(missing)}")
    if not isinstance(payload["config"], dict):
        raise CheckpointError(f"{file}: config is not a dict")
    try:
        family = get_family(payload["family"])
    except AttnvizError as err:
        raise CheckpointError(f"{file}: {err}") from err
    try:
        config = family.config_from_dict(payload["config"])
    except AttnvizError as err:
        raise CheckpointError(f"{file}: bad model config: {err}") from err
    for key in ("src_tokenizer", "tgt_tokenizer"):
        if not isinstance(payload[key], dict) or not payload[key]:
            raise CheckpointError(f"{file}: {key} must be a tokenizer spec (a dict)")
        _plain_or_fail(
            file,
            payload[key],
            key,
            allow_bytes=True,
            max_items=MAX_SPEC_ITEMS,
            max_text=MAX_PICKLE_BYTES,
        )
    if not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{file}: state_dict is not a dict")
    if not isinstance(payload["search"], dict):
        raise CheckpointError(f"{file}: search is not a dict")
    _plain_or_fail(file, payload["search"], "search")
    metadata = payload.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{file}: metadata is not a dict")
    _plain_or_fail(file, metadata, "metadata")
    expected = config.expected_shapes()
    _check_storage(file, storage_bytes, expected)
    # names and shapes first (nothing read), then the data itself, copied off the mapped file
    check_weights(config, payload["state_dict"], file, values=False, expected=expected)
    # one thread: these tensors are small, and on a busy machine each parallel region of a
    # check can wait a scheduler slice for its second thread (~30 ms a tensor, measured)
    with torch_threads(1):
        try:
            state_dict = {k: v.to(device, copy=True) for k, v in payload["state_dict"].items()}
        except (RuntimeError, AssertionError) as err:
            raise CheckpointError(
                f"{file}: cannot place the weights on {device} ({_first_line(err)})"
            ) from err
        check_weights(config, state_dict, file, expected=expected)
    _check_digest(file, payload.get(DIGEST_KEY), state_dict)
    checkpoint = Checkpoint(
        config=config,
        state_dict=state_dict,
        src_tokenizer=payload["src_tokenizer"],
        tgt_tokenizer=payload["tgt_tokenizer"],
        metadata=metadata,
        path=file,
        search=payload["search"],
        family=family.name,
    )
    checkpoint.rules()  # bad stored rules fail here, with the file named
    return checkpoint


def _plain_or_fail(file: Path, value: Any, where: str, **limits: Any) -> None:
    try:
        check_plain(value, where, **limits)
    except CheckpointError as err:
        raise CheckpointError(f"{file}: {err}") from err


def _check_digest(file: Path, stored: Any, state_dict: dict[str, torch.Tensor]) -> None:
    if stored is None:
        return  # files written before checksums were stored
    if not isinstance(stored, str) or not re.fullmatch(r"[0-9a-f]{64}", stored):
        raise CheckpointError(f"{file}: {DIGEST_KEY} is not a SHA-256 hex digest")
    if weights_digest(state_dict) != stored:
        raise CheckpointError(
            f"{file}: the weights do not match the checksum saved with them "
            "(the file was damaged or changed after it was written)"
        )


def build_model(checkpoint: Checkpoint, device: torch.device | str = "cpu") -> Seq2SeqModel:
    """Rebuild the family's network from the config and load weights, checking them first."""
    family = get_family(checkpoint.family)
    with torch_threads(1):  # small tensors: see load_checkpoint
        check_weights(checkpoint.config, checkpoint.state_dict, checkpoint.path or "checkpoint")
        model = family.build(checkpoint.config)
        model.load_state_dict(checkpoint.state_dict)
    model.to(device)
    model.eval()
    return model


def _few(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return shown + more


def describe_checkpoint(checkpoint: Checkpoint) -> list[tuple[str, str]]:
    """(key, value) rows that describe a model: size, vocabularies, config, metadata."""
    import json

    network = build_model(checkpoint)
    source, target = checkpoint.tokenizers()
    rows = [("parameters", f"{network.parameter_count():,}")]
    if checkpoint.path is not None:
        rows.append(("file size", f"{checkpoint.path.stat().st_size / 1e6:.2f} MB"))
    rows.append(("source vocabulary", f"{source.vocab_size} ({source.kind})"))
    rows.append(("target vocabulary", f"{target.vocab_size} ({target.kind})"))
    rows.extend((f"config.{key}", str(value)) for key, value in checkpoint.config.to_dict().items())
    if checkpoint.search:
        rules = checkpoint.rules().to_dict()
        rows.append(("search", ", ".join(f"{key} {value}" for key, value in rules.items())))
    for key, value in checkpoint.metadata.items():
        if key == "origin" and isinstance(value, dict):
            rows.extend(_origin_rows(value))
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append((f"training.{key}", shown))
    return rows


def _origin_rows(origin: dict[str, Any]) -> list[tuple[str, str]]:
    """Where an imported model came from and how its options were mapped, one row each."""
    rows = [(f"origin.{key}", str(origin[key])) for key in ("toolkit", "version") if key in origin]
    files = origin.get("files")
    if isinstance(files, dict):
        rows.extend((f"origin.sha256 {name}", str(digest)) for name, digest in files.items())
    mapping = origin.get("mapping")
    if isinstance(mapping, list):
        rows.extend(("origin.mapping", str(line)) for line in mapping)
    rows.extend(
        (f"origin.{key}", str(value))
        for key, value in origin.items()
        if key not in ("toolkit", "version", "files", "mapping")
    )
    return rows
