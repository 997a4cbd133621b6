"""``python -m detector.predict``: a user's mistakes as one line, and the line it prints for the selective-search kinds
(drawing and recording detections: tests/inference/test_files.py)."""

from __future__ import annotations

import json

import pytest
import skimage.data
from PIL import Image

from detector.predict import main as predict_main


def test_predict_reports_a_bad_image_without_a_traceback(tiny_checkpoint, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="broken.jpg is not a readable image"):
        predict_main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), str(bad)])


def test_predict_reports_a_missing_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="nothing.pt does not exist"):
        predict_main(["--checkpoint", str(tmp_path / "nothing.pt"), str(tmp_path / "x.jpg")])


@pytest.mark.parametrize("kind", ["fast_rcnn", "rcnn"])
def test_predict_runs_selective_search_on_a_new_image(kind_checkpoints, kind, tmp_path, capsys):
    photo = tmp_path / "cat.jpg"
    Image.fromarray(skimage.data.chelsea()).resize((150, 100)).save(photo)
    predict_main([str(photo), "--checkpoint", str(kind_checkpoints[kind]), "--out", str(tmp_path / "out"),
                  "--score-threshold", "0", "--max-proposals", "50"])  # fmt: skip
    assert f"{kind}: selective search (fast mode) on each image, top 50 proposals scored" in capsys.readouterr().out
    (record,) = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert record["width"] == 150 and len(record["boxes"]) > 0
    assert all(0 <= b[0] < b[2] <= 150 and 0 <= b[1] < b[3] <= 100 for b in record["boxes"])
