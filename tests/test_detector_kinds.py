"""R-CNN, Fast R-CNN and Faster R-CNN behind the same CLIs and service: one eval schema, predict, /detect."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detector.core import checkpoint
from detector.data.synth import CLASSES
from detector.evaluate import main as evaluate_main
from detector.models.factory import (
    DETECTOR_KINDS,
    build_detector,
    default_config,
    load_detector,
)
from detector.predict import main as predict_main

KINDS = ("faster_rcnn", "fast_rcnn", "rcnn")


@pytest.fixture(scope="module")
def kind_checkpoints(tmp_path_factory):
    """An untrained tiny checkpoint of each kind (small inputs), as the trainer writes them."""
    folder = tmp_path_factory.mktemp("kinds")
    paths = {}
    for kind in KINDS:
        cfg = default_config(kind, "tiny", len(CLASSES))
        if hasattr(cfg, "min_size"):
            cfg.min_size, cfg.max_size = (128,), 192
        torch.manual_seed(0)
        model = build_detector(kind, cfg)
        paths[kind] = folder / f"{kind}.pt"
        checkpoint.save(
            paths[kind],
            checkpoint.model_payload(model, kind=kind, config=cfg.to_dict(), class_names=list(CLASSES), metrics={}),
        )
    return paths


def test_every_kind_is_known_to_the_factory():
    assert set(KINDS) == set(DETECTOR_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoints_rebuild_and_proposal_counts_can_be_lowered(kind_checkpoints, kind):
    model, ckpt = load_detector(kind_checkpoints[kind])
    assert model.kind == ckpt["kind"] == kind and not model.training
    model.set_max_proposals(7)
    assert model.max_proposals == 7
    assert model.proposal_source == ("rpn" if kind == "faster_rcnn" else "selective_search")
    with pytest.raises(ValueError):
        model.set_max_proposals(0)


def test_the_three_eval_outputs_share_one_schema(kind_checkpoints, tiny_voc, tmp_path, capsys):
    reports = {}
    for kind, path in kind_checkpoints.items():
        out = tmp_path / f"{kind}.json"
        evaluate_main(
            [
                "--checkpoint",
                str(path),
                "--data",
                str(tiny_voc),
                "--split",
                "test",
                "--workers",
                "0",
                "--json",
                str(out),
            ]
        )
        reports[kind] = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "selective_search proposals per image (cached" in printed and "rpn proposals per image" in printed

    def shape(value):  # the schema: keys and value types, recursively
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__

    shapes = {kind: shape(r) for kind, r in reports.items()}
    assert shapes["fast_rcnn"] == shapes["rcnn"] == shapes["faster_rcnn"]
    assert {r["model"]["kind"] for r in reports.values()} == set(KINDS)
    assert reports["rcnn"]["model"]["proposals"] == {"source": "selective_search", "per_image": 2000}
    assert reports["faster_rcnn"]["model"]["proposals"]["source"] == "rpn"
    assert set(reports["rcnn"]["ap"]) == set(CLASSES)


@pytest.mark.parametrize("kind", ["fast_rcnn", "rcnn"])
def test_predict_runs_selective_search_on_a_new_image(kind_checkpoints, kind, tmp_path, capsys):
    import skimage.data

    photo = tmp_path / "cat.jpg"
    Image.fromarray(skimage.data.chelsea()).resize((150, 100)).save(photo)
    predict_main(
        [
            str(photo),
            "--checkpoint",
            str(kind_checkpoints[kind]),
            "--out",
            str(tmp_path / "out"),
            "--score-threshold",
            "0",
            "--max-proposals",
            "50",
        ]
    )
    assert f"{kind}: selective search (fast mode) on each image, top 50 proposals scored" in capsys.readouterr().out
    (record,) = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert record["width"] == 150 and len(record["boxes"]) > 0
    assert all(0 <= b[0] < b[2] <= 150 and 0 <= b[1] < b[3] <= 100 for b in record["boxes"])


def test_the_service_serves_fast_rcnn_and_rcnn(kind_checkpoints):
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app

    settings = Settings(
        models={kind: str(path) for kind, path in kind_checkpoints.items()},
        max_wait_ms=0,
        warmup=False,
        precision="fp32",
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with TestClient(create_app(settings)) as client:
        kinds = {m["name"]: m["kind"] for m in client.get("/models").json()["models"]}
        assert kinds == {k: k for k in KINDS}
        for kind in KINDS:
            response = client.post(
                "/detect",
                params={"model": kind, "score_threshold": 0.0},
                files={"image": ("x.png", buffer.getvalue(), "image/png")},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"] == kind and body["image"] == {"width": 120, "height": 90}
            assert all(0 <= d["box"]["xmin"] < d["box"]["xmax"] <= 120 for d in body["detections"])
