"""The progress bars: one layout, fed by training progress and export reports."""

from __future__ import annotations

import io

from rich.console import Console

from attnviz.cli.progress import ExportBar, TrainingBar
from attnviz.export import ExportProgress
from attnviz.train import Progress


def console() -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(file=stream, width=120, color_system=None, force_terminal=False), stream


def test_export_bar_shows_sentences_and_rate():
    out, _ = console()
    with ExportBar(out) as bar:
        bar.update(ExportProgress(done=30, total=120, elapsed=4.0))
        task = bar.bar.tasks[0]
        assert (task.completed, task.total) == (30, 120)
        assert task.fields["stats"] == "7.5 sent/s"
        assert bar.bar.live.transient


def test_training_bar_shows_loss_and_prints_each_evaluation():
    out, stream = console()
    with TrainingBar(out) as bar:
        bar.update(Progress(step=3, total_steps=10, loss=2.0, tokens_per_second=1234.4))
        task = bar.bar.tasks[0]
        assert (task.completed, task.total) == (3, 10)
        assert task.fields["stats"] == "loss 2.000 ppl 7.39 1,234 tok/s"
        assert "validation" not in stream.getvalue()
        bar.update(
            Progress(
                step=4,
                total_steps=10,
                loss=2.0,
                tokens_per_second=1000,
                best_valid_loss=1.5,
                valid_loss=1.5,
                event="eval",
            )
        )
        assert task.fields["stats"].endswith("best val 1.500")
        assert not bar.bar.live.transient
    assert "step 4: validation loss 1.5000 (ppl 4.48)" in stream.getvalue()
