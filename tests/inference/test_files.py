"""Running a detector over what users have (detector.inference.files.predict_files): images, folders, globs and
videos; detections drawn and recorded in detections.json in the image's own pixels, or as annotation files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from detector.data.coco import COCODetection
from detector.data.voc import parse_voc_xml
from detector.inference.files import predict_files
from detector.inference.predictor import DetectionPredictor
from detector.predict import main as predict_main
from tests.support.paths import DEFAULT_DETECTOR


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


def _shapes_folder(tiny_voc, tmp_path):
    """The tiny dataset's test images (generated shapes the default detector knows) in a nested folder."""
    folder = tmp_path / "photos"
    for k, path in enumerate(sorted((tiny_voc / "JPEGImages").glob("*.jpg"))[-4:]):
        target = folder / ("a" if k < 2 else "b/c") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).resize((128, 96)).save(target)  # one size: a batch needs no padding
    return folder


def test_folders_globs_and_batches_give_the_same_detections(tiny_voc, tmp_path):
    folder = _shapes_folder(tiny_voc, tmp_path)
    predictor = DetectionPredictor.from_checkpoint(DEFAULT_DETECTOR)
    one = predict_files(predictor, [folder], tmp_path / "one", progress=False)
    batched = predict_files(predictor, [str(folder / "**" / "*.jpg")], tmp_path / "two", batch_size=3, progress=False)
    assert [Path(r["image"]).name for r in one] == [Path(r["image"]).name for r in batched] and len(one) == 4
    assert sum(len(r["boxes"]) for r in one) > 0
    for a, b in zip(one, batched):
        assert a["labels"] == b["labels"] and np.allclose(a["boxes"], b["boxes"], atol=0.01)
    assert len(list((tmp_path / "one").glob("*.png"))) == 4


def test_save_txt_writes_files_the_readers_load_with_the_same_boxes(tiny_voc, tmp_path):
    folder = _shapes_folder(tiny_voc, tmp_path)
    predictor = DetectionPredictor.from_checkpoint(DEFAULT_DETECTOR)
    for fmt in ("voc", "yolo", "coco"):
        records = predict_files(predictor, [folder], tmp_path / fmt, save_txt=fmt, progress=False)
    labels = tmp_path / "coco" / "labels" / "detections.coco.json"
    coco = COCODetection(labels, "all", images=folder / "a")
    assert [len(coco.annotation(i).objects) for i in range(2)] == [len(r["boxes"]) for r in records[:2]]
    for record in records:
        stem = Path(record["image"]).stem
        xml = parse_voc_xml(tmp_path / "voc" / "labels" / f"{stem}.xml")
        assert [o.name for o in xml.objects] == record["labels"]
        assert np.allclose([o.box for o in xml.objects], np.reshape(record["boxes"], (-1, 4)), atol=0.01)
        rows = [line.split() for line in (tmp_path / "yolo" / "labels" / f"{stem}.txt").read_text().splitlines()]
        assert [predictor.class_names[int(row[0])] for row in rows] == record["labels"]
    assert (tmp_path / "yolo" / "labels" / "classes.txt").read_text().split() == list(predictor.class_names)


def test_a_video_becomes_an_annotated_video_and_a_line_per_frame(tiny_voc, tmp_path, capsys):
    frames = [np.asarray(Image.open(p).convert("RGB").resize((128, 96)))
              for p in sorted((tiny_voc / "JPEGImages").glob("*.jpg"))[:6]]  # fmt: skip
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (128, 96))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    predictor = DetectionPredictor.from_checkpoint(DEFAULT_DETECTOR)
    predict_files(predictor, [video], tmp_path / "out", batch_size=4, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(6)) and lines[5]["time_s"] == pytest.approx(1.0)
    assert sum(len(r["boxes"]) for r in lines) > 0
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert "clip.mp4: 6 frames" in capsys.readouterr().out


def test_predict_cli_nms_and_a_pattern_that_matches_nothing(tiny_voc, tmp_path):
    folder = _shapes_folder(tiny_voc, tmp_path)
    counts = {}
    for nms in ("0.1", "0.9"):
        predict_main([str(folder), "--checkpoint", DEFAULT_DETECTOR, "--out", str(tmp_path / nms), "--nms", nms,
                      "--score-threshold", "0.05"])  # fmt: skip
        counts[nms] = sum(len(r["boxes"]) for r in json.loads((tmp_path / nms / "detections.json").read_text()))
    assert counts["0.1"] < counts["0.9"]
    with pytest.raises(SystemExit, match="the pattern matches no file"):
        predict_main([str(tmp_path / "none" / "*.jpg"), "--checkpoint", DEFAULT_DETECTOR])
