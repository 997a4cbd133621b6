"""Tests for detector.evaluation.voc (its plots and the detector.evaluate CLI: tests/cli/test_evaluate.py).

Every expectation is worked out by hand from the PASCAL VOC devkit rules (VOCevaldet.m, VOCap.m).
Boxes in ground truth and Detection records are continuous xyxy; the JSON files use the devkit's
1-based inclusive corners.
"""

import json

import numpy as np
import pytest
import torch

from detector.data.voc import VOCDetection
from detector.evaluation.voc import (
    Detection,
    evaluate_detections,
    ground_truth_from_dataset,
    load_detections_json,
    metric_for_year,
    voc_ap,
)

CLASSES = ("cat", "dog", "bird")
CAT, DOG, BIRD = 1, 2, 3


def gt_image(*boxes, labels, difficult=None):
    n = len(boxes)
    return {
        "boxes": np.array(boxes, dtype=np.float64).reshape(n, 4),
        "labels": np.array(labels, dtype=np.int64),
        "difficult": np.zeros(n, dtype=bool) if difficult is None else np.array(difficult, dtype=bool),
    }


def devkit_iou(bb, bbgt):
    """VOCevaldet.m's overlap of two boxes with 1-based inclusive corners, transcribed."""
    bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
    iw = bi[2] - bi[0] + 1
    ih = bi[3] - bi[1] + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih
    return iw * ih / ua


# ---------------------------------------------------------------------------------------------
# voc_ap
# ---------------------------------------------------------------------------------------------

# 10 positives; detections in score order are T T T F F T:
#   cumulative TP 1 2 3 3 3 4, FP 0 0 0 1 2 2
#   recall    0.1 0.2 0.3 0.3 0.3 0.4
#   precision 1   1   1   3/4 3/5 4/6
RECALL = np.array([1, 2, 3, 3, 3, 4]) / 10
PRECISION = np.array([1, 1, 1, 3 / 4, 3 / 5, 4 / 6])


def test_voc07_ap_reaches_a_recall_of_exactly_0_3():
    # 11-point: p(t) = max precision at recall >= t.
    #   t = 0, 0.1, 0.2, 0.3 -> 1 (recall 0.3 itself has precision 1); t = 0.4 -> 4/6; t >= 0.5 -> 0.
    #   AP = (4 * 1 + 2/3) / 11 = 14/33.
    assert RECALL[2] == 0.3
    assert voc_ap(RECALL, PRECISION, use_07_metric=True) == pytest.approx(14 / 33, abs=1e-12)
    # np.arange(0, 1.1, 0.1) puts 0.30000000000000004 in place of 0.3, so recall 0.3 would miss it:
    # p(0.3) would be 2/3 and AP = (3 + 2/3 + 2/3) / 11 = 13/33.
    assert np.arange(0, 1.1, 0.1)[3] > 0.3
    assert voc_ap(RECALL, PRECISION, use_07_metric=True) != pytest.approx(13 / 33, abs=1e-6)


def test_all_point_ap_on_the_same_curve():
    # mrec = [0, .1, .2, .3, .3, .3, .4, 1], mpre = [0, 1, 1, 1, 3/4, 3/5, 2/3, 0]
    # envelope from the right: [1, 1, 1, 1, 3/4, 2/3, 2/3, 0]
    # recall changes at .1, .2, .3, .4, 1: AP = .1*1 + .1*1 + .1*1 + .1*(2/3) + .6*0 = 11/30.
    assert voc_ap(RECALL, PRECISION, use_07_metric=False) == pytest.approx(11 / 30, abs=1e-12)


def test_voc_ap_of_an_empty_curve_is_zero():
    assert voc_ap(np.array([]), np.array([]), use_07_metric=True) == 0.0
    assert voc_ap(np.array([]), np.array([]), use_07_metric=False) == 0.0


def test_metric_for_year():
    assert [metric_for_year(y) for y in (2007, 2009, 2010, 2012)] == ["voc07", "voc07", "voc12", "voc12"]


