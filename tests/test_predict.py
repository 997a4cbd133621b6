"""predict and evaluate --checkpoint: the CLIs a user runs on a trained checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from detector.core import checkpoint
from detector.evaluate import main as evaluate_main
from detector.models.factory import build_detector
from detector.models.faster_rcnn import tiny_config
from detector.predict import main as predict_main


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_voc):
    from detector.data.voc import VOCDetection

    classes = VOCDetection(tiny_voc, "test").classes
    torch.manual_seed(0)
    cfg = tiny_config(len(classes))
    cfg.min_size, cfg.max_size = (128,), 192
    model = build_detector("faster_rcnn", cfg)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    checkpoint.save(
        path, checkpoint.model_payload(model, kind="faster_rcnn", config=cfg.to_dict(), class_names=classes)
    )
    return path


def test_predict_draws_boxes_on_a_real_photograph(tiny_checkpoint, tmp_path, capsys):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    out = tmp_path / "out"
    assert (
        predict_main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--score-threshold", "0", str(photo)])
        == 0
    )
    records = json.loads((out / "detections.json").read_text())
    assert records[0]["width"] == 512 and records[0]["height"] == 512
    boxes = np.array(records[0]["boxes"])
    assert len(boxes) > 0 and (boxes >= 0).all() and (boxes <= 512).all()
    drawn = np.asarray(Image.open(out / "astronaut.png").convert("RGB"))
    assert drawn.shape == (512, 512, 3)
    assert (drawn != skdata.astronaut()).any(axis=-1).mean() > 0.001  # something was drawn
    assert "astronaut.jpg:" in capsys.readouterr().out


def test_predict_reports_a_bad_image_without_a_traceback(tiny_checkpoint, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="broken.jpg is not a readable image"):
        predict_main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), str(bad)])


def test_predict_reports_a_missing_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="nothing.pt does not exist"):
        predict_main(["--checkpoint", str(tmp_path / "nothing.pt"), str(tmp_path / "x.jpg")])


def test_evaluate_checkpoint_matches_evaluating_its_saved_detections(tiny_checkpoint, tiny_voc, tmp_path, capsys):
    """Both forms of the evaluate CLI share one code path: evaluating the model's own DETS.json gives the same AP."""
    dets = tmp_path / "dets.json"
    common = ["--data", str(tiny_voc), "--split", "test", "--metric", "voc12"]
    evaluate_main(
        [
            "--checkpoint",
            str(tiny_checkpoint),
            *common,
            "--workers",
            "0",
            "--save-detections",
            str(dets),
            "--json",
            str(tmp_path / "a.json"),
        ]
    )
    evaluate_main(["--detections", str(dets), *common, "--json", str(tmp_path / "b.json")])
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["ap"].keys() == b["ap"].keys()
    for name in a["ap"]:
        assert a["ap"][name] == pytest.approx(b["ap"][name], abs=1e-3)
    assert len(json.loads(dets.read_text())) > 0
    assert "mAP" in capsys.readouterr().out
