"""What the benchmarks share: a wall-clock window around queued device work, and the machine the figures came from."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

from detector.core.devices import cpu_info

T = TypeVar("T")


def sync(device: torch.device) -> None:
    """Waits for the work queued on ``device`` (CUDA runs asynchronously; the CPU has nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """Calls ``fn()`` between device synchronisations (so queued CUDA work is inside the window); returns
    (its result, wall seconds)."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def machine_line(device: torch.device) -> str:
    """The GPU's name, or the CPU's (model, ATen capability, AMX) and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_info().line()}, {torch.get_num_threads()} threads"
