"""detector.core.precision and detector.core.devices: the precision table, ``auto`` following the hardware, the CPU
read. The service's start-up line that reports the choice: tests/api/test_startup.py."""

from __future__ import annotations

import pytest
import torch

from detector.core import devices, precision
from tests.support.cpu import fake_cpu


def test_auto_is_bf16_only_on_a_cpu_with_amx(monkeypatch):
    fake_cpu(monkeypatch, amx=True)
    assert precision.auto_precision("cpu") == precision.Precision("bf16", "auto: Test CPU has AMX, bf16 matrix units")
    fake_cpu(monkeypatch, amx=False)
    chosen = precision.auto_precision("cpu")
    assert chosen.name == "fp32" and "AVX-512 BF16 but no AMX" in chosen.reason
    fake_cpu(monkeypatch, amx=False, avx512_bf16=False)
    assert "no bf16 matrix units" in precision.auto_precision("cpu").reason
    assert precision.resolve_precision("auto", "cpu").dtype == torch.float32


def test_auto_on_cuda_is_bf16_where_the_gpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert precision.auto_precision(torch.device("cuda", 0)).name == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert precision.auto_precision(torch.device("cuda", 0)).name == "fp16"


def test_explicit_precisions_are_checked_against_the_device():
    assert precision.resolve_precision("bf16", "cpu") == precision.Precision("bf16", "asked for")
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="choose one of auto, fp32, bf16, fp16"):
        precision.resolve_precision("int8", "cpu")


def test_onednn_isa_cap_hides_amx(monkeypatch):
    devices.cpu_info.cache_clear()
    try:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
        assert not devices.cpu_info().amx and devices.cpu_info().onednn_max_isa == "AVX512_CORE_BF16"
        devices.cpu_info.cache_clear()
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
        assert devices.cpu_info().amx
        devices.cpu_info.cache_clear()
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        info = devices.cpu_info()
        assert info.amx and info.capability == torch.backends.cpu.get_cpu_capability() and info.model
        assert info.line().startswith(info.model) and "AMX" in info.line()
    finally:
        devices.cpu_info.cache_clear()
