"""The service under test: a real uvicorn process for tests that need HTTP on loopback (not TestClient), and the one
error shape every error answer has."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator

from detector.tools.loadtest import free_port, serve_until_done
from tests.support.paths import ROOT


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


def error_of(response) -> dict:
    """The ``{"code", "message"}`` of an error answer (a TestClient or httpx response), after checking that the body
    is exactly ``{"error": {"code", "message"}}``."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]
