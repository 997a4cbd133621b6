"""A real uvicorn process serving the app, for tests that need HTTP on loopback (not TestClient)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(settings: dict, *, timeout_s: float = 120.0, extra_args: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``uvicorn api.main:app`` with ``settings`` (Settings fields) in a config file; yield (base URL, process)
    once /readyz answers 200; stop it with SIGTERM afterwards. The server's output goes to the test's log on failure."""
    port = free_port()
    config = Path(os.environ.get("TMPDIR", "/tmp")) / f"detector-api-{port}.json"
    config.write_text(json.dumps(settings))
    env = {**os.environ, "DETECTOR_API_CONFIG": str(config), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"detector-api-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port), *extra_args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {timeout_s} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        config.unlink(missing_ok=True)
        if proc.returncode not in (0, None, -15):
            print(log.read_text())
