"""Where the tests find the repository: its root, and the committed default detector that the service tests serve and
the low-precision tests compare against."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DETECTOR = str(ROOT / "weights" / "default-detector.pt")
