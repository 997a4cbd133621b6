"""Tests for detector.models.boxes: box coding, IoU matching, balanced sampling."""

import math

import pytest
import torch

from detector.models.boxes import BBOX_XFORM_CLIP, BoxCoder, Matcher, sample_balanced


def _random_boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator) * 100
    wh = torch.rand(n, 2, generator=generator) * 80 + 2
    return torch.cat([xy, xy + wh], dim=1)


# --- BoxCoder -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_round_trip(weights):
    g = torch.Generator().manual_seed(0)
    boxes, reference = _random_boxes(50, g), _random_boxes(50, g)
    coder = BoxCoder(weights)
    decoded = coder.decode(coder.encode(boxes, reference), reference)
    torch.testing.assert_close(decoded, boxes, atol=1e-4, rtol=0)


def test_encode_hand_computed():
    # reference centre (5, 5), 10 x 10; box centre (10, 10), 10 x 20.
    reference = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    box = torch.tensor([[5.0, 0.0, 15.0, 20.0]])
    deltas = BoxCoder((10.0, 10.0, 5.0, 5.0)).encode(box, reference)
    expected = torch.tensor([[10 * 0.5, 10 * 0.5, 5 * math.log(1.0), 5 * math.log(2.0)]])
    torch.testing.assert_close(deltas, expected)


def test_encode_identical_boxes_is_zero():
    boxes = torch.tensor([[3.0, 4.0, 30.0, 17.0], [0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(BoxCoder((10.0, 10.0, 5.0, 5.0)).encode(boxes, boxes), torch.zeros(2, 4))


def test_decode_hand_computed():
    # dx = 0.5 moves the centre by half a width; dw = log 2 doubles the width.
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    deltas = torch.tensor([[0.5, 0.0, math.log(2.0), 0.0]])
    boxes = BoxCoder().decode(deltas, reference)
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 20.0, 20.0]]))


def test_decode_class_specific_deltas():
    g = torch.Generator().manual_seed(1)
    n, c = 6, 4
    reference = _random_boxes(n, g)
    deltas = torch.randn(n, 4 * c, generator=g) * 0.3
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    boxes = coder.decode(deltas, reference)
    assert boxes.shape == (n, 4 * c)
    # Each class's 4 columns decode exactly as that class's deltas alone would.
    for k in range(c):
        torch.testing.assert_close(boxes[:, 4 * k : 4 * k + 4], coder.decode(deltas[:, 4 * k : 4 * k + 4], reference))


def test_decode_clamps_huge_size_deltas():
    reference = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    deltas = torch.tensor([[0.0, 0.0, 100.0, 1000.0]])
    boxes = BoxCoder().decode(deltas, reference)
    assert torch.isfinite(boxes).all()
    # Clamped at log(1000 / 16): a 16 px box grows to at most 1000 px, centred where it was.
    assert BBOX_XFORM_CLIP == pytest.approx(math.log(1000 / 16))
    torch.testing.assert_close(boxes, torch.tensor([[8 - 500.0, 8 - 500.0, 8 + 500.0, 8 + 500.0]]))


# --- Matcher --------------------------------------------------------------------------------------------
IOU = torch.tensor(
    [
        # P0    P1    P2    P3    P4
        [0.90, 0.50, 0.20, 0.00, 0.65],  # G0
        [0.10, 0.60, 0.25, 0.35, 0.30],  # G1
    ]
)


def test_matcher_thresholds():
    matches = Matcher(0.7, 0.3)(IOU)
    # P0: 0.90 >= 0.7 -> G0; P1: 0.60 (G1) between; P2: 0.25 < 0.3 below; P3: 0.35 between; P4: 0.65 between.
    assert matches.tolist() == [0, Matcher.BETWEEN, Matcher.BELOW, Matcher.BETWEEN, Matcher.BETWEEN]
    assert matches.dtype == torch.int64


