"""The web page at ``GET /``, driven in headless Chromium against a real uvicorn server: what it shows must be what the
API answers for the same photograph and parameters.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` package (its own browsers are not used).
Without them the tests skip, unless REQUIRE_BROWSER=1 (CI), where they fail. WEBPAGE_SCREENSHOT=path saves a
screenshot of the page after a detection.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest
from PIL import Image
from skimage import data

from tests.support.server import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
DETECTOR, CLASSIFIER = "default-detector", "tiny-classifier"
PHOTO_SIZE = (902, 600)  # wider than the page's 640 px canvas, so boxes must be scaled to be drawn in place
CANVAS_SIZE = (640, round(600 * 640 / 902))


def _no_browser(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional: without it these tests skip)
    except ImportError:
        _no_browser("the playwright package is not installed")
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(served_models):
    with running_server({"models": served_models, "default_detector": DETECTOR}) as (url, _):
        yield url


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A real photograph (scikit-image's cat), enlarged to 902 x 600, as a JPEG file."""
    path = tmp_path_factory.mktemp("photo") / "chelsea.jpg"
    Image.fromarray(data.chelsea()).resize(PHOTO_SIZE, Image.BILINEAR).save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)  # inference shares 2 cores with whatever else runs
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def api(server: str, task: str, path: Path, headers: dict | None = None, **params) -> httpx.Response:
    """The same request, straight to the API."""
    return httpx.post(
        f"{server}/{task}", params=params, headers=headers, files={"image": (path.name, path.read_bytes())}, timeout=120
    )


def run_and_wait(page) -> str:
    page.click("#run")
    page.wait_for_function("/^(Done|Failed)/.test(document.getElementById('status').textContent)")
    return page.text_content("#status")


def shown_rows(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#results tbody tr", "rows => rows.map(r => ({...r.dataset, cells: [...r.cells].map(c => c.textContent)}))"
    )


def set_threshold(page, value: float) -> None:
    page.fill("#threshold", str(value))
    assert page.text_content("#threshold-value") == f"{value:.2f}"


# Pixels of the canvas against the plain photo drawn the same size, and along the first box's left edge.
CANVAS_CHECK = """([x, y0, y1]) => new Promise(async (resolve) => {
  const canvas = document.getElementById('canvas');
  const shown = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const plain = new OffscreenCanvas(canvas.width, canvas.height).getContext('2d');
  plain.drawImage(await createImageBitmap(document.getElementById('file').files[0]), 0, 0, canvas.width, canvas.height);
  const ref = plain.getImageData(0, 0, canvas.width, canvas.height).data;
  let differ = 0, opaque = 0, sum = 0, sum2 = 0;
  for (let i = 0; i < shown.length; i += 4) {
    if (shown[i] !== ref[i] || shown[i + 1] !== ref[i + 1] || shown[i + 2] !== ref[i + 2]) differ++;
    if (shown[i + 3] === 255) opaque++;
    sum += shown[i]; sum2 += shown[i] * shown[i];
  }
  const n = shown.length / 4, edge = [];
  for (let y = y0; y < y1; y += 2) {
    const [r, g, b] = canvas.getContext('2d').getImageData(x, y, 1, 1).data;
    edge.push('#' + [r, g, b].map(v => v.toString(16).padStart(2, '0')).join(''));
  }
  resolve({width: canvas.width, height: canvas.height, differ, opaque, n,
           std: Math.sqrt(sum2 / n - (sum / n) ** 2), edge});
})"""


