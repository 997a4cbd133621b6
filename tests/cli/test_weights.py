"""``python -m detector.weights fetch``: the file lands in --dir, its path is printed, and a failed check exits 1 with
the reason on stderr (the download itself: tests/models/test_pretrained.py)."""

from pathlib import Path

from detector import weights
from detector.models.pretrained import IMAGENET_FILES
from tests.support.file_server import serve_weights


def test_cli_fetch(weights_server, tmp_path, monkeypatch, capsys):
    root, url = weights_server
    name, data = serve_weights(root, monkeypatch)
    dest = tmp_path / "cli"
    assert weights.main(["fetch", "fakenet", "--base-url", url, "--dir", str(dest)]) == 0
    assert (dest / name).read_bytes() == data
    assert f"fakenet: {dest / name}" in capsys.readouterr().out


def test_cli_fetch_failure_returns_1(weights_server, tmp_path, monkeypatch, capsys):
    root, url = weights_server
    serve_weights(root, monkeypatch, corrupt=True)
    assert weights.main(["fetch", "fakenet", "--base-url", url, "--dir", str(tmp_path / "cli")]) == 1
    assert "error: SHA-256 mismatch" in capsys.readouterr().err


def test_cli_fetch_of_an_imagenet_file_says_how_to_serve_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weights, "fetch", lambda arch, weights_dir, base_url: Path(weights_dir) / IMAGENET_FILES[arch])
    assert weights.main(["fetch", "resnet50", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "resnet50-0676ba61.pth"
    assert f"""DETECTOR_API_MODELS='{{"imagenet": "{path}"}}'""" in capsys.readouterr().out
