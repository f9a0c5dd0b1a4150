"""Model families behind one protocol (:mod:`attnviz.families.base`).

Adding a family: one module exposing ``FAMILY`` (a :class:`Family`) and one line in
:data:`FAMILIES`. Modules are imported only when a model of theirs is loaded.
"""

from __future__ import annotations

import importlib

from attnviz.errors import ConfigError
from attnviz.families.base import Family

#: family name (as stored in checkpoints) -> module exposing FAMILY
FAMILIES = {
    "rnn": "attnviz.families.rnn",
    "transformer": "attnviz.families.transformer",
}


def get_family(name: object) -> Family:
    """The family called ``name``; an unknown name lists the known ones."""
    if not isinstance(name, str) or name not in FAMILIES:
        shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
        raise ConfigError(f"unknown model family {shown}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[name]).FAMILY


__all__ = ["FAMILIES", "Family", "get_family"]
