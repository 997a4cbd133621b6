"""A loopback HTTP server for the weight downloads (``detector.models.pretrained.fetch`` and ``detector.weights
fetch``): it serves a folder, in which ``serve_weights`` puts a file named as torchvision names its weights."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from detector.models import pretrained


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """Serves the files of ``root`` on 127.0.0.1; yields the base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def weights_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"fc.weight": torch.arange(6.0).reshape(2, 3)}, buf)
    return buf.getvalue()


def serve_weights(root: Path, monkeypatch, arch: str = "fakenet", *, corrupt: bool = False) -> tuple[str, bytes]:
    """Writes a served file named like torchvision's (``arch-<sha256[:8]>.pth``) and registers ``arch``."""
    data = weights_bytes()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    if corrupt:  # a name whose hash prefix the content does not have
        prefix = "".join("0" if c != "0" else "1" for c in prefix)
    name = f"{arch}-{prefix}.pth"
    (root / name).write_bytes(data)
    monkeypatch.setitem(pretrained.IMAGENET_FILES, arch, name)
    return name, data


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
