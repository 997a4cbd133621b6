"""The service's start-up line (``python -m api``): it names the precision it chose and why."""

from __future__ import annotations

from api.__main__ import describe
from api.config import Settings
from tests.support.cpu import fake_cpu


def test_service_start_up_line_names_the_chosen_precision(monkeypatch):
    fake_cpu(monkeypatch, amx=False)
    text = describe(Settings(device="cpu", precision="auto"))
    assert "precision: auto -> fp32 (auto: Test CPU has AVX-512 BF16 but no AMX" in text
    assert "precision: bf16," in describe(Settings(device="cpu", precision="bf16"))
