"""Streaming batch export of alignments: JSONL, Pharaoh, NPZ, an HTML view and figures.

- :mod:`attnviz.export.exporter`: the driver (chunks, journal, resume, manifest);
- :mod:`attnviz.export.formats`: one writer class per format, its reader beside it;
- :mod:`attnviz.export.folder`: the output folder as a jail (no links followed, a lock);
- :mod:`attnviz.export.source`: the input file, fingerprinted and watched for changes;
- :mod:`attnviz.export.figures`: the figure worker processes;
- :mod:`attnviz.export.options`: :class:`ExportOptions`.
"""

from attnviz.export.exporter import JOURNAL, MANIFEST, Exporter, ExportProgress, ExportStats
from attnviz.export.folder import LOCK
from attnviz.export.formats import (
    FORMATS,
    Format,
    SentenceGroup,
    read_figures,
    read_html,
    read_jsonl,
    read_npz,
    read_pharaoh,
)
from attnviz.export.options import FIGURE_FORMATS, ExportOptions

__all__ = [
    "FIGURE_FORMATS",
    "FORMATS",
    "JOURNAL",
    "LOCK",
    "MANIFEST",
    "ExportOptions",
    "ExportProgress",
    "ExportStats",
    "Exporter",
    "Format",
    "SentenceGroup",
    "read_figures",
    "read_html",
    "read_jsonl",
    "read_npz",
    "read_pharaoh",
]
