"""Device names as users write them ('auto', 'cpu', 'cuda', 'cuda:1') -> torch.device."""

from __future__ import annotations

import torch


def device_from_name(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU. Raises ValueError for CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} asks for CUDA, but no CUDA device is available; use 'cpu' or 'auto'")
    return device
