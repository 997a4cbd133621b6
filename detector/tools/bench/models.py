"""The compared models: ours, and torchvision's ``FasterRCNN`` assembled from our trunk, RoI head, RPN conv head and
predictor weights, with our config's settings. Built after the same seed, all three hold identical weights.

Shapes: N images, A anchors per position, Hf x Wf feature map, R RoIs, C trunk channels, P pooled size, D RoI
feature size. Boxes are xyxy pixels of the resized image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, roi_align

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from detector.models.backbones import build_backbone
from detector.models.faster_rcnn import FasterRCNN, FasterRCNNConfig, tiny_config
from detector.models.roi_heads import BoxPredictor
from detector.models.rpn import RPNHead

NUM_CLASSES = 20  # VOC
MODELS = ("ours", "torchvision", "ours_roi_pool")


def model_config(backbone: str, pooler: str = "roi_pool", min_size: int | None = None) -> FasterRCNNConfig:
    cfg = (
        tiny_config(NUM_CLASSES) if backbone == "tiny" else FasterRCNNConfig(backbone=backbone, num_classes=NUM_CLASSES)
    )
    cfg.roi_heads.pooler = pooler
    if min_size is not None:
        cfg.min_size = (min_size,)
    return cfg


def build_ours(backbone: str, pooler: str, seed: int, min_size: int | None = None) -> FasterRCNN:
    torch.manual_seed(seed)
    return FasterRCNN(model_config(backbone, pooler, min_size), pretrained=None)


class TorchvisionRPNHead(nn.Module):
    """Our RPN head behind torchvision's interface: a list of feature maps in, lists of objectness logits
    [N, A, Hf, Wf] and deltas [N, 4A, Hf, Wf] out. torchvision's own ``RPNHead`` makes its 3x3 conv as wide
    as the trunk (1024 for ResNet-50 C4) while ours is ``RPNConfig.channels`` wide; this keeps the work equal.
    Both order anchors ratio-major with aspect ratio = height / width, so the channels mean the same anchors."""

    def __init__(self, head: RPNHead):
        super().__init__()
        self.head = head

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        hidden = [F.relu(self.head.conv(f)) for f in features]
        return [self.head.objectness(t) for t in hidden], [self.head.deltas(t) for t in hidden]


class AlignedRoIAlign(MultiScaleRoIAlign):
    """torchvision's one-level ``MultiScaleRoIAlign`` with ``aligned=True``, as ours pools (torchvision's
    ``FasterRCNN`` accepts only that class). ``MultiScaleRoIAlign`` always pools with ``aligned=False`` (a
    half-pixel shift), which would make the two RoI heads compute different functions of the same proposals;
    the work is the same either way."""

    def __init__(self, pool_size: int, spatial_scale: float):
        super().__init__(["0"], output_size=pool_size, sampling_ratio=2)
        self.spatial_scale = spatial_scale

    def forward(
        self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        return roi_align(
            features["0"], proposals, self.output_size, spatial_scale=self.spatial_scale, sampling_ratio=2, aligned=True
        )


def build_torchvision(backbone: str, seed: int, min_size: int | None = None) -> TorchvisionFasterRCNN:
    """torchvision's Faster R-CNN on our trunk and head, with our config's settings. The layers are built in
    the order ``FasterRCNN.__init__`` builds them (trunk, RPN head, predictor) after the same seed, so the
    weights equal ours."""
    cfg = model_config(backbone, "roi_align", min_size)
    torch.manual_seed(seed)
    trunk = build_backbone(backbone, None)
    num_anchors = len(cfg.rpn.anchor_sizes) * len(cfg.rpn.aspect_ratios)
    rpn_head = RPNHead(trunk.out_channels, cfg.rpn.channels, num_anchors)
    ours_predictor = BoxPredictor(trunk.representation_size, NUM_CLASSES)
    predictor = FastRCNNPredictor(trunk.representation_size, NUM_CLASSES + 1)
    predictor.load_state_dict(ours_predictor.state_dict())  # same parameter names: cls_score, bbox_pred

    body = trunk.body
    body.out_channels = trunk.out_channels  # torchvision reads this attribute
    rpn, roi = cfg.rpn, cfg.roi_heads
    return TorchvisionFasterRCNN(
        body,
        min_size=cfg.min_size[-1],
        max_size=cfg.max_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        rpn_anchor_generator=TorchvisionAnchorGenerator(
            sizes=(tuple(int(s) for s in rpn.anchor_sizes),), aspect_ratios=(rpn.aspect_ratios,)
        ),
        rpn_head=TorchvisionRPNHead(rpn_head),
        rpn_pre_nms_top_n_train=rpn.pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn.pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn.post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn.post_nms_top_n_test,
        rpn_nms_thresh=rpn.nms_threshold,
        rpn_fg_iou_thresh=rpn.positive_iou,
        rpn_bg_iou_thresh=rpn.negative_iou,
        rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        box_roi_pool=AlignedRoIAlign(trunk.pool_size, 1.0 / trunk.stride),
        box_head=trunk.head,  # [R, C, P, P] -> [R, D], as torchvision's box heads
        box_predictor=predictor,
        box_score_thresh=roi.score_threshold,
        box_nms_thresh=roi.nms_threshold,
        box_detections_per_img=roi.detections_per_image,
        box_fg_iou_thresh=roi.fg_iou,
        box_bg_iou_thresh=roi.fg_iou,  # ours: background is [bg_iou_low, fg_iou) with bg_iou_low = 0
        box_batch_size_per_image=roi.batch_size_per_image,
        box_positive_fraction=roi.positive_fraction,
        bbox_reg_weights=roi.box_weights,
    )


def build_model(name: str, backbone: str, seed: int, min_size: int | None = None) -> nn.Module:
    if name == "ours":
        return build_ours(backbone, "roi_align", seed, min_size)
    if name == "ours_roi_pool":
        return build_ours(backbone, "roi_pool", seed, min_size)
    if name == "torchvision":
        return build_torchvision(backbone, seed, min_size)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
