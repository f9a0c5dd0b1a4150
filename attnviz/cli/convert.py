"""``attnviz convert``: a model of another toolkit as one self-describing attnviz checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli.app import app
from attnviz.cli.common import SrcSpmOption, TgtSpmOption, errors, flag_names, safe_text


@app.command()
def convert(
    model: Annotated[
        str,
        typer.Argument(
            help="The model: an OpenNMT-py .pt; a JoeyNMT folder, its config.yaml or a .ckpt."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The attnviz checkpoint to write.")],
    src_spm: SrcSpmOption = None,
    tgt_spm: TgtSpmOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it is an existing file.")
    ] = False,
) -> None:
    """Write a model as an attnviz checkpoint (tokenizers included; the originals are then
    not needed). Its metadata records the toolkit, its version and the files' SHA-256."""
    with errors():
        from attnviz.cli.common import stderr_console
        from attnviz.importers import convert_model
        from attnviz.samples import resolve_model_path

        with flag_names():
            checkpoint = convert_model(
                resolve_model_path(model),
                out,
                src_spm=src_spm,
                tgt_spm=tgt_spm,
                overwrite=force,
            )
        origin = checkpoint.metadata.get("origin")
        toolkit = origin.get("toolkit", "?") if isinstance(origin, dict) else "attnviz"
        stderr_console().print(safe_text(f"wrote {out} (from {toolkit})"))
