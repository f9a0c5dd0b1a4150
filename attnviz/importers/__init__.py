"""Models trained by other toolkits: one module per toolkit, recognised from file content.

Each module exposes ``TOOLKIT`` (the toolkit's name), ``detect(path) -> bool`` (cheap, never
raises, looks at the content and not the name) and ``load(path, *, src_spm=None,
tgt_spm=None) -> Checkpoint`` whose ``metadata["origin"]`` says where the model came from and
how its options were mapped.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from attnviz.importers import opennmt_py

IMPORTERS: tuple[ModuleType, ...] = (opennmt_py,)


def find_importer(path: str | Path) -> ModuleType | None:
    """The importer module that recognises ``path``, or None."""
    for module in IMPORTERS:
        if module.detect(Path(path)):
            return module
    return None
