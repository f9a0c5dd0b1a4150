"""Helpers shared by the tests that run the installed script or check one-line errors."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def installed_script() -> str:
    """The ``attnviz`` console script of this environment."""
    beside = Path(sys.executable).parent / "attnviz"
    if beside.is_file():
        return str(beside)
    found = shutil.which("attnviz")
    assert found, "the attnviz console script is not installed"
    return found


def script_env() -> dict[str, str]:
    """The environment for a run of the script: UTF-8 output, no colour, one thread."""
    return {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


def one_error_line(stderr: str | bytes, *fragments: str) -> str:
    """The single ``attnviz: error:`` line of ``stderr``, holding every fragment."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text
    lines = text.strip("\n").split("\n")
    assert len(lines) == 1, text
    assert lines[0].startswith("attnviz: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
