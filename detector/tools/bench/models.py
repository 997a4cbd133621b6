"""The compared models: ours, and torchvision's ``FasterRCNN`` assembled from our trunk, RoI head, RPN conv head and
predictor weights, with our config's settings. Built after the same seed, all three hold identical weights.

Feature-pyramid backbones (``FPN_BACKBONES``) compare ours with torchvision's own COCO detector instead: both load
one state dict (``fpn_weights``: torchvision's model, seeded random weights calibrated on the first benchmark image),
ours through ``import_state_dict`` with torchvision's preset; ``ours_roi_pool`` does not exist for them.

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
from detector.models.backbones import BACKBONES, build_backbone
from detector.models.faster_rcnn import FasterRCNN, FasterRCNNConfig, fpn_config, tiny_config
from detector.models.fpn import FPN_BACKBONES
from detector.models.roi_heads import BoxPredictor
from detector.models.rpn import RPNHead
from detector.models.torchvision_import import ARCHS, import_state_dict
from detector.tools.bench.torchvision_fpn import COCO_CLASSES, calibrated_detector, torchvision_detector

NUM_CLASSES = 20  # VOC
MODELS = ("ours", "torchvision", "ours_roi_pool")
BENCH_BACKBONES = BACKBONES + FPN_BACKBONES
FPN_ARCHS = {backbone: arch for arch, (backbone, _) in ARCHS.items()}  # our backbone -> torchvision's builder


def model_names(backbone: str) -> tuple[str, ...]:
    """The models a run compares: a feature pyramid pools with multi-scale RoIAlign only, so no ``ours_roi_pool``."""
    return MODELS[:2] if backbone in FPN_BACKBONES else MODELS


def model_config(backbone: str, pooler: str = "roi_pool", min_size: int | None = None) -> FasterRCNNConfig:
    """Our config for ``backbone``: VOC's classes (tiny: ``tiny_config``); feature pyramids: torchvision's preset
    with COCO's classes, whose pooler is fixed (multi-scale RoIAlign)."""
    if backbone in FPN_BACKBONES:
        cfg = fpn_config(backbone, num_classes=COCO_CLASSES - 1)
    else:
        cfg = (
            tiny_config(NUM_CLASSES)
            if backbone == "tiny"
            else FasterRCNNConfig(backbone=backbone, num_classes=NUM_CLASSES)
        )
        cfg.roi_heads.pooler = pooler
    if min_size is not None:
        cfg.min_size = (min_size,)
    return cfg


def fpn_weights(backbone: str, seed: int, image: Tensor, min_size: int | None = None) -> dict[str, Tensor] | None:
    """The state dict both models of a feature-pyramid run load: torchvision's own detector with seeded random
    weights, calibrated on ``image`` [3, H, W] at the size the models run at (``torchvision_fpn``). None for the
    other backbones, whose models build identical weights from the seed alone."""
    if backbone not in FPN_BACKBONES:
        return None
    return calibrated_detector(FPN_ARCHS[backbone], image, seed=seed, min_size=min_size).state_dict()


def build_fpn(name: str, backbone: str, weights: dict[str, Tensor], min_size: int | None = None) -> nn.Module:
    """``ours`` (imported with torchvision's preset) or ``torchvision`` (its own model) on ``weights``, in eval mode,
    both resizing to ``min_size`` when given (else the preset's 800)."""
    arch = FPN_ARCHS[backbone]
    if name == "ours":
        model = import_state_dict(arch, weights)
        if min_size is not None:
            model.config.min_size = (min_size,)
    elif name == "torchvision":
        model = torchvision_detector(arch, weights)
    else:
        choices = ", ".join(model_names(backbone))
        raise ValueError(f"model {name!r} does not apply to the feature-pyramid backbone {backbone}: choose {choices}")
    if min_size is not None:
        model.transform.min_size = (min_size,)
    return model


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


def build_model(
    name: str, backbone: str, seed: int, min_size: int | None = None, weights: dict[str, Tensor] | None = None
) -> nn.Module:
    """One compared model; feature pyramids need ``weights`` (``fpn_weights``), the others ignore them."""
    if backbone in FPN_BACKBONES:
        if weights is None:
            raise ValueError(f"{backbone}: the models load torchvision's state dict; pass fpn_weights(...)")
        return build_fpn(name, backbone, weights, min_size)
    if name == "ours":
        return build_ours(backbone, "roi_align", seed, min_size)
    if name == "ours_roi_pool":
        return build_ours(backbone, "roi_pool", seed, min_size)
    if name == "torchvision":
        return build_torchvision(backbone, seed, min_size)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