# ---------------------------------------------------------------------------------------------
# evaluate_detections: the matching rules
# ---------------------------------------------------------------------------------------------


def test_detection_on_a_difficult_box_is_ignored():
    gt = {"a": gt_image([0, 0, 10, 10], [20, 20, 30, 30], labels=[CAT, CAT], difficult=[False, True])}
    base = [
        Detection("a", "cat", 0.9, [50, 50, 60, 60]),  # FP
        Detection("a", "cat", 0.8, [0, 0, 10, 10]),  # TP
    ]
    on_difficult = Detection("a", "cat", 0.85, [20, 20, 30, 30])
    without = evaluate_detections(base, gt, CLASSES, metric="voc12")
    with_difficult = evaluate_detections(base + [on_difficult], gt, CLASSES, metric="voc12")
    # npos = 1 (the difficult box is no positive). FP then TP: recall [0, 1], precision [0, 1/2], AP 1/2.
    # Were the difficult hit a FP, the TP would come third with precision 1/3 and AP would be 1/3.
    assert without.num_positives["cat"] == with_difficult.num_positives["cat"] == 1
    assert without.ap["cat"] == pytest.approx(0.5)
    assert with_difficult.ap["cat"] == pytest.approx(0.5)
    recall, precision = with_difficult.curves["cat"]
    np.testing.assert_allclose(recall, [0, 0, 1])
    np.testing.assert_allclose(precision, [0, 0, 0.5])


def test_duplicate_detection_is_a_false_positive():
    gt = {"a": gt_image([0, 0, 10, 10], [30, 30, 40, 40], labels=[CAT, CAT])}
    dets = [
        Detection("a", "cat", 0.9, [0, 0, 10, 10]),  # TP on A
        Detection("a", "cat", 0.8, [0, 0, 10, 10]),  # A again: FP
        Detection("a", "cat", 0.7, [30, 30, 40, 40]),  # TP on B
    ]
    result = evaluate_detections(dets, gt, CLASSES, metric="voc12")
    # recall [.5, .5, 1], precision [1, .5, 2/3]; envelope over mrec [0, .5, .5, 1, 1] is [1, 1, 2/3, 2/3, 0]
    # AP = .5 * 1 + .5 * 2/3 = 5/6 (it would be 1 if the duplicate did not count).
    recall, precision = result.curves["cat"]
    np.testing.assert_allclose(recall, [0.5, 0.5, 1])
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3])
    assert result.ap["cat"] == pytest.approx(5 / 6)


def test_detection_whose_best_box_is_taken_is_a_false_positive_even_if_another_box_overlaps():
    box_a, box_b = [0, 0, 10, 10], [0, 2, 10, 12]
    second = [0, 0, 10, 11]
    # IoU(second, A) = 100 / 110 = 0.909, IoU(second, B) = 90 / 120 = 0.75: both >= 0.5, A is best.
    gt = {"a": gt_image(box_a, box_b, labels=[CAT, CAT])}
    dets = [Detection("a", "cat", 0.9, box_a), Detection("a", "cat", 0.8, second)]
    result = evaluate_detections(dets, gt, CLASSES, metric="voc12")
    # The devkit does not fall back to B: TP then FP, recall [.5, .5], AP = .5 (1.0 with a fallback).
    recall, precision = result.curves["cat"]
    np.testing.assert_allclose(recall, [0.5, 0.5])
    np.testing.assert_allclose(precision, [1, 0.5])
    assert result.ap["cat"] == pytest.approx(0.5)


def test_overlap_of_exactly_one_half_matches():
    gt_1based, det_1based = [1, 1, 10, 10], [1, 1, 10, 20]
    # Devkit: inclusive areas 100 and 200, intersection 100, union 200.
    assert devkit_iou(det_1based, gt_1based) == 0.5
    to_continuous = lambda b: [b[0] - 1, b[1] - 1, b[2], b[3]]  # noqa: E731
    gt = {"a": gt_image(to_continuous(gt_1based), labels=[CAT])}
    dets = [Detection("a", "cat", 0.9, to_continuous(det_1based))]
    assert evaluate_detections(dets, gt, CLASSES).ap["cat"] == 1.0
    assert evaluate_detections(dets, gt, CLASSES, iou_threshold=0.5 + 1e-9).ap["cat"] == 0.0


