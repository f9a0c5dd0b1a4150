"""Models trained by other toolkits, read safely and mapped onto attnviz's own.

Each importer is one module exposing

- ``TOOLKIT``: the toolkit's name;
- ``detect(path) -> bool``: whether ``path`` holds that toolkit's model, judged from the
  content (cheap; never raises);
- ``load(path, *, src_spm=None, tgt_spm=None) -> Checkpoint``: the model as an attnviz
  checkpoint whose ``metadata["origin"]`` records the toolkit, its version where known, the
  sha256 of every file read and how the options were mapped.

:func:`load_any` reads any model attnviz knows (its own checkpoints included) and
:func:`convert_model` writes one as an attnviz checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from attnviz.errors import UsageError
from attnviz.importers import joeynmt, opennmt_py

if TYPE_CHECKING:
    from attnviz.checkpoint import Checkpoint

IMPORTERS: tuple[ModuleType, ...] = (opennmt_py, joeynmt)

TokenizerFile = str | os.PathLike[str] | bytes | None


def find_importer(path: str | os.PathLike[str]) -> ModuleType | None:
    """The importer whose toolkit made the model at ``path``, or None."""
    for module in IMPORTERS:
        if module.detect(Path(path)):
            return module
    return None


def load_any(
    path: str | os.PathLike[str],
    *,
    map_location: Any = "cpu",
    src_spm: TokenizerFile = None,
    tgt_spm: TokenizerFile = None,
) -> Checkpoint:
    """An attnviz checkpoint, or a model of a toolkit that an importer recognises.

    ``src_spm``/``tgt_spm`` give SentencePiece models that a foreign model names but does not
    hold (paths or bytes); an attnviz checkpoint holds its tokenizers and takes none.
    """
    from attnviz.checkpoint import load_checkpoint

    importer = find_importer(path)
    if importer is None:
        if src_spm is not None or tgt_spm is not None:
            raise UsageError(
                f"{path}: an attnviz checkpoint holds its tokenizers; src_spm and tgt_spm are "
                "only for models of other toolkits"
            )
        return load_checkpoint(path, map_location=map_location)
    return importer.load(Path(path), src_spm=src_spm, tgt_spm=tgt_spm)


def convert_model(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    src_spm: TokenizerFile = None,
    tgt_spm: TokenizerFile = None,
    overwrite: bool = False,
) -> Checkpoint:
    """Write ``source`` (a foreign model, or an older attnviz checkpoint) to ``out`` as a
    self-describing attnviz checkpoint, tokenizers included; returns what was written.

    The origin metadata (toolkit, version, SHA-256 of every file read, option mapping) is
    kept and the attnviz version that converted it added. ``out`` is written atomically; an
    existing file is replaced only with ``overwrite``, and never the source itself.
    """
    from attnviz import __version__
    from attnviz.checkpoint import save_checkpoint
    from attnviz.errors import OutputError
    from attnviz.io import check_output

    target = Path(out)
    if target.exists() and target.resolve() == Path(source).resolve():
        raise OutputError(f"{target}: is the model being converted; choose another output")
    check_output(target, overwrite=overwrite)
    checkpoint = load_any(source, src_spm=src_spm, tgt_spm=tgt_spm)
    origin = checkpoint.metadata.get("origin")
    if isinstance(origin, dict):
        checkpoint.metadata["origin"] = {**origin, "converted_by": f"attnviz {__version__}"}
    save_checkpoint(checkpoint, target)
    checkpoint.path = target
    return checkpoint
