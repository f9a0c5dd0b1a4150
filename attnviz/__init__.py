"""attnviz: see where an attentive seq2seq model looks.

Public API: :func:`load_model` and :class:`Alignment`. Imports are lazy so that
``import attnviz`` (and ``attnviz --help``) never loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Alignment", "AttnvizError", "Translator", "__version__", "load_model"]

if TYPE_CHECKING:
    from attnviz.alignment import Alignment
    from attnviz.errors import AttnvizError
    from attnviz.translator import Translator, load_model

_LAZY = {
    "Alignment": "attnviz.alignment",
    "AttnvizError": "attnviz.errors",
    "Translator": "attnviz.translator",
    "load_model": "attnviz.translator",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
