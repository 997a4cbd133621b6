"""Devices: names as users write them ('auto', 'cpu', 'cuda', 'cuda:1') -> torch.device, and what the CPU can do.

The CPU description matters because speed depends on it more than on anything else here: bf16 convolutions and
matrix products are several times faster than fp32 on a CPU with AMX (Intel Sapphire Rapids and later), and
barely faster on one with only AVX-512 BF16 (AMD Zen 4/5); see README's "Performance".
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass

import torch


def device_from_name(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU. Raises ValueError for CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} asks for CUDA, but no CUDA device is available; use 'cpu' or 'auto'")
    return device


@dataclass(frozen=True)
class CPUInfo:
    """``model``: the CPU's name (``/proc/cpuinfo``); ``capability``: the vector ISA ATen's kernels use (``DEFAULT``,
    ``AVX2``, ``AVX512``; ``ATEN_CPU_CAPABILITY`` lowers it); ``amx``: AMX tiles usable by oneDNN (the CPU has them
    and ``ONEDNN_MAX_CPU_ISA`` does not cap them away); ``avx512_bf16``: bf16 dot products without AMX;
    ``onednn_max_isa``: that variable, when set."""

    model: str
    capability: str
    amx: bool
    avx512_bf16: bool
    onednn_max_isa: str | None

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        extras = ["AMX" if self.amx else "no AMX"]
        if self.avx512_bf16:
            extras.append("AVX512-BF16")
        if self.onednn_max_isa:
            extras.append(f"ONEDNN_MAX_CPU_ISA={self.onednn_max_isa}")
        return f"{self.model} (ATen {self.capability}, {', '.join(extras)})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _probe(name: str, flag: str) -> bool:
    # torch.cpu's private probes (cpuinfo underneath) where this torch has them, the kernel's flags otherwise.
    probe = getattr(torch.cpu, name, None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            pass
    return flag in _cpu_flags()


@functools.cache
def cpu_info() -> CPUInfo:
    """What this process's CPU offers to torch (read once: none of it changes while the process runs)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    # oneDNN's ISA names that include AMX all say so (AVX512_CORE_AMX, AVX10_1_512_AMX, ...); ALL/DEFAULT cap nothing.
    capped_away = cap is not None and cap.upper() not in ("ALL", "DEFAULT") and "AMX" not in cap.upper()
    return CPUInfo(
        model=_cpu_model(),
        capability=torch.backends.cpu.get_cpu_capability(),
        amx=_probe("_is_amx_tile_supported", "amx_tile") and not capped_away,
        avx512_bf16=_probe("_is_avx512_bf16_supported", "avx512_bf16"),
        onednn_max_isa=cap,
    )
