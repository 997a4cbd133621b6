"""Every dataset format through one reader (detector.data.formats): COCO JSON and YOLO txt give the same targets as
the VOC files they were converted from (detector.data.convert), plain folders and single files split by
--val-ratio, and bad labels are errors that name the file, the line and the field."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
import torch

from detector.core import checkpoint
from detector.data.coco import COCODetection
from detector.data.convert import convert, dataset_splits
from detector.data.convert import main as convert_main
from detector.data.formats import detect_format, drawn_split, open_detection
from detector.data.voc import AnnotationError, VOCDetection
from detector.data.voc.layout import MissingSplitError
from detector.data.yolo import YOLODetection
from detector.evaluate import main as evaluate_main
from detector.training import DetectionTrainConfig, train_detector
from tests.support.paths import DEFAULT_DETECTOR

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def voc(tiny_voc, tmp_path_factory):
    """The tiny VOC dataset with its first training object marked difficult (so the flag's round trip is seen)."""
    root = tmp_path_factory.mktemp("voc") / "voc"
    shutil.copytree(tiny_voc, root)
    first = (root / "ImageSets" / "Main" / "train.txt").read_text().split()[0]
    xml = root / "Annotations" / f"{first}.xml"
    xml.write_text(re.sub(r"<difficult>0</difficult>", "<difficult>1</difficult>", xml.read_text(), count=1))
    return root


def _same_records(a, b, tolerance):
    assert a.classes == b.classes and len(a) == len(b)
    for i in range(len(a)):
        ra, rb = a.annotation(i), b.annotation(i)
        assert (ra.width, ra.height) == (rb.width, rb.height)
        assert [(o.name, o.difficult) for o in ra.objects] == [(o.name, o.difficult) for o in rb.objects]
        for oa, ob in zip(ra.objects, rb.objects):
            assert max(abs(x - y) for x, y in zip(oa.box, ob.box)) <= tolerance, (i, oa.box, ob.box)
        ta, tb = a.target(i), b.target(i)
        assert torch.equal(ta["labels"], tb["labels"]) and torch.equal(ta["difficult"], tb["difficult"])
        assert torch.allclose(ta["boxes"], tb["boxes"], atol=max(tolerance, 1e-5))
        assert torch.equal(a[i][0], b[i][0])  # the same pixels


def test_voc_to_coco_to_voc_keeps_every_box_within_1e6_px_and_the_difficult_flag(voc, tmp_path):
    convert(voc, "coco", tmp_path / "coco")
    convert(tmp_path / "coco", "voc", tmp_path / "back")
    assert detect_format(tmp_path / "coco") == "coco" and detect_format(tmp_path / "back") == "voc"
    assert dataset_splits(tmp_path / "coco") == ["test", "train", "trainval", "val"]
    assert any(o.difficult for i in range(8) for o in VOCDetection(voc, "train").annotation(i).objects)
    for split in SPLITS:
        original = VOCDetection(voc, split)
        _same_records(original, open_detection(tmp_path / "coco", split), 1e-6)
        _same_records(original, open_detection(tmp_path / "back", split), 1e-6)


def test_yolo_gives_the_voc_targets_and_reads_its_data_yaml(voc, tmp_path):
    convert(voc, "yolo", tmp_path / "yolo")
    assert detect_format(tmp_path / "yolo") == "yolo" and detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"
    for split in SPLITS:
        yolo = open_detection(tmp_path / "yolo" / "data.yaml", split)
        assert isinstance(yolo, YOLODetection)
        voc_split = VOCDetection(voc, split)
        assert yolo.classes == voc_split.classes
        for i in range(len(yolo)):  # YOLO has no difficult flag: compare boxes and labels
            ta, tb = voc_split.target(i), yolo.target(i)
            assert torch.equal(ta["labels"], tb["labels"]) and torch.allclose(ta["boxes"], tb["boxes"], atol=1e-4)


@pytest.mark.parametrize(
    ("line", "expected"),
    [("0 0.5 0.5 0.2", "line 2: 4 values"), ("9 0.5 0.5 0.2 0.2", "line 2: class 9 is outside"),
     ("0 0.5 1.5 0.2 0.2", "line 2: cy = 1.5 is outside [0, 1]"), ("0 a 0.5 0.2 0.2", "line 2: not numbers")],
)  # fmt: skip
def test_a_bad_yolo_line_names_the_file_the_line_and_the_field(voc, tmp_path, line, expected):
    convert(voc, "yolo", tmp_path / "yolo", splits=["val"])
    label = sorted((tmp_path / "yolo" / "labels" / "val").glob("*.txt"))[0]
    label.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    dataset = YOLODetection(tmp_path / "yolo", "val")
    with pytest.raises(AnnotationError, match=re.escape(f"{label}, {expected}")):
        dataset.target(0)


def _single_coco_file(voc, tmp_path):
    convert(voc, "coco", tmp_path / "c", splits=["train"])
    path = tmp_path / "c" / "images" / "train" / "dataset.json"
    shutil.move(tmp_path / "c" / "annotations" / "instances_train.json", path)
    return path


def test_a_single_coco_file_is_one_split_that_val_ratio_divides(voc, tmp_path):
    path = _single_coco_file(voc, tmp_path)
    assert isinstance(open_detection(path, "all"), COCODetection) and len(open_detection(path, "all")) == 8
    with pytest.raises(MissingSplitError, match="--val-ratio"):
        open_detection(path, "train")
    train = open_detection(path, "train", val_ratio=0.25, split_seed=1)
    val = open_detection(path, "val", val_ratio=0.25, split_seed=1)
    assert len(val) == 2 and len(train) == 6 and not set(train.image_ids) & set(val.image_ids)
    assert open_detection(path, "val", val_ratio=0.25, split_seed=1).image_ids == val.image_ids  # a fixed draw
    assert {tuple(drawn_split(8, 0.25, s)[1]) for s in range(5)} != {tuple(drawn_split(8, 0.25, 1)[1])}
    assert train.target(0)["boxes"].shape[1] == 4 and train.splits == ("train",)


def test_coco_crowd_boxes_are_difficult_empty_images_stay_and_bad_ids_are_named(voc, tmp_path):
    path = _single_coco_file(voc, tmp_path)
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]  # image 2: background now
    data["annotations"][0]["iscrowd"] = 1
    path.write_text(json.dumps(data))
    dataset = COCODetection(path, "all")
    assert len(dataset) == 8 and len(dataset.target(1)["boxes"]) == 0
    assert dataset.target(0)["difficult"][0]
    data["annotations"][0]["category_id"] = 77
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"category_id 77, which no entry of 'categories' has"):
        COCODetection(path, "all")


