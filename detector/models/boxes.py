"""Box coding, matching and sampling shared by the RPN and the RoI heads.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the (resized) image they refer to.

Shape shorthand: N boxes to encode/decode, G ground-truth boxes, P predictions (anchors or proposals).

torchvision has equivalents in ``torchvision.models.detection._utils``; that module is private and its
matcher folds "between thresholds" and "below" into sentinels that read poorly, so the few lines live here,
built on the public ``torchvision.ops`` primitives.
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor
from torchvision.ops import batched_nms, nms

# Deltas larger than this would overflow exp() during decoding (log(1000 / 16), as torchvision uses).
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class BoxCoder:
    """Encodes boxes as (dx, dy, dw, dh) deltas relative to reference boxes, and back.

    ``weights`` divide the usual R-CNN parameterisation: (10, 10, 5, 5) is the same as normalising the
    regression targets by standard deviations (0.1, 0.1, 0.2, 0.2), as py-faster-rcnn does for the RoI head.
    """

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)):
        self.weights = weights

    def encode(self, boxes: Tensor, reference: Tensor) -> Tensor:
        """boxes, reference: [N, 4] -> deltas [N, 4] that turn ``reference`` into ``boxes``."""
        wx, wy, ww, wh = self.weights
        rw = reference[:, 2] - reference[:, 0]
        rh = reference[:, 3] - reference[:, 1]
        rx = reference[:, 0] + 0.5 * rw
        ry = reference[:, 1] + 0.5 * rh
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        bx = boxes[:, 0] + 0.5 * bw
        by = boxes[:, 1] + 0.5 * bh
        return torch.stack(
            (
                wx * (bx - rx) / rw,
                wy * (by - ry) / rh,
                ww * torch.log(bw / rw),
                wh * torch.log(bh / rh),
            ),
            dim=1,
        )

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """deltas [N, 4 * C], reference [N, 4] -> boxes [N, 4 * C] (C = 1 or one box per class)."""
        reference = reference.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        rw = (reference[:, 2] - reference[:, 0])[:, None]
        rh = (reference[:, 3] - reference[:, 1])[:, None]
        rx = reference[:, 0, None] + 0.5 * rw
        ry = reference[:, 1, None] + 0.5 * rh
        dx = deltas[:, 0::4] / wx
        dy = deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=BBOX_XFORM_CLIP)
        dh = (deltas[:, 3::4] / wh).clamp(max=BBOX_XFORM_CLIP)
        cx = dx * rw + rx
        cy = dy * rh + ry
        w = torch.exp(dw) * rw
        h = torch.exp(dh) * rh
        boxes = torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=2)
        return boxes.reshape(deltas.shape)


class Matcher:
    """Assigns each prediction to its best ground-truth box by IoU.

    Returns, per prediction, the index of the matched box (>= 0), ``BELOW`` (IoU < low: negative) or
    ``BETWEEN`` (low <= IoU < high: ignored). With ``allow_low_quality_matches`` each ground-truth box also
    claims the prediction(s) that overlap it most, even under ``high`` (the RPN rule of the paper, so that
    every object has at least one positive anchor).
    """

    BELOW = -1
    BETWEEN = -2

    def __init__(self, high: float, low: float, *, allow_low_quality_matches: bool = False, low_min: float = 0.0):
        if low > high:
            raise ValueError(f"Matcher: low threshold {low} > high threshold {high}")
        self.high = high
        self.low = low
        # Predictions with IoU < low_min are ignored rather than negative (Fast R-CNN's bg range [0.1, 0.5)).
        self.low_min = low_min
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, iou: Tensor) -> Tensor:
        """iou: [G, P] -> matches [P] (int64)."""
        if iou.numel() == 0 or iou.shape[0] == 0:
            return torch.full((iou.shape[1],), self.BELOW, dtype=torch.int64, device=iou.device)
        best_iou, matches = iou.max(dim=0)
        matches = matches.clone()
        matches[best_iou < self.high] = self.BETWEEN
        matches[best_iou < self.low] = self.BELOW
        if self.low_min > 0:
            matches[best_iou < self.low_min] = self.BETWEEN
        if self.allow_low_quality_matches:
            # Every prediction tied for the best IoU of some ground-truth box becomes positive for it.
            best_per_gt = iou.max(dim=1, keepdim=True).values
            gt_idx, pred_idx = torch.nonzero((iou == best_per_gt) & (best_per_gt > 0), as_tuple=True)
            matches[pred_idx] = gt_idx
        return matches


def sample_balanced(
    labels: Tensor, batch_size: int, positive_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Samples up to ``batch_size`` entries with at most ``positive_fraction`` positives.

    labels: [P] with 1 = positive, 0 = negative, -1 = ignore.
    Returns (positive indices, negative indices); negatives fill what positives leave free.
    """
    positive = torch.nonzero(labels >= 1).flatten()
    negative = torch.nonzero(labels == 0).flatten()
    num_pos = min(positive.numel(), int(batch_size * positive_fraction))
    num_neg = min(negative.numel(), batch_size - num_pos)
    perm_pos = torch.randperm(positive.numel(), device="cpu", generator=generator)[:num_pos].to(positive.device)
    perm_neg = torch.randperm(negative.numel(), device="cpu", generator=generator)[:num_neg].to(negative.device)
    return positive[perm_pos], negative[perm_neg]


def batched_nms_any(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.batched_nms``: boxes [B, 4], scores [B], groups [B] (NMS within each group) -> indices
    kept, by decreasing score. When traced for export, the same offsets trick without torchvision's
    ``if boxes.numel() == 0`` branch, which a trace would fix to the example image's case (a graph traced on
    an image with detections would then fail on one without: ``max`` of nothing)."""
    if not torchvision._is_tracing():
        return batched_nms(boxes, scores, groups, iou_threshold)
    largest = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    offsets = groups.to(boxes) * (largest + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)
