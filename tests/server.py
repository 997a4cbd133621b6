"""A real uvicorn process serving the app, for tests that need HTTP on loopback (not TestClient)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from detector.tools.loadtest import free_port, serve_until_done

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_server(settings: dict, *, timeout_s: float = 180.0) -> Iterator[tuple[str, object]]:
    """``uvicorn api.main:app`` (the documented command, not ``python -m api``) with ``settings`` (Settings fields)
    in a config file; yields (base URL, process) once /readyz answers 200, and SIGTERMs it afterwards."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(settings, f)
    env = {**os.environ, "DETECTOR_API_CONFIG": f.name, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    try:
        with serve_until_done(cmd, port, env=env, cwd=ROOT, ready_timeout_s=timeout_s) as (url, proc):
            yield url, proc
    finally:
        os.unlink(f.name)
