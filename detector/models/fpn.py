"""Feature-pyramid Faster R-CNN (Lin et al., 2017), built the way torchvision builds its COCO detectors so that their
published weights load and give the same answers.

Shape shorthand: N images, L pyramid levels, A anchors per location, M_l anchors of level l per image, R RoIs.

- Backbones (``FPN_BACKBONES``): torchvision's own extractors, ``_resnet_fpn_extractor`` (ResNet-50 C2..C5 into a
  256-channel ``FeaturePyramidNetwork`` plus a max-pooled level, 5 levels, strides 4..64) and ``_mobilenet_extractor``
  (MobileNetV3-Large's last two stages plus a pooled level, 3 levels). These are private helpers of torchvision; we
  use them rather than copy them because the state-dict layout they give is the one the COCO weights are in.
- ``PyramidRPN``: our RPN (anchor matching, sampling and losses from ``RegionProposalNetwork``) over every level,
  with torchvision's ``RPNHead`` (1 conv, or 2 for v2) shared across levels, and torchvision's proposal selection:
  the top ``pre_nms_top_n`` of each level, sigmoid scores, clip, drop tiny boxes, a score threshold, NMS per level,
  the top ``post_nms_top_n`` over all levels.
- The box head is ``TwoMLPHead`` (v1, MobileNet) or v2's ``FastRCNNConvFCHead`` (4 conv + 1 fc, batch norm), fed by
  ``MultiScaleRoIAlign`` (each RoI pooled from the level its size maps to); our ``RoIHeads`` does the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models.detection._utils import _topk_min
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import clip_boxes_to_image, remove_small_boxes
from torchvision.ops.misc import FrozenBatchNorm2d

from detector.models.anchors import AnchorGenerator
from detector.models.boxes import batched_nms_any
from detector.models.rpn import RegionProposalNetwork, RPNConfig

FPN_BACKBONES = ("resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v3_large_fpn")
# How many stages the trunk has (trainable layers = STAGES - frozen_stages), and the pyramid's pooled feature maps.
STAGES = {"resnet50_fpn": 5, "resnet50_fpn_v2": 5, "mobilenet_v3_large_fpn": 6}
POOLED_LEVELS = {"resnet50_fpn": ("0", "1", "2", "3"), "resnet50_fpn_v2": ("0", "1", "2", "3"),
                 "mobilenet_v3_large_fpn": ("0", "1")}  # fmt: skip
FPN_CHANNELS, POOL, REPRESENTATION = 256, 7, 1024


class PyramidBackbone(nn.Module):
    """images [N, 3, H, W] -> ``body`` (the trunk's stages) -> ``fpn`` -> {level name: [N, 256, H_l, W_l]};
    ``head``: pooled [R, 256, 7, 7] -> [R, 1024]. ``body`` and ``fpn`` are those of torchvision's ``BackboneWithFPN``
    (so its state-dict names are torchvision's). ``stride`` is None: each level has its own (the RPN computes them
    from the sizes, as torchvision does)."""

    def __init__(self, name: str, extractor: nn.Module, head: nn.Module):
        super().__init__()
        self.body = extractor.body
        self.fpn = extractor.fpn
        self.head = head
        self.out_channels = FPN_CHANNELS
        self.representation_size = REPRESENTATION
        self.pool_size = POOL
        self.stride = None
        self.pooled_levels = POOLED_LEVELS[name]

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(images))


def fpn_backbone(
    name: str, *, norm: str = "frozen_bn", frozen_stages: int = 2, box_head: str = "mlp"
) -> PyramidBackbone:
    """torchvision's extractor for ``name`` with random weights; ``norm`` is the trunk's (frozen_bn as torchvision's
    COCO v1 and MobileNet weights were trained, bn for v2 and from scratch); ``box_head``: mlp (``TwoMLPHead``) or
    4conv1fc (v2's ``FastRCNNConvFCHead``)."""
    if name not in FPN_BACKBONES:
        raise ValueError(f"unknown feature-pyramid backbone {name!r}; choose one of {', '.join(FPN_BACKBONES)}")
    if norm not in ("frozen_bn", "bn"):
        raise ValueError(f"the feature-pyramid backbones take norm 'frozen_bn' or 'bn', not {norm!r}")
    norm_layer = FrozenBatchNorm2d if norm == "frozen_bn" else nn.BatchNorm2d
    trainable = max(0, STAGES[name] - frozen_stages)
    if box_head not in ("mlp", "4conv1fc"):
        raise ValueError(f"the feature-pyramid box head is 'mlp' or '4conv1fc', not {box_head!r}")
    if name == "mobilenet_v3_large_fpn":
        body = _mobilenet_extractor(models.mobilenet_v3_large(weights=None, norm_layer=norm_layer), True, trainable)
    else:  # v2 also puts batch norm into the pyramid's own convolutions
        resnet = models.resnet50(weights=None, norm_layer=norm_layer)
        body = _resnet_fpn_extractor(resnet, trainable, norm_layer=nn.BatchNorm2d if name.endswith("_v2") else None)
    if box_head == "4conv1fc":
        head = FastRCNNConvFCHead((FPN_CHANNELS, POOL, POOL), [256, 256, 256, 256], [REPRESENTATION],
                                  norm_layer=nn.BatchNorm2d)  # fmt: skip
    else:
        head = TwoMLPHead(FPN_CHANNELS * POOL**2, REPRESENTATION)
    return PyramidBackbone(name, body, head)


class PyramidRPN(RegionProposalNetwork):
    """The RPN over a feature pyramid: ``config.anchor_sizes_per_level[l]`` x ``config.aspect_ratios`` anchors on
    level l. Training targets and losses are ``RegionProposalNetwork``'s over the anchors of all levels."""

    def __init__(self, in_channels: int, config: RPNConfig):
        nn.Module.__init__(self)
        self.config = config
        self.anchor_generators = nn.ModuleList(
            AnchorGenerator(sizes, config.aspect_ratios, offset=config.anchor_offset, round_base=config.round_anchors)
            for sizes in config.anchor_sizes_per_level
        )
        counts = {g.num_anchors for g in self.anchor_generators}
        if len(counts) != 1:
            raise ValueError("every pyramid level needs as many anchors per location (one shared head)")
        self.head = RPNHead(in_channels, counts.pop(), conv_depth=config.conv_depth)
        self.box_coder, self.matcher = self._coder_and_matcher(config)

    def forward(
        self,
        features: dict[str, Tensor],
        image_sizes: list[tuple[int, int]],
        scales: list[float],
        targets: list[dict[str, Tensor]] | None = None,
        padded_size: tuple[int, int] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """features: the pyramid's levels in order; ``padded_size``: the batch tensor's (H, W), which sets each
        level's stride as torchvision sets it (H // H_l, W // W_l). Returns proposals per image and, with targets,
        the losses."""
        maps = list(features.values())
        if len(maps) != len(self.anchor_generators):
            raise ValueError(f"{len(maps)} feature levels, but anchors for {len(self.anchor_generators)}")
        logits, deltas = self.head(maps)
        n = maps[0].shape[0]
        anchors, per_level = [], []
        for generator, fmap in zip(self.anchor_generators, maps):
            hf, wf = fmap.shape[-2:]
            anchors.append(generator((hf, wf), (padded_size[0] // hf, padded_size[1] // wf)))
            per_level.append(anchors[-1].shape[0])
        anchors = torch.cat(anchors)
        # [N, A, H, W] and [N, 4A, H, W] per level -> [N, M] and [N, M, 4], location-major as the anchors.
        objectness = torch.cat([o.permute(0, 2, 3, 1).reshape(n, -1) for o in logits], dim=1)
        deltas = torch.cat([d.permute(0, 2, 3, 1).reshape(n, -1, 4) for d in deltas], dim=1)
        with torch.no_grad():
            proposals = self.box_coder.decode(deltas.detach().float().reshape(-1, 4), anchors.repeat(n, 1))
            boxes = self.select(proposals.reshape(n, -1, 4), objectness.detach().float(), image_sizes, per_level)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            labels, regression_targets = self.assign_targets(anchors, targets, image_sizes)
            losses = self.losses(objectness, deltas, labels, regression_targets)
        return boxes, losses

    def select(
        self, proposals: Tensor, objectness: Tensor, image_sizes: list[tuple[int, int]], per_level: list[int]
    ) -> list[Tensor]:
        """proposals [N, M, 4], objectness logits [N, M] -> per image: top-k of each level, sigmoid, clip, drop
        boxes under ``min_size`` px (of the resized image, as torchvision), score threshold, NMS per level, top-k."""
        cfg = self.config
        pre_n = cfg.pre_nms_top_n_train if self.training else cfg.pre_nms_top_n_test
        post_n = cfg.post_nms_top_n_train if self.training else cfg.post_nms_top_n_test
        levels = torch.cat([torch.full((m,), i, dtype=torch.int64) for i, m in enumerate(per_level)])
        result = []
        for boxes, scores, size in zip(proposals, objectness, image_sizes):
            top, start = [], 0
            for m in per_level:
                level = scores[start : start + m]
                top.append(level.topk(_topk_min(level, pre_n, 0)).indices + start)
                start += m
            top = torch.cat(top)
            boxes, probs, lvl = clip_boxes_to_image(boxes[top], size), scores[top].sigmoid(), levels.to(top.device)[top]
            keep = remove_small_boxes(boxes, cfg.min_size)
            boxes, probs, lvl = boxes[keep], probs[keep], lvl[keep]
            keep = torch.where(probs >= cfg.score_threshold)[0]
            boxes, probs, lvl = boxes[keep], probs[keep], lvl[keep]
            keep = batched_nms_any(boxes, probs, lvl, cfg.nms_threshold)[:post_n]
            result.append(boxes[keep])
        return result
