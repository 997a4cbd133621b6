"""Tests for detector.models.rpn: anchor targets, losses, proposal filtering.

Most tests use one 32 px square anchor per cell at stride 16, so anchor (i, j) is
[16 j - 8, 16 i - 8, 16 j + 24, 16 i + 24] and its index is i * Wf + j.
"""

import torch
from torchvision.ops import box_iou

from detector.models.rpn import RegionProposalNetwork, RPNConfig


def _rpn(**overrides):
    torch.manual_seed(0)
    cfg = RPNConfig(anchor_sizes=(32.0,), aspect_ratios=(1.0,), channels=16, **overrides)
    return RegionProposalNetwork(in_channels=8, config=cfg, stride=16)


def _anchor(i, j):
    return [16.0 * j - 8, 16.0 * i - 8, 16.0 * j + 24, 16.0 * i + 24]


def _target(*boxes):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


def _border(hf, wf):
    """[Hf, Wf] True where the anchor crosses a (16 Hf x 16 Wf) image's border: the outer ring of cells."""
    mask = torch.zeros(hf, wf, dtype=torch.bool)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask


def test_anchor_equal_to_gt_is_positive_neighbours_ignored_rest_negative():
    rpn = _rpn()
    anchors = rpn.anchor_generator((8, 8))  # a 128 x 128 image
    labels, targets = rpn.assign_targets(anchors, [_target(_anchor(3, 3))], [(128, 128)])
    grid = labels[0].reshape(8, 8)
    # Only 64 anchors: all non-ignored ones are sampled.
    assert grid[3, 3] == 1
    assert torch.equal(targets[0, 3 * 8 + 3], torch.zeros(4))  # the anchor already is the box
    # Horizontal / vertical neighbours overlap the box by 16 x 32: IoU 512 / 1536 = 1/3, in [0.3, 0.7): ignored.
    for i, j in [(2, 3), (4, 3), (3, 2), (3, 4)]:
        assert grid[i, j] == -1
    # Diagonal neighbours: IoU 256 / 1792 = 0.14 < 0.3: negative, as are anchors that do not touch it.
    for i, j in [(2, 2), (4, 4), (2, 4), (4, 2), (1, 1), (6, 6), (1, 6)]:
        assert grid[i, j] == 0
    # Anchors crossing the border are ignored.
    assert (grid[_border(8, 8)] == -1).all()
    assert (grid == 1).sum() == 1
    assert (grid == 0).sum() == 36 - 1 - 4  # inside anchors minus the positive and its 4 ignored neighbours


def test_border_anchor_cannot_be_positive_best_inside_anchor_is():
    rpn = _rpn()
    anchors = rpn.anchor_generator((8, 8))
    # The box is exactly the corner anchor (0, 0), which crosses the border. The best inside anchor is (1, 1):
    # IoU 16 * 16 / (2 * 1024 - 256) = 0.14, made positive by the "best anchor for each box" rule.
    labels, targets = rpn.assign_targets(anchors, [_target(_anchor(0, 0))], [(128, 128)])
    grid = labels[0].reshape(8, 8)
    assert grid[0, 0] == -1
    assert grid[1, 1] == 1
    assert (grid == 1).sum() == 1
    # Target from anchor (1,1) (centre 24, 24) to the box (centre 8, 8), both 32 wide: dx = dy = -16 / 32.
    torch.testing.assert_close(targets[0, 9], torch.tensor([-0.5, -0.5, 0.0, 0.0]))


def test_allowed_border_lets_crossing_anchors_take_part():
    rpn = _rpn(allowed_border=8.0)  # the ring anchors cross by exactly 8 px
    anchors = rpn.anchor_generator((8, 8))
    labels, _ = rpn.assign_targets(anchors, [_target(_anchor(0, 0))], [(128, 128)])
    grid = labels[0].reshape(8, 8)
    assert grid[0, 0] == 1
    # Every anchor takes part now; only (0, 1) and (1, 0) (IoU 1/3 with the box) are ignored.
    assert (grid == -1).sum() == 2
    assert grid[0, 1] == -1 and grid[1, 0] == -1


def test_border_uses_each_images_own_size():
    rpn = _rpn()
    anchors = rpn.anchor_generator((8, 8))
    # The second image is only 64 px wide inside the padded 128 x 128 batch: anchors past x = 64 are ignored.
    labels, _ = rpn.assign_targets(anchors, [_target(_anchor(3, 3)), _target(_anchor(3, 2))], [(128, 128), (128, 64)])
    second = labels[1].reshape(8, 8)
    assert (second[:, 3:] == -1).all()  # anchor (i, 3) ends at x = 72 > 64
    assert second[3, 2] == 1
    assert labels[0].reshape(8, 8)[3, 5] == 0


