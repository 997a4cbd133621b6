"""Running a predictor over a whole dataset (detector.inference.evaluate): classifier accuracy with a hand-made
classifier whose every answer is known (softmax regression that names the brightest colour channel), the test-time
views it feeds, detection mAP of every detector kind with one report schema, and COCO metrics as pycocotools gives
them."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from detector.core import checkpoint
from detector.data.synth import CLASSES
from detector.evaluation.report import report_detection
from detector.inference.evaluate import (
    evaluate_classifier,
    evaluate_classifier_checkpoint,
    evaluate_detector_checkpoint,
    evaluate_saved_detections,
)
from detector.inference.predictor import ClassificationPredictor
from tests.support.checkpoints import CHANNEL_CLASSES, CHANNEL_SIZE, KINDS
from tests.support.paths import DEFAULT_DETECTOR

CPU = torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Classification (the channel classifier and its colour folders: tests/conftest.py)


def test_accuracy_per_class_and_confusion_are_counted(channel_classifier, colour_folders):
    result = evaluate_classifier_checkpoint(channel_classifier, colour_folders, "test")
    assert result["images"] == 8
    assert result["top1"] == pytest.approx(7 / 8)
    assert result["topk"] == 3 and result["top5"] == 1.0  # top-3 of 3 classes
    assert result["per_class"] == {
        "red": {"accuracy": 0.75, "correct": 3, "images": 4},
        "green": {"accuracy": 1.0, "correct": 2, "images": 2},
        "blue": {"accuracy": 1.0, "correct": 2, "images": 2},
    }
    assert result["confusion"] == [[3, 1, 0], [0, 2, 0], [0, 0, 2]]  # rows true, columns predicted
    assert result["classes"] == CHANNEL_CLASSES and result["input_size"] == CHANNEL_SIZE and result["preset"] == "none"


def test_ten_crop_views_of_flat_images_change_nothing(channel_classifier, colour_folders):
    # Every crop and mirror of a one-colour image is the same image: the averaged answer is the plain one.
    result = evaluate_classifier_checkpoint(channel_classifier, colour_folders, "test", tta="10crop")
    assert result["tta"] == "10crop" and result["top1"] == pytest.approx(7 / 8)
    assert result["confusion"] == [[3, 1, 0], [0, 2, 0], [0, 0, 2]]
    with pytest.raises(ValueError, match="multiscale"):  # softmax takes only 8 x 8
        evaluate_classifier_checkpoint(channel_classifier, colour_folders, "test", tta="multiscale")


def test_a_half_precision_export_scores_the_same(channel_classifier, colour_folders, tmp_path):
    half = checkpoint.export(channel_classifier, tmp_path / "half.pt", half=True)
    assert checkpoint.load(half)["model"]["head.weight"].dtype == torch.float16
    a = evaluate_classifier_checkpoint(channel_classifier, colour_folders, "test")
    b = evaluate_classifier_checkpoint(half, colour_folders, "test")
    assert b["confusion"] == a["confusion"]
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)


class _ShapeSpy(nn.Module):
    """Records its input shapes; the logits favour class 1 whatever the input."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return torch.tensor([0.0, 1.0, 0.5]).expand(len(x), 3)


def test_tta_view_sizes_follow_the_input_size():
    dataset = [(torch.rand(3, 73, 73), 1), (torch.rand(3, 73, 73), 2)]
    spy = _ShapeSpy()
    predictor = ClassificationPredictor(spy, preset="basic", input_size=64, name="convnet", device=CPU)
    result = evaluate_classifier(predictor, dataset, tta="10crop")
    assert spy.shapes == [(10, 3, 64, 64)] * 2
    assert (
        result["top1"] == 0.5
        and result["top5"] == 1.0
        and result["topk"] == 3
        and result["confusion"] == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    )
    spy.shapes.clear()
    evaluate_classifier(predictor, dataset[:1], tta="multiscale")
    assert spy.shapes == [(1, 3, 64, 64), (1, 3, 73, 73), (1, 3, 82, 82), (1, 3, 91, 91)]
    spy.shapes.clear()
    evaluate_classifier(predictor, dataset, tta="none", batch_size=4)
    assert spy.shapes == [(2, 3, 73, 73)]


# --------------------------------------------------------------------------------------------
# Detection


def test_the_three_eval_outputs_share_one_schema(kind_checkpoints, tiny_voc, tmp_path, capsys):
    reports = {}
    for kind, path in kind_checkpoints.items():
        out = tmp_path / f"{kind}.json"
        result, run = evaluate_detector_checkpoint(path, tiny_voc, "test", workers=0)
        report_detection(result, json_path=out, run=run)
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


def test_evaluate_checkpoint_matches_evaluating_its_saved_detections(tiny_checkpoint, tiny_voc, tmp_path, capsys):
    """Both ways of evaluating share one code path: evaluating the model's own DETS.json gives the same AP."""
    dets = tmp_path / "dets.json"
    result, run = evaluate_detector_checkpoint(
        tiny_checkpoint, tiny_voc, "test", metric="voc12", workers=0, save_detections=dets
    )
    report_detection(result, json_path=tmp_path / "a.json", run=run)
    report_detection(evaluate_saved_detections(dets, tiny_voc, "test", metric="voc12"), json_path=tmp_path / "b.json")
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["ap"].keys() == b["ap"].keys()
    for name in a["ap"]:
        assert a["ap"][name] == pytest.approx(b["ap"][name], abs=1e-3)
    assert len(json.loads(dets.read_text())) > 0
    assert "mAP" in capsys.readouterr().out


def test_coco_metrics_are_what_pycocotools_gives_on_the_saved_files(tiny_voc, tmp_path):
    """--metric all --save-detections: COCOeval run by hand on DETS.coco.json and DETS.coco_gt.json gives the reported
    numbers to 1e-9, and the VOC part is the plain voc07 evaluation."""
    dets = tmp_path / "dets.json"
    result, _ = evaluate_detector_checkpoint(
        DEFAULT_DETECTOR, tiny_voc, "test", metric="all", workers=0, save_detections=dets, progress=False
    )
    voc, _ = evaluate_detector_checkpoint(DEFAULT_DETECTOR, tiny_voc, "test", workers=0, progress=False)
    assert {k: v for k, v in result.to_json().items() if k != "coco"} == voc.to_json()
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(tmp_path / "dets.coco_gt.json"))
        by_hand = COCOeval(truth, truth.loadRes(str(tmp_path / "dets.coco.json")), iouType="bbox")
        by_hand.evaluate()
        by_hand.accumulate()
        by_hand.summarize()
    reported = result.to_json()["coco"]
    assert reported["map"] > 0.2  # a trained model: the comparison is not between two zeros
    for i, key in enumerate(("map", "map50", "map75", "map_small", "map_medium", "map_large")):
        expected = by_hand.stats[i]
        assert (reported[key] is None and expected == -1) or abs(reported[key] - expected) <= 1e-9, key
    assert abs(reported["ar100"] - by_hand.stats[8]) <= 1e-9
    assert len(json.loads((tmp_path / "dets.coco.json").read_text())) == len(json.loads(dets.read_text()))