def test_detect_shows_what_the_api_answers(page, server, photo):
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == [DETECTOR]  # detectors only
    page.set_input_files("#file", str(photo))
    set_threshold(page, 0.2)
    assert run_and_wait(page).startswith("Done"), page.text_content("#error")

    answer = api(server, "detect", photo, score_threshold=0.2, model=DETECTOR).json()
    dets = answer["detections"]
    assert len(dets) >= 3, "the photo should give several boxes at 0.2 for this test to mean something"
    rows = shown_rows(page)
    assert [r["label"] for r in rows] == [d["label"] for d in dets]
    assert [float(r["score"]) for r in rows] == pytest.approx([d["score"] for d in dets], abs=1e-4)
    first = dets[0]["box"]
    assert rows[0]["cells"][3] == ", ".join(f"{first[k]:.0f}" for k in ("xmin", "ymin", "xmax", "ymax"))
    assert page.text_content("#error") == ""
    assert f"{DETECTOR} on 902×600" in page.text_content("#timing")
    if path := os.environ.get("WEBPAGE_SCREENSHOT"):
        page.screenshot(path=path, full_page=True)

    # The canvas: the photo scaled to 640 px wide, with the first box's left edge, scaled the same, in its colour
    # (a 3 px line centred on x covers pixel column int(x) fully, so its colour is exact there).
    s = CANVAS_SIZE[0] / PHOTO_SIZE[0]
    x, y0, y1 = int(first["xmin"] * s), int(first["ymin"] * s) + 20, int(first["ymax"] * s) - 2
    c = page.evaluate(CANVAS_CHECK, [x, y0, y1])
    assert (c["width"], c["height"]) == CANVAS_SIZE
    assert c["opaque"] == c["n"] and c["std"] > 20, "the canvas should show the photograph"
    assert c["differ"] > 2000, "boxes and labels should be drawn over the photograph"
    color = rows[0]["color"]
    assert set(c["edge"]) == {color}, (
        f"the first box's left edge (drawn last, on top) at x={x} should be {color}: {c['edge']}"
    )

    # The slider is what is sent: a higher threshold shows fewer rows, as many as the API gives at it.
    set_threshold(page, 0.6)
    assert run_and_wait(page).startswith("Done")
    high = api(server, "detect", photo, score_threshold=0.6, model=DETECTOR).json()["detections"]
    assert 0 < len(high) < len(dets)
    assert [r["label"] for r in shown_rows(page)] == [d["label"] for d in high]


def test_classify_shows_the_api_top_k(page, server, photo):
    page.check("#task-classify")
    assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == [CLASSIFIER]
    assert page.is_hidden("#threshold") and page.is_visible("#topk")
    page.set_input_files("#file", str(photo))
    page.fill("#topk", "3")
    assert run_and_wait(page).startswith("Done"), page.text_content("#error")

    preds = api(server, "classify", photo, top_k=3, model=CLASSIFIER).json()["predictions"]
    rows = shown_rows(page)
    assert [r["label"] for r in rows] == [p["label"] for p in preds]
    assert [float(r["score"]) for r in rows] == pytest.approx([p["score"] for p in preds], abs=1e-5)
    assert page.text_content("#status") == f"Done: top: {preds[0]['label']}."


def test_dropped_image_is_detected(page, server, photo):
    # What a drag from the desktop delivers: a drop event whose DataTransfer holds the file.
    page.evaluate(
        """([b64, name]) => {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));
          document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        [base64.b64encode(photo.read_bytes()).decode(), photo.name],
    )
    assert photo.name in page.text_content("#drop")
    page.wait_for_function(f"document.getElementById('canvas').height === {CANVAS_SIZE[1]}")  # the preview
    assert run_and_wait(page).startswith("Done"), page.text_content("#error")
    dets = api(server, "detect", photo, score_threshold=0.5, model=DETECTOR).json()[
        "detections"
    ]  # the slider's default
    assert len(dets) > 0
    assert [r["label"] for r in shown_rows(page)] == [d["label"] for d in dets]


def test_error_message_is_shown(page, server, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image at all\n")
    page.set_input_files("#file", str(text))
    assert run_and_wait(page).startswith("Failed")
    answer = api(server, "detect", text, score_threshold=0.5)
    assert answer.status_code == 415
    assert page.text_content("#error") == answer.json()["error"]["message"]
    assert shown_rows(page) == []


def test_api_key_field(browser, served_models, photo):
    with running_server({"models": served_models, "api_key": "s3cret"}) as (url, _):
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_function("document.getElementById('error').textContent !== ''")
        assert "X-API-Key" in page.text_content("#error")  # /models answered 401 and the page says so
        assert page.is_disabled("#run")
        page.fill("#api-key", "s3cret")
        page.dispatch_event("#api-key", "change")
        page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        assert page.text_content("#error") == ""
        page.set_input_files("#file", str(photo))
        assert run_and_wait(page).startswith("Done"), page.text_content("#error")
        dets = api(url, "detect", photo, headers={"X-API-Key": "s3cret"}, score_threshold=0.5).json()["detections"]
        assert [r["label"] for r in shown_rows(page)] == [d["label"] for d in dets]
        page.close()