def test_sampling_at_most_256_and_half_positive():
    rpn = _rpn()
    anchors = rpn.anchor_generator((32, 32))  # 512 x 512, 900 inside anchors
    # 200 boxes equal to the anchors of rows 1-10, columns 1-20: 200 positives, far more than 128.
    many = _target(*[_anchor(i, j) for i in range(1, 11) for j in range(1, 21)])
    one = _target(_anchor(20, 20))
    labels, _ = rpn.assign_targets(anchors, [many, one], [(512, 512), (512, 512)])
    assert ((labels[0] == 1).sum(), (labels[0] == 0).sum()) == (128, 128)
    assert ((labels[1] == 1).sum(), (labels[1] == 0).sum()) == (1, 255)


def test_image_without_objects_samples_only_negatives_and_zero_box_loss():
    rpn = _rpn()
    rpn.train()
    features = torch.randn(1, 8, 32, 32)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    anchors = rpn.anchor_generator((32, 32))
    labels, _ = rpn.assign_targets(anchors, [empty], [(512, 512)])
    assert (labels == 1).sum() == 0
    assert (labels == 0).sum() == 256
    _, losses = rpn(features, [(512, 512)], [1.0], [empty])
    assert set(losses) == {"loss_rpn_objectness", "loss_rpn_box"}
    assert losses["loss_rpn_box"].item() == 0.0
    # Objectness logits start near 0: BCE of all-negative labels is about log 2.
    assert abs(losses["loss_rpn_objectness"].item() - 0.6931) < 0.05


def test_losses_hand_computed_for_a_known_head_output():
    rpn = _rpn()
    objectness = torch.zeros(1, 4)
    deltas = torch.zeros(1, 4, 4)
    labels = torch.tensor([[1.0, 0.0, -1.0, 0.0]])
    regression = torch.zeros(1, 4, 4)
    regression[0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # smooth L1 (beta 1/9) of 1 = 1 - 0.5 / 9
    losses = rpn.losses(objectness, deltas, labels, regression)
    torch.testing.assert_close(losses["loss_rpn_objectness"], torch.tensor(0.693147), atol=1e-5, rtol=0)
    torch.testing.assert_close(losses["loss_rpn_box"], torch.tensor((1 - 0.5 / 9) / 3))  # over 3 sampled anchors


def _spread_head(rpn):
    # Larger random head weights than the N(0, 0.01) init so proposals move, overlap and leave the image.
    torch.manual_seed(1)
    for layer in (rpn.head.conv, rpn.head.objectness, rpn.head.deltas):
        torch.nn.init.normal_(layer.weight, std=0.3)


def test_eval_proposals_clipped_capped_and_nmsed():
    torch.manual_seed(0)
    cfg = RPNConfig(
        anchor_sizes=(32.0, 64.0), aspect_ratios=(0.5, 1.0, 2.0), channels=16, post_nms_top_n_test=20, min_size=2.0
    )
    rpn = RegionProposalNetwork(in_channels=8, config=cfg, stride=16).eval()
    _spread_head(rpn)
    features = torch.randn(2, 8, 8, 10)  # padded batch 128 x 160
    sizes = [(100, 150), (128, 90)]
    with torch.no_grad():
        proposals, losses = rpn(features, sizes, [1.0, 1.0])
    assert losses == {}
    assert len(proposals) == 2
    for boxes, (h, w) in zip(proposals, sizes):
        assert boxes.shape[1] == 4
        assert 0 < len(boxes) <= 20
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert ((boxes[:, 2] - boxes[:, 0]) >= 2.0).all() and ((boxes[:, 3] - boxes[:, 1]) >= 2.0).all()
        iou = box_iou(boxes, boxes)
        iou.fill_diagonal_(0)
        assert iou.max() <= 0.7
    # Some proposal of the wider first image reaches past the second image's width: clipping is per image.
    assert proposals[0][:, 2].max() > 90


def test_train_mode_uses_train_proposal_count():
    cfg = RPNConfig(
        anchor_sizes=(32.0, 64.0), channels=16, post_nms_top_n_train=7, post_nms_top_n_test=50, min_size=2.0
    )
    rpn = RegionProposalNetwork(in_channels=8, config=cfg, stride=16)
    _spread_head(rpn)
    features = torch.randn(1, 8, 8, 8)
    rpn.train()
    train_props, _ = rpn(features, [(128, 128)], [1.0])
    rpn.eval()
    eval_props, _ = rpn(features, [(128, 128)], [1.0])
    assert len(train_props[0]) == 7
    assert 7 < len(eval_props[0]) <= 50


def test_min_size_is_in_original_image_pixels():
    cfg = RPNConfig(anchor_sizes=(32.0,), aspect_ratios=(1.0,), channels=16, min_size=20.0, nms_threshold=1.0)
    rpn = RegionProposalNetwork(in_channels=8, config=cfg, stride=16).eval()
    torch.nn.init.zeros_(rpn.head.deltas.weight)  # proposals = anchors, clipped; 32 px inside, less at the border
    features = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        # scale 1: a clipped border anchor 24 px wide survives min_size 20.
        (p1,), _ = rpn(features, [(64, 64)], [1.0])
        # scale 2 (image upsampled x2): min size is 40 resized pixels, so even the 32 px inside anchors go.
        (p2,), _ = rpn(features, [(64, 64)], [2.0])
    assert len(p1) == 16
    assert len(p2) == 0