def test_a_plain_folder_of_xml_and_images_is_read_whole_or_split(voc, tmp_path):
    folder = tmp_path / "labelimg"
    folder.mkdir()
    for file in [*(voc / "Annotations").iterdir(), *(voc / "JPEGImages").iterdir()]:
        shutil.copy(file, folder / file.name)
    shutil.copy(voc / "labels.txt", folder / "labels.txt")
    everything = open_detection(folder, "all")
    assert detect_format(folder) == "voc" and len(everything) == 14
    with pytest.raises(MissingSplitError, match="--val-ratio"):
        open_detection(folder, "train")
    val = open_detection(folder, "val", val_ratio=0.2)
    assert len(val) == 3 and torch.equal(val[0][0], everything[everything.image_ids.index(val.image_ids[0])][0])


def test_training_on_a_single_coco_file_with_val_ratio_alone(voc, tmp_path, capsys):
    path = _single_coco_file(voc, tmp_path)
    out = tmp_path / "run"
    config = DetectionTrainConfig(
        data=str(path), val_ratio=0.25, out=str(out), backbone="tiny", min_size=(128,), max_size=192, workers=0,
        no_progress=True, checkpoint_every=0, epochs=1, batch_size=2,
    )  # fmt: skip
    results = train_detector(config)
    assert "training faster_rcnn/tiny on 6 images" in capsys.readouterr().out
    assert results["last_eval"]["split"] == "val" and 0.0 <= results["last_eval"]["map"] <= 1.0
    assert checkpoint.load(out / "last.pt")["class_names"] == list(VOCDetection(voc, "train").classes)
    # --val-split none: the drawn train split still replaces VOC's default "trainval"
    config = dataclasses.replace(config, val_split="none", out=str(tmp_path / "no-val"), iters=1)
    train_detector(config)
    assert "training faster_rcnn/tiny on 6 images" in capsys.readouterr().out


def test_convert_cli(voc, tmp_path, capsys):
    assert convert_main(["--data", str(voc), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    printed = capsys.readouterr().out
    assert "train: 8 images" in printed and "difficult written as boxes" in printed
    assert convert_main(["--data", str(tmp_path / "missing"), "--to", "coco", "--out", str(tmp_path / "c")]) == 2


def test_evaluate_gives_the_same_map_on_every_format_of_the_same_data(voc, tmp_path, capsys):
    convert(voc, "coco", tmp_path / "coco", splits=["test"])
    convert(voc, "yolo", tmp_path / "yolo", splits=["test"])
    results = {}
    for name, data in {"voc": voc, "coco": tmp_path / "coco", "yolo": tmp_path / "yolo"}.items():
        out = tmp_path / f"{name}.json"
        args = ["--checkpoint", DEFAULT_DETECTOR, "--data", str(data), "--split", "test", "--metric", "all"]
        assert evaluate_main([*args, "--workers", "0", "--json", str(out)]) == 0
        results[name] = json.loads(out.read_text())
    assert results["voc"]["map"] > 0.2
    assert results["coco"]["map"] == pytest.approx(results["voc"]["map"], abs=1e-9)
    assert results["coco"]["coco"] == results["voc"]["coco"]  # the same boxes to the bit: the same figures
    # YOLO has no difficult flag: the test split's difficult cross is an ordinary box there, so only the classes
    # without difficult boxes keep their AP.
    for name in ("star", "ring"):
        assert results["yolo"]["coco"]["ap"][name] == pytest.approx(results["voc"]["coco"]["ap"][name], abs=1e-9)
        assert results["yolo"]["ap"][name] == pytest.approx(results["voc"]["ap"][name], abs=1e-9)


def test_without_labels_txt_classes_are_discovered_sorted_and_printed(voc, tmp_path, capsys):
    root = tmp_path / "nolabels"
    shutil.copytree(voc, root)
    (root / "labels.txt").unlink()
    found = VOCDetection(root, "train")
    assert list(found.classes) == sorted(VOCDetection(voc, "train").classes) and "discovered" in found.classes_source
    config = DetectionTrainConfig(data=str(root), train_split="train", val_split="val", out=str(tmp_path / "r"),
                                  backbone="tiny", workers=0, no_progress=True, epochs=1, iters=1)  # fmt: skip
    train_detector(config)
    assert f"(no labels.txt): {list(found.classes)}" in capsys.readouterr().out
    assert checkpoint.load(tmp_path / "r" / "last.pt")["class_names"] == list(found.classes)
