"""A COCO detector imported from torchvision's state dict is served like any checkpoint: /detect answers with COCO's
category names (DETECTOR_API_MODELS='{"coco": "weights/coco-frcnn-r50-fpn-v2.pt"}')."""

from __future__ import annotations

import io

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from api.config import Settings
from api.main import create_app
from detector.models.torchvision_import import coco_class_names, import_file
from tests.support.images import photo
from tests.support.torchvision_models import torchvision_model


def test_an_imported_coco_detector_answers_with_coco_names(tmp_path):
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    theirs = torchvision_model(arch)
    torch.save(theirs.state_dict(), tmp_path / "coco.pth")
    path = import_file(arch, tmp_path / "coco.pth", tmp_path / "coco.pt")
    image = photo("coffee")
    buffer = io.BytesIO()
    Image.fromarray((image.permute(1, 2, 0) * 255).round().byte().numpy()).save(buffer, format="PNG")
    settings = Settings(models={"coco": path}, precision="fp32", max_wait_ms=0, warmup=False)
    with TestClient(create_app(settings)) as client:
        r = client.post("/detect", params={"score_threshold": 0.05}, files={"image": ("c.png", buffer.getvalue())})
    assert r.status_code == 200, r.text
    found = r.json()["detections"]
    theirs.transform.min_size = (800,)  # the served model runs at the preset's 800 px
    with torch.no_grad():
        expected = theirs([image])[0]
    names = coco_class_names(arch)
    assert found and [d["label"] for d in found] == [names[i - 1] for i in expected["labels"].tolist()]
    assert [d["score"] for d in found] == pytest.approx(expected["scores"].tolist(), abs=1e-3)
