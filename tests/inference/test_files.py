"""Running a detector over image files (detector.inference.files.predict_files): detections drawn on each image and
recorded in detections.json, in the image's own pixels."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from skimage import data as skdata

from detector.inference.files import predict_files
from detector.inference.predictor import DetectionPredictor


def test_predict_draws_boxes_on_a_real_photograph(tiny_checkpoint, tmp_path, capsys):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    out = tmp_path / "out"
    predict_files(DetectionPredictor.from_checkpoint(tiny_checkpoint), [photo], out, score_threshold=0)
    records = json.loads((out / "detections.json").read_text())
    assert records[0]["width"] == 512 and records[0]["height"] == 512
    boxes = np.array(records[0]["boxes"])
    assert len(boxes) > 0 and (boxes >= 0).all() and (boxes <= 512).all()
    drawn = np.asarray(Image.open(out / "astronaut.png").convert("RGB"))
    assert drawn.shape == (512, 512, 3)
    assert (drawn != skdata.astronaut()).any(axis=-1).mean() > 0.001  # something was drawn
    assert "astronaut.jpg:" in capsys.readouterr().out
