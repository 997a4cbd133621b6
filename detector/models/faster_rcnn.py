"""Faster R-CNN (Ren et al., 2015): a Region Proposal Network and a Fast R-CNN head sharing one trunk.

Shape shorthand: N images, K object classes (labels 1..K, 0 = background).
Boxes are ``xyxy`` float tensors in continuous pixel coordinates; inputs and outputs are in the original
image's pixels, everything inside in the resized image's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from detector.models.backbones import build_backbone
from detector.models.base import Detector, DetectorConfig
from detector.models.fpn import FPN_BACKBONES, PyramidRPN, fpn_backbone
from detector.models.roi_heads import RoIHeads, RoIHeadsConfig
from detector.models.rpn import RegionProposalNetwork, RPNConfig
from detector.models.transform import detector_transform


@dataclass
class FasterRCNNConfig(DetectorConfig):
    """Everything needed to rebuild the network; stored in checkpoints. Defaults are the paper's VGG16 recipe."""

    proposal_source = "rpn"

    # Shorter side resized to (a random choice of) min_size in training and min_size[-1] at test time, longer
    # side capped at max_size.
    min_size: tuple[int, ...] = (600,)
    max_size: int = 1000
    rpn: RPNConfig = field(default_factory=RPNConfig)
    roi_heads: RoIHeadsConfig = field(default_factory=RoIHeadsConfig)

    def override(
        self, *, min_size=None, max_size=None, anchor_sizes=None, aspect_ratios=None, pooler=None, **others
    ) -> list[str]:
        if min_size:
            self.min_size = tuple(min_size)
        if max_size:
            self.max_size = max_size
        if anchor_sizes:
            self.rpn.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        if aspect_ratios:
            self.rpn.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        if pooler:
            self.roi_heads.pooler = pooler
        return super().override(**others)


def tiny_config(num_classes: int) -> FasterRCNNConfig:
    """The small CPU model used for tests and the default checkpoint: a stride-8 trunk, anchors for 12-300 px
    objects on 200-500 px images, lighter training proposal counts, and RoIAlign: RoI max pooling quantises a
    12 px object to one or two feature cells, which left the small objects undetected."""
    return FasterRCNNConfig(
        backbone="tiny",
        num_classes=num_classes,
        min_size=(288,),
        max_size=480,
        rpn=RPNConfig(
            anchor_sizes=(16.0, 32.0, 64.0, 128.0, 256.0),
            channels=128,
            # The paper ignores anchors crossing the border; on 300 px images the large anchors nearly always
            # cross it, so they would never be trained and would keep their initial score at test time.
            allowed_border=1e4,
            pre_nms_top_n_train=2000,
            post_nms_top_n_train=300,
            pre_nms_top_n_test=1000,
            post_nms_top_n_test=300,
            min_size=4.0,
        ),
        roi_heads=RoIHeadsConfig(pooler="roi_align", batch_size_per_image=64),
    )


def fpn_config(backbone: str, num_classes: int) -> FasterRCNNConfig:
    """torchvision's preset for its COCO detector on ``backbone`` (``fasterrcnn_resnet50_fpn``, ``..._v2``,
    ``fasterrcnn_mobilenet_v3_large_fpn``): every setting it uses, so that its weights give its answers."""
    mobilenet = backbone.startswith("mobilenet")
    sizes = (32.0, 64.0, 128.0, 256.0, 512.0)
    rpn = RPNConfig(
        anchor_sizes=sizes, anchor_sizes_per_level=(sizes,) * 3 if mobilenet else tuple((s,) for s in sizes),
        anchor_offset=0.0, round_anchors=True, channels=256, conv_depth=2 if backbone.endswith("_v2") else 1,
        allowed_border=1e9, pre_nms_top_n_train=2000, post_nms_top_n_train=2000, pre_nms_top_n_test=1000,
        post_nms_top_n_test=1000, min_size=1e-3, score_threshold=0.05 if mobilenet else 0.0,
    )  # fmt: skip
    roi_heads = RoIHeadsConfig(pooler="multiscale", batch_size_per_image=512, nms_threshold=0.5, smooth_l1_sigma=3.0)
    return FasterRCNNConfig(
        backbone=backbone, num_classes=num_classes, min_size=(800,), max_size=1333, rpn=rpn, roi_heads=roi_heads,
        norm="bn" if backbone.endswith("_v2") else "frozen_bn", frozen_stages=3 if mobilenet else 2,
        box_head="4conv1fc" if backbone.endswith("_v2") else "mlp",
    )  # fmt: skip


class FasterRCNN(Detector):
    """``forward(images, targets=None)``: images is a list of [3, H, W] float tensors in [0, 1].

    With targets (a list of ``{"boxes": [G, 4], "labels": [G]}``) returns a dict of named losses; without,
    returns per image ``{"boxes": [D, 4], "labels": [D], "scores": [D]}`` in original-image pixels.
    """

    kind = "faster_rcnn"
    config_class = FasterRCNNConfig
    tiny_config = staticmethod(tiny_config)

    def __init__(
        self, config: FasterRCNNConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights"
    ):
        super().__init__(config)
        self.transform = detector_transform(config.min_size, config.max_size)
        if config.backbone in FPN_BACKBONES:
            if pretrained not in (None, "none"):
                raise ValueError(
                    f"{config.backbone} starts from a detector checkpoint (python -m detector.weights "
                    "import-torchvision or fetch), not from ImageNet weights: use --init CKPT"
                )
            self.backbone = fpn_backbone(config.backbone, **config.backbone_options)
            self.rpn = PyramidRPN(self.backbone.out_channels, config.rpn)
        else:
            self.backbone = build_backbone(
                config.backbone, pretrained, weights_dir=weights_dir, **config.backbone_options
            )
            self.rpn = RegionProposalNetwork(self.backbone.out_channels, config.rpn, self.backbone.stride)
        self.roi_heads = RoIHeads(self.backbone, config.num_classes, config.roi_heads)

    @property
    def max_proposals(self) -> int:
        return self.rpn.config.post_nms_top_n_test  # the top of the RPN's ranking after NMS

    @max_proposals.setter
    def max_proposals(self, n: int) -> None:
        self.rpn.config.post_nms_top_n_test = n

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if self.training and targets is None:
            raise ValueError("training mode needs targets; call model.eval() for inference")
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        scales = [h / oh for (h, _), (oh, _) in zip(batch.image_sizes, original_sizes)]
        features = self.backbone(batch.tensors)
        if isinstance(self.rpn, PyramidRPN):
            padded = tuple(batch.tensors.shape[-2:])
            proposals, rpn_losses = self.rpn(features, batch.image_sizes, scales, targets, padded_size=padded)
        else:
            proposals, rpn_losses = self.rpn(features, batch.image_sizes, scales, targets)
        detections, head_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        if targets is not None:
            return {**rpn_losses, **head_losses}
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
