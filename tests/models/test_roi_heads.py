"""Tests for detector.models.roi_heads: proposal sampling, losses, pooling and the inference output."""

import math

import pytest
import torch

from detector.models.backbones import tiny_backbone
from detector.models.roi_heads import RoIHeads, RoIHeadsConfig

K = 3  # object classes


def _heads(**overrides):
    torch.manual_seed(0)
    backbone = tiny_backbone(width=8)
    return RoIHeads(backbone, K, RoIHeadsConfig(**overrides)), backbone.out_channels


def _features(n, channels, h, w):
    """A random feature map for an h x w (padded) image at the tiny backbone's stride."""
    stride = tiny_backbone(width=8).stride
    return torch.randn(n, channels, h // stride, w // stride)


GT = {"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 100.0, 100.0]]), "labels": torch.tensor([2, 3])}
# Proposal -> (IoU with its best box, expected label).
PROPOSALS = {
    (10.0, 10.0, 50.0, 50.0): 2,  # 1.0 with box 0
    (12.0, 10.0, 50.0, 50.0): 2,  # 38 * 40 / 1600 = 0.95
    (10.0, 10.0, 50.0, 30.0): 2,  # 800 / 1600 = 0.5 exactly: foreground (>= fg_iou)
    (10.0, 10.0, 50.0, 29.0): 0,  # 760 / 1600 = 0.475: background
    (30.0, 10.0, 70.0, 50.0): 0,  # 800 / 2400 = 1/3
    (60.0, 60.0, 100.0, 100.0): 3,  # 1.0 with box 1
    (0.0, 0.0, 5.0, 5.0): 0,  # no overlap
}


def test_sample_proposals_labels_by_iou_and_adds_ground_truth():
    heads, _ = _heads()
    rois, labels, regression = heads.sample_proposals([torch.tensor(list(PROPOSALS))], [GT])
    (rois,) = rois
    assert rois.shape == (len(PROPOSALS) + 2, 4)  # all sampled: 9 < 128, and 25% of 128 = 32 > 5 foreground
    assert labels.dtype == torch.int64
    got = sorted((tuple(r.tolist()), int(label)) for r, label in zip(rois, labels))
    expected = sorted(list(PROPOSALS.items()) + [((10.0, 10.0, 50.0, 50.0), 2), ((60.0, 60.0, 100.0, 100.0), 3)])
    assert got == expected
    # Background RoIs regress nowhere that matters; foreground ones towards their box with weights (10, 10, 5, 5):
    # (12, 10, 50, 50) -> (10, 10, 50, 50): centre 31 -> 30 over width 38, width 38 -> 40.
    row = [i for i, r in enumerate(rois.tolist()) if r == [12.0, 10.0, 50.0, 50.0]][0]
    torch.testing.assert_close(regression[row], torch.tensor([10 * -1 / 38, 0.0, 5 * math.log(40 / 38), 0.0]))


def test_sample_proposals_bg_iou_low_ignores_tiny_overlaps():
    heads, _ = _heads(bg_iou_low=0.1)
    rois, labels, _ = heads.sample_proposals([torch.tensor(list(PROPOSALS))], [GT])
    kept = {tuple(r) for r in rois[0].tolist()}
    assert (0.0, 0.0, 5.0, 5.0) not in kept  # IoU 0 < 0.1: neither foreground nor background
    assert len(kept) == len(PROPOSALS) - 1
    assert rois[0].shape[0] == len(PROPOSALS) - 1 + 2


def test_sample_proposals_without_adding_gt():
    heads, _ = _heads(add_gt_as_proposals=False)
    rois, _, _ = heads.sample_proposals([torch.tensor(list(PROPOSALS))], [GT])
    assert rois[0].shape[0] == len(PROPOSALS)


def test_sample_proposals_at_most_quarter_foreground_of_128():
    heads, _ = _heads()
    g = torch.Generator().manual_seed(0)
    # 100 small shifts of box 0 (IoU > 0.8) and 300 boxes far from both objects.
    shift = torch.rand(100, 2, generator=g) * 3
    fg = torch.tensor([10.0, 10.0, 50.0, 50.0]) + torch.cat([shift, shift], dim=1)
    xy = 110 + torch.rand(300, 2, generator=g) * 50
    bg = torch.cat([xy, xy + 20], dim=1)
    rois, labels, _ = heads.sample_proposals([torch.cat([fg, bg])], [GT])
    assert rois[0].shape[0] == 128
    assert (labels > 0).sum() == 32  # 102 foreground available (with the 2 boxes), 25% of 128 taken
    assert (labels == 0).sum() == 96


def test_sample_proposals_per_image_order():
    heads, _ = _heads()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    props = torch.tensor(list(PROPOSALS))
    rois, labels, regression = heads.sample_proposals([props, props[:3]], [GT, empty])
    assert [len(r) for r in rois] == [9, 3]
    assert labels.shape == (12,) and regression.shape == (12, 4)
    assert (labels[9:] == 0).all()  # the image without objects: all background


def test_image_without_objects_gives_zero_box_loss():
    heads, channels = _heads()
    heads.train()
    features = _features(1, channels, 128, 128)
    proposals = [torch.tensor([[0.0, 0.0, 40.0, 40.0], [20.0, 30.0, 100.0, 90.0], [64.0, 64.0, 128.0, 128.0]])]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    detections, losses = heads(features, proposals, [(128, 128)], [empty])
    assert detections == []
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    assert losses["loss_box_reg"].item() == 0.0
    assert torch.isfinite(losses["loss_classifier"])
    # Scores start near uniform over K + 1 classes: cross-entropy about log(4).
    assert abs(losses["loss_classifier"].item() - math.log(K + 1)) < 0.1


def test_losses_hand_computed():
    heads, _ = _heads(smooth_l1_sigma=1.0)
    class_logits = torch.zeros(2, K + 1)
    deltas = torch.zeros(2, 4 * (K + 1))
    deltas[0, 4 * 2 : 4 * 3] = torch.tensor([2.0, 0.0, 0.0, 0.0])  # class 2's deltas of RoI 0
    deltas[0, 4 * 1] = 100.0  # another class's deltas: must not count
    labels = torch.tensor([2, 0])
    regression = torch.zeros(2, 4)
    losses = heads.losses(class_logits, deltas, labels, regression)
    torch.testing.assert_close(losses["loss_classifier"], torch.tensor(math.log(4.0)))
    # smooth L1 (beta 1) of 2 = 1.5, divided by the 2 sampled RoIs.
    torch.testing.assert_close(losses["loss_box_reg"], torch.tensor(0.75))


@pytest.mark.parametrize("pooler", ["roi_pool", "roi_align"])
def test_inference_output_schema(pooler):
    heads, channels = _heads(pooler=pooler, detections_per_image=5, score_threshold=0.05)
    heads.eval()
    torch.manual_seed(2)
    features = _features(2, channels, 128, 160)
    xy = torch.rand(30, 2) * 90
    proposals = [torch.cat([xy, xy + 10 + torch.rand(30, 2) * 30], dim=1), torch.tensor([[5.0, 5.0, 60.0, 70.0]])]
    sizes = [(120, 150), (100, 100)]
    with torch.no_grad():
        detections, losses = heads(features, proposals, sizes)
    assert losses == {}
    assert len(detections) == 2
    for det, (h, w) in zip(detections, sizes):
        assert set(det) == {"boxes", "labels", "scores"}
        d = len(det["scores"])
        assert 0 < d <= 5
        assert det["boxes"].shape == (d, 4)
        assert det["labels"].dtype == torch.int64
        assert ((det["labels"] >= 1) & (det["labels"] <= K)).all()
        assert (det["scores"] > 0.05).all()
        assert torch.equal(det["scores"], det["scores"].sort(descending=True).values)
        assert (det["boxes"][:, 2] <= w).all() and (det["boxes"][:, 3] <= h).all() and (det["boxes"] >= 0).all()


def test_inference_score_threshold_can_remove_everything():
    heads, channels = _heads(score_threshold=0.9)
    heads.eval()
    with torch.no_grad():
        (det,), _ = heads(_features(1, channels, 128, 128), [torch.tensor([[0.0, 0.0, 50.0, 50.0]])], [(128, 128)])
    # Untrained scores are about 1 / (K + 1), far below 0.9.
    assert det["boxes"].shape == (0, 4) and det["labels"].shape == (0,) and det["scores"].shape == (0,)


@pytest.mark.parametrize("pooler", ["roi_pool", "roi_align"])
def test_poolers_output_shape_and_constant_map(pooler):
    heads, channels = _heads(pooler=pooler)
    features = torch.full_like(_features(1, channels, 128, 128), 3.0)
    pooled = heads.pool(features, [torch.tensor([[16.0, 16.0, 96.0, 80.0], [0.0, 0.0, 128.0, 128.0]])])
    assert pooled.shape == (2, channels, 7, 7)
    torch.testing.assert_close(pooled, torch.full_like(pooled, 3.0))


def test_roi_pool_and_align_differ_on_a_ramp():
    # On a horizontal ramp, max pooling (roi_pool) reads each bin's largest value, bilinear averaging (align) less.
    pool_heads, channels = _heads(pooler="roi_pool")
    align_heads, _ = _heads(pooler="roi_align")
    n = _features(1, channels, 128, 128).shape[-1]
    ramp = torch.arange(float(n)).repeat(n, 1)[None, None].expand(1, channels, n, n).contiguous()
    roi = [torch.tensor([[0.0, 0.0, 128.0, 128.0]])]  # the whole map
    pooled = pool_heads.pool(ramp, roi)
    aligned = align_heads.pool(ramp, roi)
    assert pooled[0, 0, 0, -1] == n - 1 and pooled[0, 0, 0, 0] >= 1
    assert (pooled >= aligned - 1e-6).all() and not torch.allclose(pooled, aligned)


def test_unknown_pooler_raises():
    with pytest.raises(ValueError, match="pooler"):
        _heads(pooler="roi_max")
