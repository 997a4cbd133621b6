"""The service through FastAPI's TestClient: answers, every bad input, limits, auth, CORS, readiness, queueing."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image

from api.config import Settings
from api.main import create_app
from api.registry import ModelLoadError
from api.upload import RAW_TYPES
from detector.core import precision
from tests.support.checkpoints import KINDS
from tests.support.cpu import fake_cpu
from tests.support.images import RAW, encode
from tests.support.server import error_of

MAX_UPLOAD = 2_000_000
MAX_PIXELS = 3_000_000


ASTRONAUT = skimage.data.astronaut()  # 512 x 512 RGB photograph


@pytest.fixture(scope="module")
def settings(served_models) -> Settings:
    # fp32 pinned: "auto" is bf16 on a CPU with AMX and fp32 on one without, and these tests compare answers.
    return Settings(
        models=served_models, max_upload_bytes=MAX_UPLOAD, max_image_pixels=MAX_PIXELS, max_wait_ms=0, precision="fp32"
    )


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def detect(client, data: bytes, **params):
    return client.post("/detect", params=params, files={"image": ("x.bin", data, "application/octet-stream")})


# --------------------------------------------------------------------------------------------
# Answers


def test_detect_answer_schema_and_pixels(client):
    r = detect(client, encode(ASTRONAUT), score_threshold=0.05)
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "default-detector"
    assert body["image"] == {"width": 512, "height": 512}
    assert body["detections"], "the default detector finds something above 0.05 on a photograph"
    scores = [d["score"] for d in body["detections"]]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.05
    classes = set(client.get("/models").json()["models"][0]["classes"])
    for d in body["detections"]:
        b = d["box"]
        assert d["label"] in classes
        assert 0 <= b["xmin"] < b["xmax"] <= 512 and 0 <= b["ymin"] < b["ymax"] <= 512
    assert set(body["timing_ms"]) == {"read", "decode", "queue", "inference", "total", "batch_size"}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["inference"] > 0


def test_raw_body_equals_multipart_and_threshold_filters(client):
    data = encode(ASTRONAUT)
    multipart = detect(client, data, score_threshold=0.05).json()["detections"]
    raw = client.post(
        "/detect", params={"score_threshold": 0.05}, content=data, headers={"content-type": "image/jpeg"}
    ).json()["detections"]
    assert raw == multipart
    top = detect(client, data, score_threshold=0.05, max_detections=2).json()["detections"]
    assert top == multipart[:2]
    high = detect(client, data, score_threshold=multipart[0]["score"]).json()["detections"]
    assert high == multipart[:1] or high == [d for d in multipart if d["score"] >= multipart[0]["score"]]


def test_boxes_are_in_original_pixels(client):
    """The same photograph at half size gives the same objects at half the coordinates (within a few pixels)."""
    full = detect(client, encode(ASTRONAUT), score_threshold=0.5).json()["detections"]
    half = detect(
        client, encode(Image.fromarray(ASTRONAUT).resize((256, 256), Image.BILINEAR)), score_threshold=0.5
    ).json()["detections"]
    assert full, "needs at least one confident detection"
    best = full[0]
    match = [d for d in half if d["label"] == best["label"]]
    assert match
    err = min(max(abs(d["box"][k] * 2 - best["box"][k]) for k in best["box"]) for d in match)
    assert err < 24, err


def test_png_answer(client):
    data = encode(ASTRONAUT)
    for r in (
        detect(client, data, format="png"),
        client.post("/detect", content=data, headers={**RAW, "accept": "image/png"}),
    ):
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        drawn = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert drawn.shape == ASTRONAUT.shape
        n = int(r.headers["x-detections"])
        assert (n > 0) == bool((drawn != ASTRONAUT).any())


def test_classify_answer(client):
    r = client.post(
        "/classify", params={"top_k": 3}, files={"image": ("c.jpg", encode(skimage.data.chelsea()), "image/jpeg")}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "tiny-classifier"
    assert body["image"] == {"width": 451, "height": 300}
    scores = [p["score"] for p in body["predictions"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-5
    everything = client.post(
        "/classify", params={"top_k": 1000}, content=encode(skimage.data.chelsea()), headers=RAW
    ).json()["predictions"]
    assert len(everything) == 6 and abs(sum(p["score"] for p in everything) - 1) < 1e-4
    t = client.post("/classify", params={"tta": "10crop"}, content=encode(skimage.data.chelsea()), headers=RAW)
    assert t.status_code == 200 and len(t.json()["predictions"]) == 5
    assert t.json()["predictions"] != body["predictions"][:5]
    # LeNet-5's flatten is sized for its 32 px input: multiscale views cannot go through it.
    t = client.post("/classify", params={"tta": "multiscale"}, content=encode(skimage.data.chelsea()), headers=RAW)
    assert t.status_code == 422 and error_of(t)["code"] == "unsupported_tta"


def test_detect_flip_tta(client):
    data = encode(ASTRONAUT)
    plain = detect(client, data, score_threshold=0.05).json()["detections"]
    flipped = detect(client, data, score_threshold=0.05, tta="flip").json()["detections"]
    assert flipped and flipped != plain


def test_models_health_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": ["default-detector", "tiny-classifier"]}
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    det = models["default-detector"]
    assert det["task"] == "detect" and det["kind"] == "faster_rcnn" and det["backbone"] == "tiny" and det["default"]
    assert det["classes"] == ["ellipse", "triangle", "rectangle", "star", "cross", "ring"]
    assert det["device"] == "cpu" and det["precision"] == "fp32" and "map" in det["metrics"]
    assert det["display_score_threshold"] == 0.7 and models["tiny-classifier"]["display_score_threshold"] is None
    assert models["tiny-classifier"]["task"] == "classify"
    detect(client, encode(ASTRONAUT))
    text = client.get("/metrics").text
    assert 'detector_requests_total{endpoint="/detect",method="POST",status="200"}' in text
    assert 'detector_batch_size_count{model="default-detector"}' in text
    assert 'detector_inference_seconds_bucket{le="0.005",model="default-detector"}' in text
    assert 'detector_queue_depth{model="default-detector"}' in text
    assert "detector_request_latency_seconds_bucket" in text


def test_openapi_documents_answers_and_errors(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/detect"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", *RAW_TYPES}
    for code in ("400", "413", "415", "422", "503", "504"):
        assert post["responses"][code]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), code
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/DetectResponse")
    assert "image/png" in post["responses"]["200"]["content"]
    assert client.get("/docs").status_code == 200


# --------------------------------------------------------------------------------------------
# Image modes and orientation


def _size(client, data: bytes) -> dict:
    r = client.post("/classify", content=data, headers=RAW)
    assert r.status_code == 200, r.text
    return r.json()["image"]


def test_modes_are_converted(client):
    rgb = Image.fromarray(ASTRONAUT).resize((128, 96))
    cases = {
        "grayscale": encode(rgb.convert("L"), "PNG"),
        "cmyk jpeg": encode(rgb.convert("CMYK"), "JPEG"),
        "palette with transparency": encode(rgb.convert("P", palette=Image.ADAPTIVE), "PNG", transparency=0),
        "rgba": encode(rgb.convert("RGBA"), "PNG"),
        "la": encode(rgb.convert("LA"), "PNG"),
        "1-bit": encode(rgb.convert("1"), "BMP"),
        "16-bit": encode(Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG"),
        "webp": encode(rgb, "WEBP"),
        "bmp": encode(rgb, "BMP"),
        "gif": encode(rgb, "GIF"),
        "tiff": encode(rgb, "TIFF"),
    }
    for name, data in cases.items():
        assert _size(client, data) == {"width": 128, "height": 96}, name


def test_exif_orientation_applied(client):
    wide = Image.fromarray(ASTRONAUT).resize((200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(wide, "JPEG", exif=exif.tobytes())
    assert _size(client, data) == {"width": 100, "height": 200}
    upright = encode(wide.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95)
    a = detect(client, data, score_threshold=0.3).json()["detections"]
    b = detect(client, upright, score_threshold=0.3).json()["detections"]
    assert [d["label"] for d in a][:1] == [d["label"] for d in b][:1]


# --------------------------------------------------------------------------------------------
# Bad input: a clear answer in one shape, never a 500


def test_unsupported_and_corrupt(client):
    r = detect(client, b"just some text, not an image")
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"
    # The content decides, not the name or the declared type: a PNG named .txt is fine, text named .jpg is not.
    assert (
        client.post("/classify", files={"image": ("notes.txt", encode(ASTRONAUT, "PNG"), "text/plain")}).status_code
        == 200
    )
    assert client.post("/classify", files={"image": ("photo.jpg", b"%PDF-1.4 ...", "image/jpeg")}).status_code == 415
    jpeg = encode(ASTRONAUT)
    for broken in (jpeg[: len(jpeg) // 3], b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, jpeg[:3] + b"\x00" * 50):
        r = detect(client, broken)
        assert r.status_code == 400, (r.status_code, r.text)
        assert error_of(r)["code"] == "corrupt_image"


def test_empty_missing_and_wrong_field(client):
    r = client.post("/detect", content=b"", headers={"content-type": "image/jpeg"})
    assert r.status_code == 422 and "image" in error_of(r)["message"]
    r = client.post("/detect", files={"image": ("x.jpg", b"", "image/jpeg")})
    assert r.status_code == 422 and error_of(r)["code"] == "empty_image"
    r = client.post("/detect", files={"picture": ("x.jpg", encode(ASTRONAUT), "image/jpeg")})
    assert r.status_code == 422
    message = error_of(r)["message"]
    assert "'image'" in message and "'picture'" in message
    r = client.post("/classify", data={"image": "not a file"}, files={"other": ("x", b"1")})
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_field"
    r = client.post("/detect")
    assert r.status_code == 422


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/detect", {"score_threshold": 5}, "score_threshold"),
        ("/detect", {"score_threshold": "nan"}, "score_threshold"),
        ("/detect", {"max_detections": 0}, "max_detections"),
        ("/detect", {"max_detections": 10**9}, "max_detections"),
        ("/detect", {"tta": "sideways"}, "tta"),
        ("/detect", {"format": "gif"}, "format"),
        ("/classify", {"top_k": -1}, "top_k"),
        ("/classify", {"tta": "20crop"}, "tta"),
    ],
)
def test_absurd_query_values(client, path, params, field):
    r = client.post(path, params=params, content=encode(ASTRONAUT), headers=RAW)
    assert r.status_code == 422
    assert field in error_of(r)["message"]


def test_unknown_model(client):
    r = detect(client, encode(ASTRONAUT), model="nope")
    assert r.status_code == 404 and "default-detector" in error_of(r)["message"]
    r = detect(client, encode(ASTRONAUT), model="tiny-classifier")  # a classifier cannot detect
    assert r.status_code == 404


def test_upload_limit_declared_and_streamed(client):
    big = b"\xff\xd8\xff" + b"\x00" * (MAX_UPLOAD + 10)
    r = client.post("/detect", content=big, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"

    def chunks():  # no Content-Length: a chunked upload, refused while it streams
        for _ in range(40):
            yield b"\x00" * 100_000

    r = client.post("/detect", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413 and "streaming" in error_of(r)["message"]
    r = client.post("/classify", files={"image": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413


def test_pixel_limit(client):
    bomb = encode(Image.new("L", (2000, 2000)), "PNG")  # 4 Mpx in a few KB
    assert len(bomb) < 50_000
    r = detect(client, bomb)
    assert r.status_code == 413 and "2000 x 2000" in error_of(r)["message"]


def test_not_found_and_wrong_method_use_the_error_shape(client):
    r = client.get("/nope")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = client.get("/detect")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


# --------------------------------------------------------------------------------------------
# Settings: auth, CORS, formats


def test_api_key(served_models):
    app = create_app(
        Settings(models=served_models, api_key="s3cret", cors_origins=["https://example.org"], precision="fp32")
    )
    with TestClient(app) as c:
        data = encode(ASTRONAUT)
        r = c.post("/detect", content=data, headers=RAW)
        assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
        assert c.post("/detect", content=data, headers={**RAW, "x-api-key": "wrong"}).status_code == 401
        assert c.post("/detect", content=data, headers={**RAW, "x-api-key": "s3cret"}).status_code == 200
        assert c.get("/models").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        pre = c.options("/detect", headers={"origin": "https://example.org", "access-control-request-method": "POST"})
        assert pre.headers["access-control-allow-origin"] == "https://example.org"
        other = c.options(
            "/detect", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_cors_off_by_default(client):
    r = client.get("/healthz", headers={"origin": "https://example.org"})
    assert "access-control-allow-origin" not in r.headers


def test_format_allow_list_is_a_setting(served_models):
    with TestClient(create_app(Settings(models=served_models, allowed_formats=["png"], precision="fp32"))) as c:
        assert c.post("/classify", content=encode(ASTRONAUT, "PNG"), headers=RAW).status_code == 200
        r = c.post("/classify", content=encode(ASTRONAUT, "JPEG"), headers=RAW)
        assert r.status_code == 415 and "JPEG" in error_of(r)["message"]


def test_missing_checkpoint_names_the_file(tmp_path):
    app = create_app(Settings(models={"x": tmp_path / "absent.pt"}, precision="fp32"))
    with pytest.raises(ModelLoadError, match="absent.pt does not exist"):
        with TestClient(app):
            pass


# --------------------------------------------------------------------------------------------
# Readiness, queueing, timeouts, batching


def test_not_ready_before_models_load(served_models):
    app = create_app(Settings(models=served_models, precision="fp32"))
    c = TestClient(app)  # not entered: the lifespan (model loading) has not run
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and error_of(r)["code"] == "not_ready"
    r = c.post("/detect", content=encode(ASTRONAUT), headers=RAW)
    assert r.status_code == 503 and "retry-after" in r.headers


def _slow(served, seconds: float):
    original = served.run_batch

    def run_batch(items, key):
        time.sleep(seconds)
        return original(items, key)

    served.run_batch = run_batch


def _concurrently(fn, n: int) -> list:
    results: list = [None] * n

    def work(i):
        results[i] = fn(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    return results


def test_full_queue_answers_503_with_retry_after(served_models):
    app = create_app(
        Settings(models=served_models, queue_size=1, max_batch_size=1, max_wait_ms=0, retry_after_s=3, precision="fp32")
    )
    with TestClient(app) as c:
        reg = app.state.registry
        _slow(reg.models["tiny-classifier"], 0.6)
        reg.models["tiny-classifier"].worker.run_batch = reg.models["tiny-classifier"].run_batch
        data = encode(ASTRONAUT)
        answers = _concurrently(lambda i: c.post("/classify", content=data, headers=RAW), 5)
        codes = sorted(r.status_code for r in answers)
        assert 200 in codes and 503 in codes, codes
        full = next(r for r in answers if r.status_code == 503)
        assert full.headers["retry-after"] == "3" and error_of(full)["code"] == "overloaded"


def test_timeout_answers_504(served_models):
    app = create_app(Settings(models=served_models, request_timeout_s=0.3, precision="fp32"))
    with TestClient(app) as c:
        served = app.state.registry.models["tiny-classifier"]
        _slow(served, 1.0)
        served.worker.run_batch = served.run_batch
        r = c.post("/classify", content=encode(ASTRONAUT), headers=RAW)
        assert r.status_code == 504 and error_of(r)["code"] == "timeout"


def test_concurrent_requests_are_batched_and_answered_correctly(served_models):
    """Different photographs at once: each answer is that image's own (checked against one-at-a-time answers),
    and the worker put several of them into one model call."""
    photos = [ASTRONAUT, ASTRONAUT[:, ::-1].copy(),
              np.asarray(Image.fromarray(skimage.data.chelsea()).resize((512, 512))),
              np.asarray(Image.fromarray(skimage.data.coffee()).resize((512, 512)))]  # fmt: skip
    blobs = [encode(p, "PNG") for p in photos]
    with TestClient(create_app(Settings(models=served_models, max_wait_ms=0, max_batch_size=1, precision="fp32"))) as c:
        alone = [detect(c, b, score_threshold=0.3).json()["detections"] for b in blobs]
    app = create_app(Settings(models=served_models, max_wait_ms=300, max_batch_size=8, precision="fp32"))
    with TestClient(app) as c:
        answers = _concurrently(lambda i: detect(c, blobs[i % 4], score_threshold=0.3), 8)
    assert all(r.status_code == 200 for r in answers)
    assert max(r.json()["timing_ms"]["batch_size"] for r in answers) > 1
    for i, r in enumerate(answers):
        got, want = r.json()["detections"], alone[i % 4]
        assert [d["label"] for d in got] == [d["label"] for d in want], i
        for g, w in zip(got, want):
            assert abs(g["score"] - w["score"]) < 1e-3
            assert max(abs(g["box"][k] - w["box"][k]) for k in g["box"]) < 0.5


def test_openapi_shows_the_api_key_only_when_configured(served_models, client):
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})
    spec = (
        TestClient(create_app(Settings(models=served_models, api_key="k", precision="fp32")))
        .get("/openapi.json")
        .json()
    )
    assert spec["components"]["securitySchemes"]["APIKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert spec["paths"]["/detect"]["post"]["security"] == [{"APIKey": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_bf16_precision_keeps_the_answer(served_models, client):
    """bf16 autocast (on the CPU here; on a GPU in production) changes boxes by a few pixels at most."""
    data = encode(ASTRONAUT)
    fp32 = detect(client, data, score_threshold=0.5).json()["detections"]
    app = create_app(Settings(models={"default-detector": served_models["default-detector"]}, precision="bf16"))
    with TestClient(app) as c:
        assert c.get("/models").json()["models"][0]["precision"] == "bf16"
        bf16 = detect(c, data, score_threshold=0.5).json()["detections"]
    assert [d["label"] for d in bf16] == [d["label"] for d in fp32] and fp32
    for a, b in zip(fp32, bf16):
        assert abs(a["score"] - b["score"]) < 0.05
        assert max(abs(a["box"][k] - b["box"][k]) for k in a["box"]) < 8


@pytest.mark.parametrize("amx, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_follows_the_cpu_and_says_why(served_models, monkeypatch, amx, expected):
    fake_cpu(monkeypatch, amx=amx)
    app = create_app(
        Settings(models={"d": served_models["default-detector"]}, precision="auto", device="cpu", warmup=False)
    )
    with TestClient(app) as c:
        (info,) = c.get("/models").json()["models"]
    assert info["precision"] == expected
    assert info["precision_reason"] == (
        "auto: Test CPU has AMX, bf16 matrix units"
        if amx
        else "auto: Test CPU has AVX-512 BF16 but no AMX; bf16 would not be measurably faster"
    )
    assert (
        app.state.registry.models["d"].predictor.model.backbone.body[0].weight.dtype == precision.DTYPES[expected]
    )  # prepared for it


def test_fp16_on_the_cpu_is_refused_at_startup(served_models):
    with pytest.raises(ModelLoadError, match="fp16 needs CUDA"):
        with TestClient(
            create_app(Settings(models={"d": served_models["default-detector"]}, precision="fp16", device="cpu"))
        ):
            pass


def test_the_service_serves_fast_rcnn_and_rcnn(kind_checkpoints):
    settings = Settings(
        models={kind: str(path) for kind, path in kind_checkpoints.items()},
        max_wait_ms=0,
        warmup=False,
        precision="fp32",
    )
    image = encode(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8), "PNG")
    with TestClient(create_app(settings)) as client:
        kinds = {m["name"]: m["kind"] for m in client.get("/models").json()["models"]}
        assert kinds == {k: k for k in KINDS}
        for kind in KINDS:
            response = client.post(
                "/detect",
                params={"model": kind, "score_threshold": 0.0},
                files={"image": ("x.png", image, "image/png")},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"] == kind and body["image"] == {"width": 120, "height": 90}
            assert all(0 <= d["box"]["xmin"] < d["box"]["xmax"] <= 120 for d in body["detections"])
