"""Figures drawn in worker processes that never outlive the export.

Each worker asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG`` on Linux)
and also runs a watchdog thread that ends it once the exporting process is gone, so a
killed export leaves no worker behind on any system.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.alignment import Alignment
from attnviz.errors import OutputError

if TYPE_CHECKING:
    from attnviz.export.options import ExportOptions

_PR_SET_PDEATHSIG = 1
_WATCHDOG_SECONDS = 0.5
_RENDERER: Any = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with(exporter_pid: int) -> None:
    """End this process when the exporting process (or this process's parent) ends."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still applies

    def watch() -> None:
        while os.getppid() == parent and _alive(exporter_pid):
            time.sleep(_WATCHDOG_SECONDS)
        os._exit(1)

    if os.getppid() != parent or not _alive(exporter_pid):
        os._exit(1)  # gone before the death signal was set up
    threading.Thread(target=watch, name="attnviz-watchdog", daemon=True).start()


def _init_worker(options: dict[str, Any], exporter_pid: int) -> None:
    global _RENDERER
    import signal

    _die_with(exporter_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the exporting process handles Ctrl-C
    from attnviz.render.figure import FigureRenderer

    _RENDERER = FigureRenderer(**options)


def _render_in_worker(record: dict[str, Any], path: str) -> str:
    alignment = Alignment.from_dict(record)
    return str(_RENDERER.render(alignment, Path(path)))


class FigurePool:
    """Renders figures in worker processes; at most a bounded number in flight."""

    def __init__(self, options: ExportOptions) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = options.workers
        self.limit = self.workers * 16
        context = multiprocessing.get_context("spawn" if os.name == "nt" else "forkserver")
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=({"dpi": options.dpi}, os.getpid()),
        )
        self.pending: list[Any] = []

    def submit(self, alignment: Alignment, path: Path) -> None:
        if len(self.pending) >= self.limit:
            self._drain(self.limit // 2)
        self.pending.append(self.pool.submit(_render_in_worker, alignment.to_dict(), str(path)))

    def _drain(self, keep: int) -> None:
        from concurrent.futures.process import BrokenProcessPool

        while len(self.pending) > keep:
            try:
                self.pending.pop(0).result()
            except BrokenProcessPool as err:
                raise OutputError("a process drawing figures ended unexpectedly") from err

    def wait(self) -> None:
        self._drain(0)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()