def test_matcher_high_threshold_is_inclusive_low_exclusive():
    iou = torch.tensor([[0.7, 0.3, 0.29999]])
    assert Matcher(0.7, 0.3)(iou).tolist() == [0, Matcher.BETWEEN, Matcher.BELOW]


def test_matcher_picks_best_ground_truth():
    iou = torch.tensor([[0.75, 0.2], [0.8, 0.9]])
    assert Matcher(0.7, 0.3)(iou).tolist() == [1, 1]


def test_matcher_low_quality_matches_give_each_gt_its_best_prediction():
    matches = Matcher(0.7, 0.3, allow_low_quality_matches=True)(IOU)
    # G0's best is P0 (already positive); G1's best is P1 (0.60), promoted from BETWEEN.
    assert matches.tolist() == [0, 1, Matcher.BELOW, Matcher.BETWEEN, Matcher.BETWEEN]


def test_matcher_low_quality_matches_include_ties():
    iou = torch.tensor(
        [
            [0.90, 0.00, 0.00, 0.00],
            [0.00, 0.40, 0.10, 0.40],  # G1's best IoU 0.40 is shared by P1 and P3
        ]
    )
    assert Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).tolist() == [0, 1, Matcher.BELOW, 1]
    assert Matcher(0.7, 0.3)(iou).tolist() == [0, Matcher.BETWEEN, Matcher.BELOW, Matcher.BETWEEN]


def test_matcher_low_quality_ignores_gt_without_overlap():
    iou = torch.tensor([[0.0, 0.0, 0.0]])
    assert Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).tolist() == [Matcher.BELOW] * 3


def test_matcher_low_min_ignores_tiny_overlaps():
    iou = torch.tensor([[0.05, 0.1, 0.3, 0.5, 0.0]])
    # Fast R-CNN: fg >= 0.5, bg in [0.1, 0.5), below 0.1 ignored.
    assert Matcher(0.5, 0.5, low_min=0.1)(iou).tolist() == [
        Matcher.BETWEEN,
        Matcher.BELOW,
        Matcher.BELOW,
        0,
        Matcher.BETWEEN,
    ]
    assert Matcher(0.5, 0.5)(iou).tolist() == [Matcher.BELOW, Matcher.BELOW, Matcher.BELOW, 0, Matcher.BELOW]


def test_matcher_without_ground_truth_is_all_below():
    assert Matcher(0.7, 0.3)(torch.zeros(0, 4)).tolist() == [Matcher.BELOW] * 4


def test_matcher_rejects_low_above_high():
    with pytest.raises(ValueError, match="low threshold"):
        Matcher(0.3, 0.7)


# --- sample_balanced ------------------------------------------------------------------------------------
def _labels(num_pos, num_neg, num_ignored=50):
    labels = torch.cat([torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(num_ignored)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize(
    ("num_pos", "num_neg", "expected"),
    [(10, 1000, (10, 246)), (200, 1000, (128, 128)), (200, 20, (128, 20)), (0, 5, (0, 5))],
)
def test_sample_balanced_counts(num_pos, num_neg, expected):
    labels = _labels(num_pos, num_neg)
    pos, neg = sample_balanced(labels, 256, 0.5, generator=torch.Generator().manual_seed(0))
    assert (pos.numel(), neg.numel()) == expected
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert pos.unique().numel() == pos.numel() and neg.unique().numel() == neg.numel()


def test_sample_balanced_fraction_quarter():
    labels = _labels(100, 300)
    pos, neg = sample_balanced(labels, 128, 0.25)
    assert (pos.numel(), neg.numel()) == (32, 96)


def test_sample_balanced_is_random_but_seedable():
    labels = _labels(200, 1000)
    a = sample_balanced(labels, 256, 0.5, generator=torch.Generator().manual_seed(3))
    b = sample_balanced(labels, 256, 0.5, generator=torch.Generator().manual_seed(3))
    c = sample_balanced(labels, 256, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
