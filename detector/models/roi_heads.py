"""RoI heads: proposals -> RoI pooling -> backbone head -> class scores and class-specific box deltas.

Shared by Faster R-CNN (RPN proposals) and Fast R-CNN (external proposals). The predictor's ``forward``,
``losses`` and ``inference`` are separate steps.

Boxes are ``xyxy`` in continuous pixel coordinates of the resized batch image.
Shape shorthand: N images, R RoIs (all images), K object classes (K + 1 with background), D head size,
P pooled size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import (
    MultiScaleRoIAlign,
    box_iou,
    clip_boxes_to_image,
    remove_small_boxes,
    roi_align,
    roi_pool,
)

from detector.models.backbones import Backbone
from detector.models.boxes import BoxCoder, Matcher, batched_nms_any, sample_balanced


@dataclass
class RoIHeadsConfig:
    """Faster R-CNN's defaults (py-faster-rcnn end-to-end); Fast R-CNN overrides a few."""

    pooler: str = "roi_pool"  # or "roi_align"; "multiscale" (a feature pyramid: torchvision's MultiScaleRoIAlign)
    batch_size_per_image: int = 128
    positive_fraction: float = 0.25
    # Hold the foreground fraction by drawing fewer background RoIs when there are few foreground ones (R-CNN:
    # see ``RCNN``); off, background fills the batch (Fast and Faster R-CNN).
    hold_positive_fraction: bool = False
    fg_iou: float = 0.5
    bg_iou_low: float = 0.0  # background IoU range [bg_iou_low, fg_iou)
    add_gt_as_proposals: bool = True
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # = targets / (0.1, 0.1, 0.2, 0.2)
    smooth_l1_sigma: float = 1.0
    score_threshold: float = 0.05  # the evaluation preset; display uses a higher one
    nms_threshold: float = 0.3
    detections_per_image: int = 100
    min_box_size: float = 1e-2


class BoxPredictor(nn.Module):
    """Sibling linear layers on the head's representation: K + 1 class scores, 4 (K + 1) box deltas."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)  # the paper's initialisation
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [R, D] -> class logits [R, K + 1], deltas [R, 4 (K + 1)]."""
        return self.cls_score(x), self.bbox_pred(x)


