"""The pre-flight pass (detector.data.check): every record parsed and every image found before training starts, the
result cached by a fingerprint of the files, and training stopped at once with one line naming a bad file."""

from __future__ import annotations

import os
import shutil

import pytest

from detector.data.check import preflight
from detector.data.convert import convert
from detector.data.formats import open_detection
from detector.data.voc import AnnotationError, VOCDetection
from detector.training import DetectionTrainConfig, train_detector


@pytest.fixture
def voc(tiny_voc, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    return root


def test_preflight_counts_and_caches_until_a_file_changes(voc, tmp_path):
    dataset = VOCDetection(voc, "train")
    first = preflight(dataset, cache_dir=tmp_path / "cache", progress=False)
    assert (first.images, first.cached) == (8, False) and first.boxes > 0
    again = preflight(VOCDetection(voc, "train"), cache_dir=tmp_path / "cache", progress=False)
    assert again.cached and (again.images, again.boxes) == (first.images, first.boxes)
    xml = voc / "Annotations" / f"{dataset.image_ids[0]}.xml"
    os.utime(xml, ns=(xml.stat().st_atime_ns, xml.stat().st_mtime_ns + 10**9))
    assert not preflight(VOCDetection(voc, "train"), cache_dir=tmp_path / "cache", progress=False).cached


def test_a_missing_image_stops_training_before_it_starts_naming_the_file(voc, tmp_path, capsys):
    missing = voc / "JPEGImages" / f"{VOCDetection(voc, 'train').image_ids[5]}.jpg"
    missing.unlink()
    config = DetectionTrainConfig(data=str(voc), train_split="train", val_split="none", out=str(tmp_path / "run"),
                                  backbone="tiny", workers=0, no_progress=True, epochs=1)  # fmt: skip
    with pytest.raises(SystemExit, match=f"error: {missing}: image for .* not found"):
        train_detector(config)
    assert "training faster_rcnn" not in capsys.readouterr().out and not (tmp_path / "run" / "last.pt").exists()


def test_a_bad_yolo_label_is_found_by_the_preflight_with_its_line(voc, tmp_path):
    convert(voc, "yolo", tmp_path / "yolo", splits=["train"])
    label = sorted((tmp_path / "yolo" / "labels" / "train").glob("*.txt"))[-1]
    label.write_text(label.read_text() + "3 0.5 0.5 0.2\n")
    dataset = open_detection(tmp_path / "yolo", "train")
    with pytest.raises(AnnotationError, match=f"{label}, line \\d+: 4 values"):
        preflight(dataset, progress=False)
