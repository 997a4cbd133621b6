"""Region Proposal Network: anchors -> objectness and box deltas -> proposals, and its training losses.

Boxes are ``xyxy`` in continuous pixel coordinates of the resized batch image.
Shape shorthand: N images, A anchors per location, Hf x Wf feature map, M = Hf * Wf * A anchors per image,
G ground-truth boxes of one image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import _topk_min
from torchvision.ops import box_iou, clip_boxes_to_image, nms, remove_small_boxes

from detector.models.anchors import AnchorGenerator
from detector.models.boxes import BoxCoder, Matcher, sample_balanced


@dataclass
class RPNConfig:
    """The paper's defaults (py-faster-rcnn's ``TRAIN``/``TEST`` RPN settings)."""

    anchor_sizes: tuple[float, ...] = (128.0, 256.0, 512.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    channels: int = 512  # width of the 3x3 conv
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    allowed_border: float = 0.0  # anchors crossing the image border by more than this are ignored in training
    pre_nms_top_n_train: int = 12000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 6000
    post_nms_top_n_test: int = 300
    nms_threshold: float = 0.7
    min_size: float = 16.0  # proposals smaller than this (in original-image pixels; PyramidRPN: resized) are dropped
    smooth_l1_sigma: float = 3.0
    # A feature pyramid (detector.models.fpn.PyramidRPN): the sizes on each level; () is the single-map RPN.
    anchor_sizes_per_level: tuple[tuple[float, ...], ...] = ()
    anchor_offset: float = 0.5  # anchors centred at (cell + offset) * stride; torchvision: 0
    round_anchors: bool = False  # torchvision rounds the centred anchors to whole pixels
    score_threshold: float = 0.0  # PyramidRPN: proposals below this objectness probability are dropped
    conv_depth: int = 1  # PyramidRPN: 3x3 convs in torchvision's RPNHead (v2: 2)

    def __post_init__(self):
        # Checkpoints and JSON store nested tuples as lists.
        self.anchor_sizes_per_level = tuple(tuple(float(s) for s in level) for level in self.anchor_sizes_per_level)


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then sibling 1x1 convs: A objectness logits and 4A box deltas per location."""

    def __init__(self, in_channels: int, channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)  # the paper's N(0, 0.01) initialisation of new layers
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features [N, C, Hf, Wf] -> objectness [N, M], deltas [N, M, 4] (location-major, as the anchors)."""
        t = F.relu(self.conv(features))
        n = features.shape[0]
        objectness = self.objectness(t).permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.deltas(t).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return objectness, deltas


class RegionProposalNetwork(nn.Module):
    def __init__(self, in_channels: int, config: RPNConfig, stride: int = 16):
        super().__init__()
        self.config = config
        self.anchor_generator = AnchorGenerator(config.anchor_sizes, config.aspect_ratios, stride)
        self.head = RPNHead(in_channels, config.channels, self.anchor_generator.num_anchors)
        self.box_coder, self.matcher = self._coder_and_matcher(config)

    @staticmethod
    def _coder_and_matcher(config: RPNConfig) -> tuple[BoxCoder, Matcher]:
        return BoxCoder((1.0, 1.0, 1.0, 1.0)), Matcher(
            config.positive_iou, config.negative_iou, allow_low_quality_matches=True
        )

    def forward(
        self,
        features: Tensor,
        image_sizes: list[tuple[int, int]],
        scales: list[float],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """features [N, C, Hf, Wf]; image_sizes: (h, w) of each resized image inside the padded batch;
        scales: resized / original size of each image. Returns proposals (a [<=post_nms_top_n, 4] tensor per
        image) and, when ``targets`` are given, the losses ``loss_rpn_objectness`` and ``loss_rpn_box``."""
        anchors = self.anchor_generator(tuple(features.shape[-2:]))
        objectness, deltas = self.head(features)
        with torch.no_grad():
            # fp32 decoding also under bf16/fp16 autocast (a no-op in fp32): low-precision proposals would
            # move every RoI by up to a few pixels.
            proposals = self.box_coder.decode(
                deltas.detach().float().reshape(-1, 4), anchors.repeat(len(image_sizes), 1)
            )
            proposals = proposals.reshape(len(image_sizes), -1, 4)
            boxes = self.filter_proposals(proposals, objectness.detach().float(), image_sizes, scales)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            labels, regression_targets = self.assign_targets(anchors, targets, image_sizes)
            losses = self.losses(objectness, deltas, labels, regression_targets)
        return boxes, losses

    def filter_proposals(
        self, proposals: Tensor, objectness: Tensor, image_sizes: list[tuple[int, int]], scales: list[float]
    ) -> list[Tensor]:
        """proposals [N, M, 4], objectness [N, M] -> per image: top-k by score, clip, drop small, NMS, top-k."""
        cfg = self.config
        pre_n = cfg.pre_nms_top_n_train if self.training else cfg.pre_nms_top_n_test
        post_n = cfg.post_nms_top_n_train if self.training else cfg.post_nms_top_n_test
        result = []
        for boxes, scores, size, scale in zip(proposals, objectness, image_sizes, scales):
            top = scores.topk(_topk_min(scores, pre_n, 0)).indices  # min(pre_n, M), kept a graph op when traced
            boxes, scores = clip_boxes_to_image(boxes[top], size), scores[top]
            keep = remove_small_boxes(boxes, cfg.min_size * scale)
            boxes, scores = boxes[keep], scores[keep]
            keep = nms(boxes, scores, cfg.nms_threshold)[:post_n]
            result.append(boxes[keep])
        return result

    def assign_targets(
        self, anchors: Tensor, targets: list[dict[str, Tensor]], image_sizes: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor]:
        """anchors [M, 4] -> labels [N, M] (1 object, 0 background, -1 ignored) and box targets [N, M, 4]."""
        cfg = self.config
        all_labels, all_targets = [], []
        for target, (h, w) in zip(targets, image_sizes):
            gt = target["boxes"]
            b = cfg.allowed_border
            inside = (anchors[:, 0] >= -b) & (anchors[:, 1] >= -b) & (anchors[:, 2] <= w + b) & (anchors[:, 3] <= h + b)
            labels = torch.full((anchors.shape[0],), -1.0, device=anchors.device)
            matched_gt = torch.zeros_like(anchors)
            if gt.numel() == 0:
                labels[inside] = 0.0
            else:
                # Only anchors inside the image take part, also in the "best anchor for each box" rule.
                iou = box_iou(gt, anchors[inside])
                matches = self.matcher(iou)
                inside_labels = torch.full_like(matches, -1, dtype=torch.float32)
                inside_labels[matches >= 0] = 1.0
                inside_labels[matches == Matcher.BELOW] = 0.0
                labels[inside] = inside_labels
                matched_gt[inside] = gt[matches.clamp(min=0)]
            pos, neg = sample_balanced(labels, cfg.batch_size_per_image, cfg.positive_fraction)
            sampled = torch.full_like(labels, -1.0)
            sampled[pos] = 1.0
            sampled[neg] = 0.0
            all_labels.append(sampled)
            all_targets.append(self.box_coder.encode(matched_gt, anchors) if gt.numel() else torch.zeros_like(anchors))
        return torch.stack(all_labels), torch.stack(all_targets)

    def losses(
        self, objectness: Tensor, deltas: Tensor, labels: Tensor, regression_targets: Tensor
    ) -> dict[str, Tensor]:
        """Binary cross-entropy over sampled anchors; smooth L1 (sigma 3) over positives, both normalised by
        the number of sampled anchors (py-faster-rcnn's normalisation)."""
        sampled = labels >= 0
        positive = labels > 0
        num_sampled = sampled.sum().clamp(min=1)
        loss_obj = (
            F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled], reduction="sum") / num_sampled
        )
        beta = 1.0 / self.config.smooth_l1_sigma**2
        loss_box = (
            F.smooth_l1_loss(deltas[positive], regression_targets[positive], beta=beta, reduction="sum") / num_sampled
        )
        return {"loss_rpn_objectness": loss_obj, "loss_rpn_box": loss_box}
