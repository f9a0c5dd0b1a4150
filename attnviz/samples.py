"""Find the sample models that ship with attnviz, in a source checkout or an installed wheel."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from attnviz.errors import CheckpointError, UsageError
from attnviz.io import expand_user

DEFAULT_MODEL = "enko-additive"
INDEX_FILE = "models.json"


@dataclass(frozen=True)
class SampleModel:
    name: str
    path: Path
    description: str


def sample_dir() -> Path | None:
    """The folder holding the bundled models and their index, or None if there is none."""
    checkout = Path(__file__).resolve().parent.parent / "sample_models"
    if (checkout / INDEX_FILE).is_file():
        return checkout
    try:
        from importlib.resources import files

        installed = Path(str(files("attnviz.sample_models")))
    except (ModuleNotFoundError, TypeError):
        return None
    return installed if (installed / INDEX_FILE).is_file() else None


def sample_models() -> list[SampleModel]:
    folder = sample_dir()
    if folder is None:
        return []
    index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
    return [
        SampleModel(name=name, path=folder / entry["file"], description=entry["description"])
        for name, entry in index["models"].items()
    ]


def resolve_model_path(name_or_path: str | os.PathLike[str] | None) -> Path:
    """A path that exists wins; otherwise a bundled model's name (with or without .pt)."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    elif not str(name_or_path).strip():
        # an empty name is most often an unset variable: never quietly the default model
        raise UsageError("the model name is empty; give a checkpoint path or a bundled name")
    candidate = expand_user(name_or_path)
    if candidate.is_file():
        return candidate
    wanted = str(name_or_path).removesuffix(".pt")
    models = sample_models()
    for model in models:
        if model.name == wanted:
            if not model.path.is_file():
                raise CheckpointError(f"{model.path}: bundled model {wanted!r} is missing")
            return model.path
    if candidate.exists():
        return candidate  # a folder or other non-file: the checkpoint loader says what is wrong
    names = ", ".join(m.name for m in models) or "none found"
    raise CheckpointError(f"{name_or_path}: no such file or bundled model (bundled: {names})")
