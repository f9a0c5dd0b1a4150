"""Rich progress display for training, on stderr."""

from __future__ import annotations

import math
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from attnviz.train import Progress as TrainProgress


class TrainingProgress:
    """A progress bar showing loss, perplexity, tokens/s and ETA; feed it ``update``."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.__exit__(kind, value, traceback)

    def update(self, progress: TrainProgress) -> None:
        if self.task is None:
            self.task = self.bar.add_task("train", total=progress.total_steps, stats="")
        ppl = math.exp(min(progress.loss, 50))
        stats = f"loss {progress.loss:.3f} ppl {ppl:.2f} {progress.tokens_per_second:,.0f} tok/s"
        if progress.best_valid_loss is not None:
            stats += f" best val {progress.best_valid_loss:.3f}"
        self.bar.update(self.task, completed=progress.step, stats=stats)
        if progress.event == "eval" and progress.valid_loss is not None:
            self.bar.console.print(
                f"step {progress.step}: validation loss {progress.valid_loss:.4f} "
                f"(ppl {math.exp(min(progress.valid_loss, 50)):.2f})"
            )
