"""``attnviz merge``: join the shard folders of ``export --shard`` into one export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import errors, safe_text, stderr_console


@app.command()
def merge(
    shards: Annotated[
        list[Path],
        typer.Argument(metavar="SHARD_DIR...", help="The folders of every shard of one export."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder of the whole export.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export in OUT.")
    ] = False,
) -> None:
    """Join the shards of `export --shard` into one export, the same files a single run writes."""
    with errors():
        from attnviz.export.shards import merge as merge_shards

        stats = merge_shards(shards, out, overwrite=overwrite)
        figures = f", {stats.figures} figures" if stats.figures else ""
        stderr_console().print(
            safe_text(
                f"merged {stats.shards} shards: {stats.records} sentences ({stats.empty} empty, "
                f"{stats.failed} failed{figures}) to {out}"
            )
        )