def test_devkit_iou_equals_continuous_iou_on_assorted_boxes():
    rng = np.random.default_rng(0)
    gt_1based = [3, 4, 17, 30]
    gt = {"a": gt_image([2, 3, 17, 30], labels=[CAT])}
    for _ in range(20):
        x1, y1 = rng.integers(1, 15, size=2)
        x2, y2 = x1 + rng.integers(0, 20), y1 + rng.integers(0, 30)
        det_1based = [int(x1), int(y1), int(x2), int(y2)]
        expected = devkit_iou(det_1based, gt_1based)
        for threshold, tp in ((expected, True), (expected + 1e-9, False)):
            if threshold <= 0 or threshold > 1:
                continue
            dets = [Detection("a", "cat", 1.0, [x1 - 1, y1 - 1, x2, y2])]
            ap = evaluate_detections(dets, gt, CLASSES, iou_threshold=threshold).ap["cat"]
            assert ap == (1.0 if tp else 0.0), (det_1based, expected, threshold)


def test_class_without_positives_is_reported_and_left_out_of_the_mean():
    gt = {
        "a": gt_image([0, 0, 10, 10], labels=[CAT]),
        "b": gt_image([0, 0, 10, 10], labels=[DOG], difficult=[True]),  # dog: no positive
    }
    dets = [
        Detection("a", "cat", 0.9, [0, 0, 10, 10]),  # cat AP 1
        Detection("b", "dog", 0.9, [40, 40, 50, 50]),
        Detection("b", "bird", 0.9, [0, 0, 10, 10]),
    ]
    result = evaluate_detections(dets, gt, CLASSES)
    assert result.ap == {"cat": 1.0, "dog": None, "bird": None}
    assert result.classes_without_positives == ["dog", "bird"]
    assert result.map == 1.0  # not (1 + 0 + 0) / 3
    assert result.num_positives == {"cat": 1, "dog": 0, "bird": 0}
    assert result.num_detections == {"cat": 1, "dog": 1, "bird": 1}
    out = result.to_json()
    assert out["ap"] == {"cat": 1.0, "dog": None, "bird": None}
    assert json.loads(json.dumps(out))["ap"]["dog"] is None
    assert "no positives" in result.format_table()


def test_no_class_with_positives_gives_no_map():
    gt = {"a": gt_image(labels=[])}
    result = evaluate_detections([Detection("a", "cat", 0.5, [0, 0, 1, 1])], gt, CLASSES)
    assert result.map is None
    assert result.classes_without_positives == list(CLASSES)
    assert "n/a" in result.format_table().splitlines()[-1]


def test_detection_on_an_unknown_image_is_a_false_positive():
    gt = {"a": gt_image([0, 0, 10, 10], labels=[CAT])}
    dets = [Detection("zzz", "cat", 0.9, [0, 0, 10, 10]), Detection("a", "cat", 0.8, [0, 0, 10, 10])]
    with pytest.warns(UserWarning, match="1 detections refer to 1 images absent"):
        result = evaluate_detections(dets, gt, CLASSES, metric="voc12")
    # FP then TP: precision [0, 1/2] at recall [0, 1]: AP 1/2.
    np.testing.assert_allclose(result.curves["cat"][1], [0, 0.5])
    assert result.ap["cat"] == pytest.approx(0.5)


