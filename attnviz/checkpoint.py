"""One self-describing checkpoint file: format, version, config, weights, tokenizers, metadata.

Loading never runs pickled code: ``torch.load(..., weights_only=True)`` only rebuilds plain
data (dicts, lists, strings, bytes, numbers, tensors).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.errors import AttnvizError, CheckpointError, TokenizerError
from attnviz.model import ModelConfig
from attnviz.tokenizer import sentencepiece_spec

if TYPE_CHECKING:
    import torch

    from attnviz.decoding import SearchRules
    from attnviz.model import Seq2Seq
    from attnviz.tokenizer import Tokenizer

FORMAT_NAME = "attnviz-checkpoint"
#: 1: SentencePiece models as ``src_spm``/``tgt_spm`` bytes. 2: tokenizer specs
#: (``src_tokenizer``/``tgt_tokenizer``, see attnviz.tokenizer). 3: ``search``, the model's
#: search rules (attnviz.decoding.SearchRules; empty: attnviz's own). Older files are migrated.
FORMAT_VERSION = 3
REQUIRED_KEYS = (
    "format",
    "format_version",
    "config",
    "state_dict",
    "src_tokenizer",
    "tgt_tokenizer",
    "search",
)


@dataclass
class Checkpoint:
    """A model: config, weights, both tokenizers (as specs), search rules and metadata.

    ``search`` holds :class:`attnviz.decoding.SearchRules` as a plain dict (empty: attnviz's
    own rules); an imported model carries its toolkit's.
    """

    config: ModelConfig
    state_dict: dict[str, Any]
    src_tokenizer: dict[str, Any]
    tgt_tokenizer: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    search: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
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

        try:
            return tokenizer_from_spec(self.src_tokenizer), tokenizer_from_spec(self.tgt_tokenizer)
        except TokenizerError as err:
            raise CheckpointError(f"{self.path or 'checkpoint'}: {err}") from err


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a temporary file in the same folder, then a rename."""
    import torch

    from attnviz.io import atomic_write

    for name in ("src_tokenizer", "tgt_tokenizer"):
        if not getattr(checkpoint, name):
            raise CheckpointError(f"{name} is empty: a checkpoint needs both tokenizers")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = checkpoint.to_payload()
    payload["state_dict"] = {k: v.detach().cpu() for k, v in checkpoint.state_dict.items()}
    return atomic_write(target, lambda stream: torch.save(payload, stream))


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
    return payload


def _unsafe_global(message: str) -> str | None:
    """The disallowed global named in torch's weights-only error, or None if there is none."""
    if "GLOBAL" not in message and "global" not in message:
        return None
    found = re.search(r"GLOBAL ([\w.]+) ", message) or re.search(
        r"[Uu]nsupported global:?\s*(?:GLOBAL\s*)?([\w.]+)", message
    )
    return found.group(1) if found else "an unknown class"


def _read(path: Path, map_location: Any) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        unsafe = _unsafe_global(message) if "Weights only load failed" in message else None
        if unsafe is not None:
            raise CheckpointError(
                f"{path}: refused to load: it holds a Python object ({unsafe}) beyond plain "
                "data, which could run code; it is not an attnviz checkpoint"
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
    except Exception as err:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def _looks_like_state_dict(payload: dict[str, Any]) -> bool:
    import torch

    return bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Checkpoint:
    """Read and validate a checkpoint; every problem is one CheckpointError line naming the file."""
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"{file}: no such file")
    if file.is_dir():
        raise CheckpointError(f"{file}: is a folder, not a checkpoint file")
    if file.stat().st_size == 0:
        raise CheckpointError(f"{file}: file is empty")
    payload = _read(file, map_location)
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{file}: not an attnviz checkpoint (holds a {type(payload).__name__}, not a dict)"
        )
    if payload.get("format") != FORMAT_NAME:
        if _looks_like_state_dict(payload):
            raise CheckpointError(
                f"{file}: a bare state dict without config or tokenizers, not an attnviz checkpoint"
            )
        known = ", ".join(sorted(str(k) for k in payload)[:6])
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
        config = ModelConfig.from_dict(payload["config"])
    except AttnvizError as err:
        raise CheckpointError(f"{file}: bad model config: {err}") from err
    for key in ("src_tokenizer", "tgt_tokenizer"):
        if not isinstance(payload[key], dict) or not payload[key]:
            raise CheckpointError(f"{file}: {key} must be a tokenizer spec (a dict)")
    if not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{file}: state_dict is not a dict")
    if not isinstance(payload["search"], dict):
        raise CheckpointError(f"{file}: search is not a dict")
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{file}: metadata is not a dict")
    checkpoint = Checkpoint(
        config=config,
        state_dict=payload["state_dict"],
        src_tokenizer=payload["src_tokenizer"],
        tgt_tokenizer=payload["tgt_tokenizer"],
        metadata=metadata,
        path=file,
        search=payload["search"],
    )
    checkpoint.rules()  # bad stored rules fail here, with the file named
    return checkpoint


def build_model(checkpoint: Checkpoint, device: torch.device | str = "cpu") -> Seq2Seq:
    """Rebuild the network from the config and load weights, checking names and shapes."""
    from attnviz.errors import ConfigError
    from attnviz.model import Seq2Seq

    name = checkpoint.path or "checkpoint"
    try:
        model = Seq2Seq(checkpoint.config)
    except ConfigError as err:
        raise CheckpointError(f"{name}: bad model config: {err}") from err
    expected = model.state_dict()
    given = checkpoint.state_dict
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        raise CheckpointError(f"{name}: weights do not fit the config: {'; '.join(parts)}")
    for key, tensor in expected.items():
        value = given[key]
        if not hasattr(value, "shape"):
            raise CheckpointError(f"{name}: weight {key} is not a tensor")
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{name}: shape mismatch for {key}: checkpoint {list(value.shape)}, "
                f"config expects {list(tensor.shape)}"
            )
    model.load_state_dict(given)
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
    for key, value in checkpoint.metadata.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append((f"training.{key}", shown))
    return rows
