"""Pick the torch device a model runs on, and the CPU threads it uses."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from attnviz.errors import DeviceError

if TYPE_CHECKING:
    import torch

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def available_devices() -> list[str]:
    """Names of the devices torch can use here, cpu always included."""
    import torch

    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; any other name must be available here."""
    import torch

    spec = (name or "auto").strip().lower()
    available = available_devices()
    if spec == "auto":
        for candidate in ("cuda:0", "mps", "cpu"):
            if candidate in available:
                return torch.device(candidate)
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(spec)
    if match:
        index = int(match.group(1) or 0)
        if f"cuda:{index}" in available:
            return torch.device("cuda", index)
        raise DeviceError(
            f"device {name!r} is not available here (available: {', '.join(available)})"
        )
    if spec == "mps":
        if "mps" in available:
            return torch.device("mps")
        raise DeviceError(f"device 'mps' is not available here (available: {', '.join(available)})")
    raise DeviceError(
        f"unknown device {name!r}; use auto or one available here: {', '.join(available)}"
    )


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the block (None: unchanged)."""
    import torch

    if count is None or count == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
