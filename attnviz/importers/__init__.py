"""Models trained by other toolkits, read safely and mapped onto attnviz's own.

Each importer is one module exposing

- ``TOOLKIT``: the toolkit's name;
- ``detect(path) -> bool``: whether ``path`` holds that toolkit's model, judged from the
  content (cheap; never raises);
- ``load(path, *, src_spm=None, tgt_spm=None) -> Checkpoint``: the model as an attnviz
  checkpoint whose ``metadata["origin"]`` records the toolkit, its version where known, the
  sha256 of every file read and how the options were mapped.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from attnviz.importers import joeynmt

IMPORTERS: tuple[ModuleType, ...] = (joeynmt,)


def find_importer(path: Path) -> ModuleType | None:
    """The importer whose toolkit made the model at ``path``, or None."""
    for module in IMPORTERS:
        if module.detect(Path(path)):
            return module
    return None