def test_detection_of_another_class_does_not_affect_this_class():
    gt = {"a": gt_image([0, 0, 10, 10], labels=[CAT]), "b": gt_image([0, 0, 10, 10], labels=[DOG])}
    dets = [
        Detection("a", DOG, 0.99, [0, 0, 10, 10]),  # a dog on the cat: FP for dog only (1-based label)
        Detection("a", "cat", 0.5, [0, 0, 10, 10]),
    ]
    result = evaluate_detections(dets, gt, CLASSES)
    assert result.ap["cat"] == 1.0
    assert result.ap["dog"] == 0.0
    assert result.num_detections == {"cat": 1, "dog": 1, "bird": 0}
    assert result.map == pytest.approx(0.5)


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_a_higher_scored_false_positive_lowers_ap(metric):
    gt = {"a": gt_image([0, 0, 10, 10], [20, 0, 30, 10], labels=[CAT, CAT])}
    tps = [Detection("a", "cat", 0.9, [0, 0, 10, 10]), Detection("a", "cat", 0.8, [20, 0, 30, 10])]
    low_fp = evaluate_detections(tps + [Detection("a", "cat", 0.7, [50, 50, 60, 60])], gt, CLASSES, metric=metric)
    high_fp = evaluate_detections(tps + [Detection("a", "cat", 0.95, [50, 50, 60, 60])], gt, CLASSES, metric=metric)
    # FP last: recall reaches 1 at precision 1, AP 1.
    # FP first: recall [0, .5, 1], precision [0, 1/2, 2/3]; the envelope is 2/3 everywhere up to recall 1,
    # so AP = 2/3 for both metrics (11-point: every threshold sees precision 2/3 at recall 1).
    assert low_fp.ap["cat"] == pytest.approx(1.0)
    assert high_fp.ap["cat"] == pytest.approx(2 / 3)


def test_equal_scores_keep_input_order():
    gt = {"a": gt_image([0, 0, 10, 10], labels=[CAT])}
    tp, fp = Detection("a", "cat", 0.5, [0, 0, 10, 10]), Detection("a", "cat", 0.5, [50, 50, 60, 60])
    # TP first: precision [1, 1/2], AP 1. FP first: precision [0, 1/2], AP 1/2 (as the devkit's stable sort).
    assert evaluate_detections([tp, fp], gt, CLASSES, metric="voc12").ap["cat"] == pytest.approx(1.0)
    assert evaluate_detections([fp, tp], gt, CLASSES, metric="voc12").ap["cat"] == pytest.approx(0.5)


def test_accepts_torch_ground_truth_and_mapping_records():
    gt = {
        "a": {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
            "labels": torch.tensor([CAT]),
            "difficult": torch.tensor([False]),
        }
    }
    dets = [{"image_id": "a", "label": torch.tensor(CAT), "score": 0.3, "box": torch.tensor([0.0, 0.0, 10.0, 10.0])}]
    assert evaluate_detections(dets, gt, CLASSES).ap["cat"] == 1.0


def test_unknown_label_in_records_is_an_error():
    gt = {"a": gt_image([0, 0, 10, 10], labels=[CAT])}
    with pytest.raises(ValueError, match="detection 0: unknown class 'horse'"):
        evaluate_detections([Detection("a", "horse", 0.3, [0, 0, 1, 1])], gt, CLASSES)
    with pytest.raises(ValueError, match=r"detection 0: label must be .* in 1\.\.3, got 0"):
        evaluate_detections([Detection("a", 0, 0.3, [0, 0, 1, 1])], gt, CLASSES)


def test_map_is_the_mean_over_classes_and_table_lists_them():
    gt = {"a": gt_image([0, 0, 10, 10], [20, 0, 30, 10], labels=[CAT, DOG])}
    dets = [
        Detection("a", "cat", 0.9, [0, 0, 10, 10]),  # cat AP 1
        Detection("a", "dog", 0.9, [50, 50, 60, 60]),  # dog: FP then TP -> voc07 AP 1/2
        Detection("a", "dog", 0.8, [20, 0, 30, 10]),
    ]
    result = evaluate_detections(dets, gt, ("cat", "dog"))
    assert result.ap == {"cat": 1.0, "dog": pytest.approx(0.5)}
    assert result.map == pytest.approx(0.75)
    table = result.format_table()
    assert "cat" in table and "100.00" in table and "50.00" in table
    assert table.splitlines()[-1].endswith("75.00%")
    out = result.to_json()
    assert {"metric", "iou", "map", "ap", "num_positives"} <= set(out)
    assert (out["metric"], out["iou"], out["num_positives"]) == ("voc07", 0.5, {"cat": 1, "dog": 1})


