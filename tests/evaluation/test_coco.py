"""COCO metrics (detector.evaluation.coco, by pycocotools) on hand-made cases whose values can be worked out, and
how they combine with the VOC ones (detector.evaluation.detection)."""

from __future__ import annotations

import numpy as np
import pytest

from detector.evaluation.coco import coco_ground_truth, evaluate_coco
from detector.evaluation.detection import evaluate_metric
from detector.evaluation.voc import Detection

CLASSES = ("cat", "dog", "bird")


def _truth():
    # image a: a 100 x 100 cat (large: area >= 96^2) and a difficult dog; image b: a 20 x 20 dog (small: < 32^2).
    return {
        "a": {"boxes": np.array([[0, 0, 100, 100], [150, 150, 200, 200]], float), "labels": np.array([1, 2]),
              "difficult": np.array([False, True])},
        "b": {"boxes": np.array([[10, 10, 30, 30]], float), "labels": np.array([2]), "difficult": np.array([False])},
    }  # fmt: skip


def test_perfect_detections_score_one_and_a_class_without_boxes_none():
    dets = [Detection("a", "cat", 0.9, (0, 0, 100, 100)), Detection("b", "dog", 0.8, (10, 10, 30, 30))]
    r = evaluate_coco(dets, _truth(), CLASSES)
    assert r.map == pytest.approx(1.0) and r.map50 == pytest.approx(1.0) and r.ar100 == pytest.approx(1.0)
    assert r.map_small == pytest.approx(1.0) and r.map_large == pytest.approx(1.0) and r.map_medium is None
    assert r.ap == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0), "bird": None}


def test_an_iou_of_072_is_a_match_at_five_of_the_ten_thresholds():
    # IoU 0.72 matches at 0.50, 0.55, 0.60, 0.65, 0.70 and misses above: AP@[.5:.95] = 5/10, AP50 1, AP75 0.
    dets = [Detection("a", "cat", 0.9, (0, 0, 100, 72)), Detection("b", "dog", 0.8, (10, 10, 30, 30))]
    r = evaluate_coco(dets, _truth(), CLASSES)
    assert r.ap["cat"] == pytest.approx(0.5) and r.ap["dog"] == pytest.approx(1.0)
    assert (r.map50, r.map75) == (pytest.approx(1.0), pytest.approx(0.5))  # the dog's 1, the cat's 0
    assert r.map == pytest.approx(0.75)


def test_a_detection_on_a_difficult_box_is_neither_true_nor_false():
    base = [Detection("a", "cat", 0.9, (0, 0, 100, 100)), Detection("b", "dog", 0.5, (10, 10, 30, 30))]
    on_difficult = [*base, Detection("a", "dog", 0.95, (150, 150, 200, 200))]  # outscores the true dog
    false_positive = [*base, Detection("a", "dog", 0.95, (300, 300, 350, 350))]
    ignored, kept = evaluate_coco(on_difficult, _truth(), CLASSES), evaluate_coco(base, _truth(), CLASSES)
    assert {**ignored.to_json(), "num_detections": 2} == kept.to_json()
    assert evaluate_coco(false_positive, _truth(), CLASSES).ap["dog"] < 1.0


def test_no_detections_is_zero_where_there_are_boxes():
    r = evaluate_coco([], _truth(), CLASSES)
    assert (r.map, r.map_small, r.map_medium, r.map_large) == (0.0, 0.0, None, 0.0)
    assert r.ap == {"cat": 0.0, "dog": 0.0, "bird": None} and r.num_detections == 0


def test_ground_truth_is_a_coco_file_with_xywh_boxes_and_difficult_as_crowd():
    gt = coco_ground_truth(_truth(), CLASSES, {"a": (240, 320)})
    assert gt["images"][0] == {"id": 1, "file_name": "a", "height": 240, "width": 320}
    assert gt["annotations"][1] == {"id": 2, "image_id": 1, "category_id": 2, "bbox": [150.0, 150.0, 50.0, 50.0],
                                    "area": 2500.0, "iscrowd": 1}  # fmt: skip
    assert [c["name"] for c in gt["categories"]] == list(CLASSES)


def test_all_keeps_the_voc_figures_exactly_and_adds_coco_under_its_own_key():
    # cat IoU 0.72 (AP 5/10), dog IoU 0.9 (AP 9/10)
    dets = [Detection("a", "cat", 0.9, (0, 0, 100, 72)), Detection("b", "dog", 0.8, (12, 10, 30, 30))]
    voc = evaluate_metric(dets, _truth(), CLASSES, metric="voc07").to_json()
    both = evaluate_metric(dets, _truth(), CLASSES, metric="all").to_json()
    coco = evaluate_metric(dets, _truth(), CLASSES, metric="coco").to_json()
    assert {k: v for k, v in both.items() if k != "coco"} == voc
    assert both["coco"] == coco and coco["metric"] == "coco" and coco["map"] == pytest.approx((0.5 + 0.9) / 2)
    assert set(coco) >= {"map", "map50", "map75", "map_small", "map_medium", "map_large", "ar100", "ap"}
