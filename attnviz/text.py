"""Untrusted text made safe to show: the one sanitiser for everything printed to a terminal.

Tokens, translations, sources, checkpoint metadata, paths and error messages come from files
and input that attnviz does not control. Printed raw, an escape sequence in them could recolour
or clear the screen, move the cursor, set the window title or hide text, and a bidi override
could make text read differently from what it is. :func:`visible` keeps every printable
character and shows each of the others as the escape a Python string literal would use:
C0 controls (ESC, tab and newline included), DEL and C1 controls (``\\x1b``, ``\\t``,
``\\n``, ``\\x7f``, ``\\x9b``), format characters (bidi overrides and isolates, zero-width
spaces, BOM, soft hyphen, tags), line and paragraph separators and lone surrogates
(``\\u202e``, ``\\u2028``, ``\\udcff``). An escape sequence thus reads ``\\x1b[31m``: plain
ASCII, which every font and terminal can show (Unicode's control pictures such as ``␛`` are
missing from common fonts, the figures' included). A backslash itself is left as it is.

The zero-width joiner and non-joiner (U+200C, U+200D) are kept: they shape the letters around
them in Persian, Indic scripts and emoji, and cannot hide or reorder text. No numpy, torch or
rich here; the CLI escapes rich markup on top of this where it prints through markup.
"""

from __future__ import annotations

import unicodedata

_JOINERS = frozenset("\u200c\u200d")
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, format, surrogates, separators


def _stand_in(char: str) -> str:
    if char in _JOINERS or unicodedata.category(char) not in _HIDDEN:
        return char
    return char.encode("unicode_escape").decode("ascii")  # "\\x1b", "\\t", "\\u202e"


def visible(text: object) -> str:
    """``text`` (or ``str(text)``) with control and invisible format characters made visible.

    >>> visible("a\\x1b[31mred\\u202e")
    'a\\\\x1b[31mred\\\\u202e'
    """
    string = text if isinstance(text, str) else str(text)
    if string.isprintable():  # no Cc, Cf, Cs, Zl, Zp (nor Co, Cn, Zs): nothing to replace
        return string
    return "".join(_stand_in(char) for char in string)


def json_safe(json_text: str) -> str:
    """JSON text with every hidden character written as a ``\\uXXXX`` escape.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 controls but leaves DEL, C1 controls,
    bidi overrides and line separators raw; this escapes them too, so JSON lines printed to
    a terminal cannot drive it. The escapes are standard JSON: the data reads back unchanged.
    """
    if json_text.isprintable():
        return json_text
    out = []
    for char in json_text:
        if char in _JOINERS or unicodedata.category(char) not in _HIDDEN:
            out.append(char)
        else:  # JSON escapes are UTF-16 code units; lone surrogates are one unit each
            code = ord(char)
            if code > 0xFFFF:  # a surrogate pair, e.g. for tag characters U+E0001...
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
    return "".join(out)