# ---------------------------------------------------------------------------------------------
# ground_truth_from_dataset
# ---------------------------------------------------------------------------------------------


class FakeDataset:
    def __init__(self, targets, keep_difficult=True):
        self._targets, self.keep_difficult = targets, keep_difficult

    def __len__(self):
        return len(self._targets)

    def target(self, i):
        return self._targets[i]


def test_ground_truth_from_dataset():
    target = {
        "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 5.0, 5.0]]),
        "labels": torch.tensor([1, 2]),
        "difficult": torch.tensor([False, True]),
        "image_id": "000001",
        "orig_size": torch.tensor([20, 30]),
    }
    gt = ground_truth_from_dataset(FakeDataset([target]))
    assert list(gt) == ["000001"]
    np.testing.assert_array_equal(gt["000001"]["boxes"], [[0, 0, 10, 10], [1, 1, 5, 5]])
    np.testing.assert_array_equal(gt["000001"]["labels"], [1, 2])
    np.testing.assert_array_equal(gt["000001"]["difficult"], [False, True])
    with pytest.raises(ValueError, match="keep_difficult=True"):
        ground_truth_from_dataset(FakeDataset([target], keep_difficult=False))
    with pytest.raises(ValueError, match="'000001' appears twice"):
        ground_truth_from_dataset(FakeDataset([target, target]))


def test_ground_truth_from_voc_dataset_keeps_difficult(voc_root):
    gt = ground_truth_from_dataset(VOCDetection(voc_root, "test"))
    np.testing.assert_array_equal(gt["000001"]["boxes"], [[0, 0, 20, 20], [29, 9, 60, 40]])
    np.testing.assert_array_equal(gt["000001"]["labels"], [1, 2])
    np.testing.assert_array_equal(gt["000001"]["difficult"], [False, True])
    with pytest.raises(ValueError, match="keep_difficult=True"):
        ground_truth_from_dataset(VOCDetection(voc_root, "test", keep_difficult=False))


# ---------------------------------------------------------------------------------------------
# load_detections_json
# ---------------------------------------------------------------------------------------------


def test_load_detections_json_converts_one_based_boxes(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": "000001", "label": "dog", "score": 0.93, "box": [1, 1, 10, 20]}]))
    assert load_detections_json(path, CLASSES) == [Detection("000001", "dog", 0.93, (0.0, 0.0, 10.0, 20.0))]


GOOD = {"image_id": "000001", "label": "dog", "score": 0.5, "box": [1, 1, 10, 10]}


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"detections": []}), "expected a JSON list of detections, got dict"),
        (json.dumps([GOOD, 3]), "entry 1: expected an object"),
        (json.dumps([GOOD, {k: v for k, v in GOOD.items() if k != "score"}]), 'entry 1: missing field "score"'),
        (json.dumps([GOOD, {**GOOD, "label": "horse"}]), "entry 1: field \"label\" is 'horse'"),
        (json.dumps([GOOD, {**GOOD, "box": [1, 2, 3]}]), 'entry 1: field "box" must be a list'),
        (json.dumps([GOOD, {**GOOD, "box": [1, 2, "3", 4]}]), 'entry 1: field "box" must hold finite numbers'),
        (json.dumps([GOOD, {**GOOD, "score": "high"}]), 'entry 1: field "score" must be a finite number'),
        (json.dumps([GOOD, {**GOOD, "image_id": 1}]), 'entry 1: field "image_id" must be a string'),
    ],
)
def test_load_detections_json_errors_name_file_entry_and_field(tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_detections_json(path, CLASSES)
    assert str(path) in str(info.value)
    assert message in str(info.value)
