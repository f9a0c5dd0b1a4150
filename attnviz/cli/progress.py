"""Progress bars on stderr: one for training, one for export, over one shared layout."""

from __future__ import annotations

import math
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from attnviz.export import ExportProgress
    from attnviz.train import Progress as TrainProgress


class ProgressBar:
    """``label  ━━━━  done/total  stats  elapsed  eta remaining``; use it as a context manager.

    Subclasses set ``label`` and ``transient`` (whether the bar vanishes when done) and turn
    their reports into ``self.show(completed, total, stats)``.
    """

    label: ClassVar[str] = ""
    transient: ClassVar[bool] = False

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.bar = Progress(
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=self.transient,
        )
        self.task = self.bar.add_task(self.label, total=None, stats="")

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bar.__exit__(kind, value, traceback)

    def show(self, completed: int, total: int | None, stats: str) -> None:
        self.bar.update(self.task, completed=completed, total=total, stats=stats)


class TrainingBar(ProgressBar):
    """Steps with loss, perplexity, tokens/s and the best validation loss; a line per eval."""

    label = "train"

    def update(self, progress: TrainProgress) -> None:
        ppl = math.exp(min(progress.loss, 50))
        stats = f"loss {progress.loss:.3f} ppl {ppl:.2f} {progress.tokens_per_second:,.0f} tok/s"
        if progress.best_valid_loss is not None:
            stats += f" best val {progress.best_valid_loss:.3f}"
        self.show(progress.step, progress.total_steps, stats)
        if progress.event == "eval" and progress.valid_loss is not None:
            self.console.print(
                f"step {progress.step}: validation loss {progress.valid_loss:.4f} "
                f"(ppl {math.exp(min(progress.valid_loss, 50)):.2f})"
            )


class ExportBar(ProgressBar):
    """Sentences done with sentences per second; gone when the export ends."""

    label = "export"
    transient = True

    def update(self, report: ExportProgress) -> None:
        rate = report.done / max(report.elapsed, 1e-9)
        self.show(report.done, report.total, f"{rate:.1f} sent/s")
