"""R-CNN (Girshick et al., 2014): every proposal warped to the CNN's input size and classified on its own.

Per image: selective-search proposals -> each dilated by ``context`` pixels (measured in the warped frame) and
warped anisotropically to ``input_size`` x ``input_size`` -> the whole backbone (trunk, a max pool to the head's
grid, head) -> a (K + 1)-way softmax classifier, fine-tuned with the CNN, and a separate class-specific box
regressor -> per-class NMS -> regressed boxes. The CNN runs once per proposal, which is the cost Fast R-CNN
removed: at 2000 proposals a VGG16 R-CNN does 2000 forward passes per image.

Two departures from the 2014 paper, both what its authors later reported or recommended:
- no SVMs: the fine-tuned softmax scores are used directly (Fast R-CNN's finding that they do as well);
- the box regressor is trained by SGD at the same time as the fine-tuning rather than by ridge regression
  afterwards, but on *detached* features, so it stays separate from the CNN (its loss never reaches the
  CNN's weights) and learns only from proposals with IoU >= ``regression_iou`` (0.6) as in the paper. It
  reads the head's output (fc7 for VGG16) where the paper read pool5. Training it online costs no extra CNN
  pass, so the paper's on-disk feature cache for the regressor would not pay here.

Shape shorthand: N images, P proposals of one image, R sampled windows, S warped input size, K object classes
(labels 1..K, 0 = background), D head representation size.
Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the original image (R-CNN never resizes
the image; each window is warped from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou, roi_align

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from detector.models.backbones import build_backbone
from detector.models.fast_rcnn import SelectiveSearchConfig, SelectiveSearchDetector, propose, top_proposals
from detector.models.roi_heads import RoIHeads, RoIHeadsConfig


def _rcnn_heads() -> RoIHeadsConfig:
    # Fine-tuning windows: 25% foreground at IoU >= 0.5, all the rest background (the paper's [0, 0.5));
    # ground truth boxes among the windows; per-class NMS at 0.3 at test time.
    #
    # The fraction is *held* (fewer background windows when foreground ones are few). Why: the paper drew 32
    # foreground and 96 background windows per batch from a pool over many images. Drawn per image, a small
    # image has a handful of foreground proposals among hundreds, and filling the batch with background made
    # the classifier settle on "background" for everything (measured: it did, on the generated dataset).
    return RoIHeadsConfig(
        batch_size_per_image=64,
        positive_fraction=0.25,
        hold_positive_fraction=True,
        fg_iou=0.5,
        bg_iou_low=0.0,
        nms_threshold=0.3,
    )


@dataclass
class RCNNConfig(SelectiveSearchConfig):
    """Everything needed to rebuild the network; stored in checkpoints. Defaults are the paper's (VGG16)."""

    input_size: int = 224  # warped window size (the paper's 227 was AlexNet's; VGG16 takes 224)
    context: int = 16  # pixels of context around each proposal in the warped window
    regression_iou: float = 0.6  # proposals the box regressor learns from
    roi_heads: RoIHeadsConfig = field(default_factory=_rcnn_heads)
    window_batch: int = 128  # windows per CNN forward at test time (memory, not results)


def tiny_rcnn_config(num_classes: int) -> RCNNConfig:
    """The small CPU model: the tiny trunk (stride 8) on 56 px windows, so its 7 x 7 grid is the head's input."""
    cfg = RCNNConfig(backbone="tiny", num_classes=num_classes, input_size=56, context=4)
    cfg.proposals = {"mode": "fast", "max_proposals": 2000, "scale": 0}
    return cfg


def dilate_for_context(boxes: Tensor, input_size: int, context: int) -> Tensor:
    """[P, 4] -> [P, 4]: each box grown about its centre so that, warped to ``input_size``, the original box
    fills the central ``input_size - 2 * context`` pixels and ``context`` pixels of surroundings frame it."""
    scale = input_size / (input_size - 2 * context)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) * scale / 2, (boxes[:, 3] - boxes[:, 1]) * scale / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)


def warp_windows(image: Tensor, boxes: Tensor, input_size: int, context: int) -> Tensor:
    """image [3, H, W] (normalised), boxes [P, 4] -> windows [P, 3, S, S].

    Bilinear sampling over each dilated box (``roi_align`` with output S x S is exactly an anisotropic warp);
    where the dilated box leaves the image it reads zeros, i.e. the mean pixel after normalisation, which is how
    the paper fills it."""
    if boxes.numel() == 0:
        return image.new_zeros((0, 3, input_size, input_size))
    region = dilate_for_context(boxes.to(image.dtype), input_size, context)
    return roi_align(image[None], [region], (input_size, input_size), spatial_scale=1.0, sampling_ratio=2, aligned=True)


