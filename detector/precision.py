"""Numeric precision of inference: the one table of names -> dtypes, the autocast that runs a model at one, and
the ``auto`` choice that follows the hardware.

``auto`` picks bf16 where it is measurably faster than fp32 with answers within README's tolerances, and fp32
everywhere else:
- CUDA with bf16 (Ampere and later): bf16. An older GPU has no bf16 but fast fp16 tensor cores: fp16 there (a
  departure from "otherwise fp32": fp16 autocast is what those GPUs run fastest, and the service used it before);
- a CPU with AMX (Intel Sapphire Rapids and later): bf16, about 2.3x faster than fp32 end to end on VGG16;
- any other CPU: fp32. Without AMX, bf16 runs on AVX-512 BF16 dot products (AMD Zen 4/5) or is emulated, and the
  gain is smaller and depends on the CPU (README's "Performance" gives the figures per CPU); fp32 keeps the answers
  exact there, and ``--precision bf16`` remains one flag away.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from detector.devices import cpu_info

PRECISIONS = ("fp32", "bf16", "fp16")
CHOICES = ("auto", *PRECISIONS)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision (one of PRECISIONS) and, in words, why it was chosen."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raises ValueError naming the precision when ``device`` cannot run it (fp16 autocast needs CUDA)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(CHOICES)}")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError("precision fp16 needs CUDA; on the CPU use bf16 (fastest on CPUs with AMX) or fp32")


def auto_precision(device: torch.device | str) -> Precision:
    """The precision ``auto`` means on ``device``, with the reason (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision("bf16", f"auto: {name} computes in bf16")
        return Precision("fp16", f"auto: {name} has no bf16; fp16 on its tensor cores")
    if device.type != "cpu":
        return Precision("fp32", f"auto: no low-precision choice made for {device.type}")
    cpu = cpu_info()
    if cpu.amx:
        return Precision("bf16", f"auto: {cpu.model} has AMX, bf16 matrix units")
    why = "AVX-512 BF16 but no AMX" if cpu.avx512_bf16 else "no bf16 matrix units"
    return Precision("fp32", f"auto: {cpu.model} has {why}; bf16 would not be measurably faster")


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """``auto`` -> :func:`auto_precision`; an explicit name is checked against ``device`` (ValueError if it cannot)."""
    if name == "auto":
        return auto_precision(device)
    check_precision(name, device)
    return Precision(name, "asked for")


def precision_autocast(device: torch.device | str, precision: str = "fp32"):
    """Autocast for inference or training at ``precision``: "bf16" (CPU or CUDA), "fp16" (CUDA only), "fp32"
    (a no-op). Convolutions and matrix products run in the low precision; softmax, box decoding and NMS
    inputs stay as autocast leaves them (fp32 for the ops it lists, the input dtype otherwise)."""
    device = torch.device(device)
    check_precision(precision, device)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])
