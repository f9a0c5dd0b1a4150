"""Fonts for figures: DejaVu Sans for Latin text, a shipped CJK font as the fallback.

matplotlib (>= 3.6) falls back through a list of families glyph by glyph, so passing
``fontfamily=font_families(None)`` draws Latin in DejaVu Sans and Hangul, kana and Han
ideographs in the shipped font, without touching global rcParams.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from attnviz.errors import UsageError
from attnviz.io import expand_user

FONT_DIR = Path(__file__).resolve().parent / "fonts"
CJK_FONT_FILE = FONT_DIR / "AttnvizCJKSans-Regular.ttf"
LATIN_FAMILY = "DejaVu Sans"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
GENERIC_FAMILIES = ("serif", "sans-serif", "cursive", "fantasy", "monospace")

_registered: dict[str, str] = {}  # resolved font file path -> family name
_lock = threading.Lock()


def register_font_file(path: str | os.PathLike[str]) -> str:
    """Make a font file known to matplotlib (once per process) and return its family name."""
    font_path = expand_user(path)
    if font_path.suffix.lower() not in FONT_SUFFIXES:
        raise UsageError(f"font file {str(path)!r} must end in {', '.join(FONT_SUFFIXES)}")
    if not font_path.is_file():
        raise UsageError(f"font file {str(path)!r} does not exist")
    key = str(font_path.resolve())
    with _lock:
        family = _registered.get(key)
        if family is None:
            from matplotlib import font_manager

            manager = font_manager.fontManager
            before = len(manager.ttflist)
            try:
                manager.addfont(key)
            except (OSError, RuntimeError, ValueError) as err:
                raise UsageError(f"cannot read font file {str(path)!r}: {err}") from err
            family = manager.ttflist[before].name
            _registered[key] = family
    return family


def font_families(font: str | None = None) -> list[str]:
    """Family names to pass as ``fontfamily=[...]``: the chosen font first, then fallbacks.

    ``font`` is None (DejaVu Sans, then the shipped CJK font), a family name that
    matplotlib knows (installed on the system, or generic like ``serif``), or a path to
    a .ttf/.otf/.ttc file, which is registered. An unknown name raises UsageError.
    """
    fallbacks = [LATIN_FAMILY, register_font_file(CJK_FONT_FILE)]
    if font is None or not font.strip():
        return fallbacks
    font = font.strip()
    chosen = register_font_file(font) if _looks_like_path(font) else _installed_family(font)
    return [chosen, *(family for family in fallbacks if family != chosen)]


def _looks_like_path(font: str) -> bool:
    return (
        Path(font).suffix.lower() in FONT_SUFFIXES
        or os.sep in font
        or (os.altsep is not None and os.altsep in font)
    )


def _installed_family(name: str) -> str:
    if name.lower() in GENERIC_FAMILIES:
        return name.lower()
    from matplotlib import font_manager

    families = {entry.name.lower(): entry.name for entry in font_manager.fontManager.ttflist}
    family = families.get(name.lower())
    if family is None:
        raise UsageError(
            f"font {name!r} is not installed; give an installed family name "
            f"or the path to a {'/'.join(FONT_SUFFIXES)} file"
        )
    return family
