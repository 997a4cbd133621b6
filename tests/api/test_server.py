"""Bad input against a real uvicorn process (HTTP on loopback, real chunked uploads), not only TestClient."""

from __future__ import annotations

import httpx
import pytest
import skimage.data
from PIL import Image

from tests.support.images import RAW, encode
from tests.support.server import error_of, running_server

MAX_UPLOAD = 1_000_000


JPEG = encode(skimage.data.astronaut())


@pytest.fixture(scope="module")
def url(served_models):
    with running_server({"models": served_models, "max_upload_bytes": MAX_UPLOAD, "max_image_pixels": 3_000_000}) as (
        base,
        _,
    ):
        yield base


def test_good_request_over_http(url):
    r = httpx.post(
        f"{url}/detect", files={"image": ("a.jpg", JPEG, "image/jpeg")}, params={"score_threshold": 0.05}, timeout=60
    )
    assert r.status_code == 200 and r.json()["detections"]


def test_bad_inputs_over_http(url):
    png_bomb = encode(Image.new("L", (2000, 2000)), "PNG")
    cases = [
        ("text body", dict(content=b"hello", headers={"content-type": "image/jpeg"}), 415, "unsupported_media_type"),
        (
            "truncated jpeg",
            dict(content=JPEG[: len(JPEG) // 2], headers={"content-type": "image/jpeg"}),
            400,
            "corrupt_image",
        ),
        ("zero bytes", dict(content=b"", headers={"content-type": "image/jpeg"}), 422, "missing_field"),
        ("wrong field", dict(files={"file": ("a.jpg", JPEG, "image/jpeg")}), 422, "missing_field"),
        (
            "pixel bomb",
            dict(content=png_bomb, headers={"content-type": "image/png"}),
            413,
            "image_too_large",
        ),
        (
            "declared too large",
            dict(content=b"\xff\xd8\xff" + b"\0" * MAX_UPLOAD, headers={"content-type": "image/jpeg"}),
            413,
            "payload_too_large",
        ),
    ]
    for name, kwargs, status, code in cases:
        r = httpx.post(f"{url}/detect", timeout=60, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert error_of(r)["code"] == code, name
    r = httpx.post(f"{url}/detect", params={"score_threshold": -1}, content=JPEG, headers=RAW, timeout=60)
    assert r.status_code == 422 and "score_threshold" in error_of(r)["message"]


def test_chunked_upload_without_length_is_cut_off(url):
    sent = 0

    def body():
        nonlocal sent
        for _ in range(100):  # 10 MB offered in 100 kB chunks against a 1 MB limit
            sent += 100_000
            yield b"\0" * 100_000

    with httpx.Client(timeout=60) as client:
        request = client.build_request("POST", f"{url}/detect", content=body(), headers={"content-type": "image/jpeg"})
        assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
        try:
            r = client.send(request)
        except httpx.RemoteProtocolError:  # the server may close the connection once it has answered
            pytest.fail("the server closed the connection without answering 413")
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"
