"""A CPU of the test's choosing, as ``detector.core.precision`` sees it (AMX or not, AVX-512 BF16 or not)."""

from __future__ import annotations

from detector.core import precision
from detector.core.devices import CPUInfo


def fake_cpu(monkeypatch, *, amx: bool, avx512_bf16: bool = True) -> None:
    cpu = CPUInfo(model="Test CPU", capability="AVX512", amx=amx, avx512_bf16=avx512_bf16, onednn_max_isa=None)
    monkeypatch.setattr(precision, "cpu_info", lambda: cpu)