class RCNN(SelectiveSearchDetector):
    """``forward(images, targets=None, proposals=None)``, the same contract as ``FastRCNN``."""

    kind = "rcnn"
    config_class = RCNNConfig
    tiny_config = staticmethod(tiny_rcnn_config)

    def __init__(
        self, config: RCNNConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights"
    ):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone, pretrained, weights_dir=weights_dir, **config.backbone_options)
        # RoIHeads supplies what R-CNN shares with its successors: window sampling, the (K + 1)-way classifier
        # and class-specific deltas (``predictor``: ``cls_score`` is fine-tuned with the CNN, ``bbox_pred`` is
        # the separate regressor) and the per-class NMS postprocessing. Its RoI pooling is not used.
        self.roi_heads = RoIHeads(self.backbone, config.num_classes, config.roi_heads)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def input_size(self) -> tuple[int, int]:
        # R-CNN has no input resize: it warps each proposal to input_size pixels. Fast R-CNN's 600 / 1000 px keeps
        # the windows of any object worth finding larger than that warp.
        return 600, 1000

    def features(self, windows: Tensor) -> Tensor:
        """windows [R, 3, S, S] -> representation [R, D]: trunk, max pool to the head's grid, head.
        (For VGG16 at 224 px the pool is exactly pool5: 14 x 14 -> 7 x 7.)"""
        pooled = F.adaptive_max_pool2d(self.backbone(windows), self.backbone.pool_size)
        return self.roi_heads.head(pooled)

    def windows(self, image: Tensor, boxes: Tensor) -> Tensor:
        """image [3, H, W] in [0, 1], boxes [P, 4] -> normalised warped windows [P, 3, S, S]."""
        return warp_windows((image - self.mean) / self.std, boxes, self.config.input_size, self.config.context)

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        proposals: list[Tensor] | None = None,
    ):
        if self.training and targets is None:
            raise ValueError("training mode needs targets; call model.eval() for inference")
        device = images[0].device
        if targets is not None:
            if any("proposals" not in t for t in targets):
                raise ValueError("R-CNN trains on external proposals: every target needs a 'proposals' entry")
            return self.losses(
                images, top_proposals([t["proposals"] for t in targets], self.config.max_proposals, device), targets
            )
        if proposals is None:
            proposals = propose(images, self.config)
        return self.detect(images, top_proposals(proposals, self.config.max_proposals, device))

    def losses(
        self, images: list[Tensor], proposals: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Cross-entropy of the fine-tuned classifier over the sampled windows; smooth L1 of the regressor over
        the windows with IoU >= ``regression_iou`` (its training set), on detached features, summed / number of
        windows (so an image with no objects gives exactly 0)."""
        rois, labels, regression_targets = self.roi_heads.sample_proposals(proposals, targets)
        # The regressor's training set: sampled windows overlapping their matched (best) box by >= regression_iou.
        iou = torch.cat([
            box_iou(r, t["boxes"].to(r.dtype)).max(dim=1).values if t["boxes"].numel() else r.new_zeros(len(r))
            for r, t in zip(rois, targets)
        ])  # fmt: skip
        windows = torch.cat([self.windows(img, r) for img, r in zip(images, rois)])
        representation = self.features(windows)
        predictor = self.roi_heads.predictor
        class_logits = predictor.cls_score(representation)
        deltas = predictor.bbox_pred(representation.detach())
        loss_cls = F.cross_entropy(class_logits, labels)
        reg = torch.nonzero((labels > 0) & (iou >= self.config.regression_iou)).flatten()
        deltas = deltas.reshape(deltas.shape[0], -1, 4)[reg, labels[reg]]
        beta = 1.0 / self.config.roi_heads.smooth_l1_sigma**2
        loss_box = F.smooth_l1_loss(deltas, regression_targets[reg], beta=beta, reduction="sum") / max(
            labels.numel(), 1
        )
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def detect(self, images: list[Tensor], proposals: list[Tensor]) -> list[dict[str, Tensor]]:
        """Scores every proposal in batches of ``window_batch`` windows, then NMS and the regressor per class."""
        predictor = self.roi_heads.predictor
        logits, deltas = [], []
        for img, props in zip(images, proposals):
            for chunk in props.split(self.config.window_batch):
                cls, box = predictor(self.features(self.windows(img, chunk)))
                logits.append(cls)
                deltas.append(box)
        k1 = self.config.num_classes + 1
        class_logits = torch.cat(logits) if logits else images[0].new_zeros((0, k1))
        box_deltas = torch.cat(deltas) if deltas else images[0].new_zeros((0, 4 * k1))
        sizes = [tuple(img.shape[-2:]) for img in images]
        return self.roi_heads.inference(class_logits, box_deltas, proposals, sizes)