class RoIHeads(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, config: RoIHeadsConfig):
        super().__init__()
        if config.pooler not in ("roi_pool", "roi_align", "multiscale"):
            raise ValueError(f"pooler must be 'roi_pool', 'roi_align' or 'multiscale', got {config.pooler!r}")
        if (config.pooler == "multiscale") != (backbone.stride is None):
            raise ValueError("the 'multiscale' pooler goes with a feature pyramid backbone, and only with one")
        self.config = config
        self.num_classes = num_classes
        self.pool_size = backbone.pool_size
        self.spatial_scale = 1.0 / backbone.stride if backbone.stride else None
        if config.pooler == "multiscale":
            self.multiscale = MultiScaleRoIAlign(list(backbone.pooled_levels), backbone.pool_size, sampling_ratio=2)
        self.head = backbone.head
        self.predictor = BoxPredictor(backbone.representation_size, num_classes)
        self.box_coder = BoxCoder(config.box_weights)
        self.matcher = Matcher(config.fg_iou, config.fg_iou, low_min=config.bg_iou_low)

    # --- training targets -------------------------------------------------------------------------------
    def sample_proposals(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], Tensor, Tensor]:
        """Per image: add the ground truth to the proposals, label each by IoU (>= fg_iou: its box's class;
        [bg_iou_low, fg_iou): background), sample ``batch_size_per_image`` at up to ``positive_fraction``
        foreground (with ``hold_positive_fraction``, at most ``1 / positive_fraction - 1`` background RoIs per
        foreground one, and that many for an image without any). Returns sampled RoIs per image, labels [R] and
        regression targets [R, 4]."""
        cfg = self.config
        negatives_per_positive = round((1 - cfg.positive_fraction) / cfg.positive_fraction)
        rois, labels, regression = [], [], []
        for props, target in zip(proposals, targets):
            gt_boxes, gt_labels = target["boxes"], target["labels"]
            if cfg.add_gt_as_proposals and gt_boxes.numel():
                props = torch.cat([props, gt_boxes.to(props.dtype)])
            if gt_boxes.numel():
                matches = self.matcher(box_iou(gt_boxes, props))
                cls = gt_labels[matches.clamp(min=0)].clone()
                cls[matches < 0] = 0
                state = torch.where(matches >= 0, 1, torch.where(matches == Matcher.BELOW, 0, -1))
                matched = gt_boxes[matches.clamp(min=0)]
            else:  # an image with no objects: every proposal is background
                cls = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                state = torch.zeros_like(cls)
                matched = props
            pos, neg = sample_balanced(state, cfg.batch_size_per_image, cfg.positive_fraction)
            if cfg.hold_positive_fraction:
                neg = neg[: max(len(pos), 1) * negatives_per_positive]
            keep = torch.cat([pos, neg])
            rois.append(props[keep])
            labels.append(cls[keep])
            regression.append(self.box_coder.encode(matched[keep], props[keep]))
        return rois, torch.cat(labels), torch.cat(regression)

    # --- forward pieces ---------------------------------------------------------------------------------
    def pool(
        self,
        features: Tensor | dict[str, Tensor],
        rois: list[Tensor],
        image_sizes: list[tuple[int, int]] | None = None,
    ) -> Tensor:
        """features [N, C, Hf, Wf] (or a pyramid's levels), rois per image -> pooled [R, C, P, P] (torchvision.ops
        RoI pool / align, or MultiScaleRoIAlign, which picks each RoI's level by its size and needs
        ``image_sizes``)."""
        if self.config.pooler == "multiscale":
            return self.multiscale(features, rois, image_sizes)
        size = (self.pool_size, self.pool_size)
        if self.config.pooler == "roi_align":
            return roi_align(features, rois, size, spatial_scale=self.spatial_scale, sampling_ratio=2, aligned=True)
        if features.dtype == torch.bfloat16 and features.device.type == "cpu":
            # torchvision has no CPU bf16 roi_pool kernel; max pooling is exact in fp32 and back.
            return roi_pool(features.float(), [r.float() for r in rois], size, spatial_scale=self.spatial_scale).to(
                features.dtype
            )
        return roi_pool(features, rois, size, spatial_scale=self.spatial_scale)

    def forward(
        self,
        features: Tensor,
        proposals: list[Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Training (targets given): ([], losses). Inference: (detections per image in resized-image pixels, {})."""
        if targets is not None:
            rois, labels, regression_targets = self.sample_proposals(proposals, targets)
            class_logits, deltas = self.predictor(self.head(self.pool(features, rois, image_sizes)))
            return [], self.losses(class_logits, deltas, labels, regression_targets)
        class_logits, deltas = self.predictor(self.head(self.pool(features, proposals, image_sizes)))
        return self.inference(class_logits, deltas, proposals, image_sizes), {}

    def losses(
        self, class_logits: Tensor, deltas: Tensor, labels: Tensor, regression_targets: Tensor
    ) -> dict[str, Tensor]:
        """Cross-entropy over all sampled RoIs; smooth L1 (sigma 1) on the deltas of each foreground RoI's own
        class, summed and divided by the number of sampled RoIs (so an image with no objects gives exactly 0)."""
        loss_cls = F.cross_entropy(class_logits, labels)
        fg = torch.nonzero(labels > 0).flatten()
        deltas = deltas.reshape(deltas.shape[0], -1, 4)[fg, labels[fg]]
        beta = 1.0 / self.config.smooth_l1_sigma**2
        loss_box = F.smooth_l1_loss(deltas, regression_targets[fg], beta=beta, reduction="sum") / max(labels.numel(), 1)
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def inference(
        self, class_logits: Tensor, deltas: Tensor, proposals: list[Tensor], image_sizes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Softmax scores, class-specific decoding, then per image and class: score threshold, NMS, top-k."""
        cfg = self.config
        k1 = self.num_classes + 1
        # Under bf16/fp16 autocast the predictor answers in low precision; scores and boxes are computed in
        # fp32 (bf16 has 8 significant bits: ~2 px steps at 500 px). A no-op in fp32.
        class_logits, deltas = class_logits.float(), deltas.float()
        scores = F.softmax(class_logits, dim=-1)
        boxes = self.box_coder.decode(deltas, torch.cat(proposals)).reshape(-1, k1, 4)
        counts = [p.shape[0] for p in proposals]  # shapes, not len(): traced for export, they stay graph values
        results = []
        for img_boxes, img_scores, size in zip(boxes.split(counts), scores.split(counts), image_sizes):
            img_boxes = clip_boxes_to_image(img_boxes, size)[:, 1:].reshape(-1, 4)  # drop the background column
            labels = torch.arange(1, k1, device=scores.device).repeat(img_scores.shape[0])
            img_scores = img_scores[:, 1:].reshape(-1)
            keep = torch.nonzero(img_scores > cfg.score_threshold).flatten()
            img_boxes, img_scores, labels = img_boxes[keep], img_scores[keep], labels[keep]
            keep = remove_small_boxes(img_boxes, cfg.min_box_size)
            img_boxes, img_scores, labels = img_boxes[keep], img_scores[keep], labels[keep]
            keep = batched_nms_any(img_boxes, img_scores, labels, cfg.nms_threshold)[: cfg.detections_per_image]
            results.append({"boxes": img_boxes[keep], "labels": labels[keep], "scores": img_scores[keep]})
        return results
