"""The Dockerfile, checked without Docker: its instructions agree with each other and with the repository, its CMD
serves the app and its HEALTHCHECK command passes against it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

import httpx
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from detector.tools.loadtest import default_image, free_port
from tests.support.paths import ROOT


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments and blank lines dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        word, _, rest = (current + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())
IGNORE = [
    line.strip()
    for line in (ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def args_of(name: str) -> list[str]:
    return [rest for word, rest in DOCKERFILE if word == name]


def exec_form(name: str) -> list[str]:
    """The last ``name`` instruction's JSON array (HEALTHCHECK: the part after its options' CMD)."""
    rest = args_of(name)[-1]
    if name == "HEALTHCHECK":
        rest = rest.split(" CMD ", 1)[1]
    return json.loads(rest)


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def ignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (the last matching pattern decides; a pattern
    that matches a folder matches everything in it; ``**/`` matches any number of folders)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in IGNORE:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            matches = any(fnmatch(p.split("/")[-1], pattern[3:]) for p in prefixes)
        else:
            matches = any(fnmatch(p, pattern) for p in prefixes)
        if matches:
            result = not negated
    return result


def copied() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY, options (--chmod=...) dropped."""
    out = []
    for rest in args_of("COPY"):
        words = [w for w in shlex.split(rest) if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


def test_runs_as_a_non_root_user_that_the_image_creates():
    user = args_of("USER")[-1].split(":")[0]
    assert user not in ("root", "0", "")
    assert any("useradd" in run and run.split()[-1] == user for run in args_of("RUN"))


def test_cmd_serves_the_app_on_the_exposed_port_which_the_healthcheck_asks():
    cmd = exec_form("CMD")
    assert cmd[:3] == ["python", "-m", "api"]
    assert option(cmd, "--host") == "0.0.0.0"  # reachable from outside the container
    port = option(cmd, "--port")
    assert args_of("EXPOSE") == [port]
    healthcheck = exec_form("HEALTHCHECK")
    url = next(w for w in healthcheck[-1].replace("'", " ").split() if w.startswith("http"))
    assert (urlparse(url).port, urlparse(url).path) == (int(port), "/healthz")


def test_healthcheck_path_answers_200(served_models):
    url = next(w for w in exec_form("HEALTHCHECK")[-1].replace("'", " ").split() if w.startswith("http"))
    with TestClient(create_app(Settings(models=served_models))) as client:
        response = client.get(urlparse(url).path)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_everything_copied_exists_and_is_in_the_build_context():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for sources, _ in copied():
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not ignored(source), f"COPY {source}: left out of the build context by .dockerignore"
            # Every committed file under a copied folder reaches the image (the static page too).
            for path in tracked:
                if path.startswith(source.rstrip("/") + "/"):
                    assert not ignored(path), f"{path} is under COPY {source} but .dockerignore leaves it out"
    for path in (
        ".venv/bin/python",
        "runs/default-detector/last.pt",
        "data/synth/labels.txt",
        ".git/HEAD",
        "api/__pycache__/main.cpython-312.pyc",
    ):
        assert ignored(path), f".dockerignore should leave {path} out of the build context"


def test_built_in_models_setting_names_copied_weights(monkeypatch):
    """The models the image serves (its DETECTOR_API_MODELS if it sets one, else the default settings) are checkpoints
    the image holds, under the volume."""
    env = dict(shlex.split(rest)[0].split("=", 1) for rest in args_of("ENV") if rest.startswith("DETECTOR_API_MODELS="))
    monkeypatch.delenv("DETECTOR_API_MODELS", raising=False)
    if env:
        monkeypatch.setenv("DETECTOR_API_MODELS", env["DETECTOR_API_MODELS"])
    monkeypatch.delenv("DETECTOR_API_CONFIG", raising=False)
    settings = Settings()
    workdir = Path(args_of("WORKDIR")[-1])
    (volume,) = args_of("VOLUME")
    destinations = {
        Path(workdir, dest) / (Path(src).name if dest.endswith("/") else "")
        for sources, dest in copied()
        for src in sources
    }
    assert settings.models, "no model is built in"
    for name, path in settings.models.items():
        assert (ROOT / path).is_file(), f"model {name}: {path} is not in the repository"
        assert workdir / path in destinations, f"model {name}: no COPY puts {path} into the image"
        assert (workdir / path).is_relative_to(volume)


def test_cmd_module_help():
    result = subprocess.run(
        [sys.executable, "-m", "api", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout and "--host" in result.stdout and "(default: 8000)" in result.stdout


def wait_until_ready(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 120) -> None:
    """Until /readyz answers 200; fails with the server's log if the process exits or the time runs out first."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_cmd_serves_passes_the_healthcheck_and_finishes_in_flight_requests_on_sigterm(served_models, tmp_path):
    """The image's CMD (on loopback and a free port) with the image's HEALTHCHECK command against it; a SIGTERM sent
    while a request waits in the batch queue still answers it, and the process exits cleanly."""
    port = free_port()
    healthcheck = [
        sys.executable if w == "python" else w.replace(":8000/", f":{port}/") for w in exec_form("HEALTHCHECK")
    ]
    assert subprocess.run(healthcheck, capture_output=True, timeout=30).returncode != 0  # nothing listens yet

    cmd = exec_form("CMD")
    cmd = [sys.executable, *cmd[1:]]
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    # The request waits up to 3 s for companions in the batch queue: long enough to still be in flight at SIGTERM.
    env = {
        "DETECTOR_API_MODELS": json.dumps(served_models),
        "DETECTOR_API_MAX_WAIT_MS": "3000",
        "DETECTOR_API_API_KEY": "not-to-be-printed-7f3a",
    }
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if k != "DETECTOR_API_CONFIG"}, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(proc, port, log)
        assert subprocess.run(healthcheck, capture_output=True, timeout=30).returncode == 0

        answer = {}

        def request():
            answer["response"] = httpx.post(
                f"http://127.0.0.1:{port}/detect",
                files={"image": ("a.jpg", default_image(), "image/jpeg")},
                headers={"X-API-Key": env["DETECTOR_API_API_KEY"]},
                timeout=60,
            )
            answer["at"] = time.monotonic()

        thread = threading.Thread(target=request)
        thread.start()
        time.sleep(1.0)
        sigterm_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        thread.join(60)
        # uvicorn re-raises the signal once it has shut down, so a clean exit reads as killed by SIGTERM (Docker: 143).
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert answer["at"] > sigterm_at  # it really was in flight when the signal came
    output = log.read_text()
    assert "api key: set" in output and env["DETECTOR_API_API_KEY"] not in output
    assert "max_wait_ms=3000" in output and "Application shutdown complete" in output
