"""Fast R-CNN (Girshick, 2015): one trunk pass per image, RoI pooling of external proposals, one head.

The proposals come from outside the network (selective search, ``detector.proposals``): in training and
evaluation from the on-disk cache, through ``target["proposals"]`` / the ``proposals`` argument; for a new
image without proposals the model runs selective search itself (``propose``), which is the method's real
test-time cost.

Shape shorthand: N images, P proposals of one image, K object classes (labels 1..K, 0 = background).
Boxes are ``xyxy`` float tensors in continuous pixel coordinates; inputs and outputs are in the original
image's pixels, everything inside in the resized image's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection.transform import resize_boxes

from detector.data.proposals import SelectiveSearchSettings, selective_search
from detector.models.backbones import build_backbone
from detector.models.base import Detector, DetectorConfig
from detector.models.roi_heads import RoIHeads, RoIHeadsConfig
from detector.models.transform import detector_transform


def _fast_rcnn_heads() -> RoIHeadsConfig:
    # The paper's sampling: 64 RoIs per image (2 images per batch), 25% foreground at IoU >= 0.5, background
    # from IoU [0.1, 0.5) (the lower bound mines hard-ish negatives), ground truth among the RoIs.
    return RoIHeadsConfig(
        pooler="roi_pool", batch_size_per_image=64, positive_fraction=0.25, fg_iou=0.5, bg_iou_low=0.1
    )


@dataclass
class SelectiveSearchConfig(DetectorConfig):
    """The fields of the kinds that score selective-search proposals (Fast R-CNN, R-CNN)."""

    proposal_source = "selective_search"

    # Selective search as the model was trained with it (a dict of ``SelectiveSearchSettings``), used by
    # ``propose`` for images that come without proposals; the cache is keyed by the same settings.
    proposals: dict = field(default_factory=lambda: {"mode": "fast", "max_proposals": 2000, "scale": 500})
    max_proposals: int = 2000  # the paper's test-time count; the top P of selective search's ranking

    def override(self, *, proposal_mode=None, max_proposals=None, **others) -> list[str]:
        if proposal_mode:
            self.proposals = {**self.proposals, "mode": proposal_mode}
        if max_proposals:
            self.proposals = {**self.proposals, "max_proposals": max_proposals}
            self.max_proposals = max_proposals
        return super().override(**others)


@dataclass
class FastRCNNConfig(SelectiveSearchConfig):
    """Everything needed to rebuild the network; stored in checkpoints. Defaults are the paper's VGG16 recipe."""

    min_size: tuple[int, ...] = (600,)
    max_size: int = 1000
    roi_heads: RoIHeadsConfig = field(default_factory=_fast_rcnn_heads)

    def override(self, *, min_size=None, max_size=None, pooler=None, **others) -> list[str]:
        if min_size:
            self.min_size = tuple(min_size)
        if max_size:
            self.max_size = max_size
        if pooler:
            self.roi_heads.pooler = pooler
        return super().override(**others)


def tiny_fast_rcnn_config(num_classes: int) -> FastRCNNConfig:
    """The small CPU model for tests and the generated dataset: Faster R-CNN's tiny trunk and input sizes, and
    RoIAlign (see ``faster_rcnn.tiny_config``); selective search on the images as they are (about 300 px)."""
    cfg = FastRCNNConfig(backbone="tiny", num_classes=num_classes, min_size=(288,), max_size=480)
    cfg.roi_heads.pooler = "roi_align"
    cfg.proposals = {"mode": "fast", "max_proposals": 2000, "scale": 0}
    return cfg


def selective_search_settings(config) -> SelectiveSearchSettings:
    """The ``SelectiveSearchSettings`` a Fast R-CNN / R-CNN config records."""
    return SelectiveSearchSettings.from_dict(config.proposals)


def propose(images: list[Tensor], config) -> list[Tensor]:
    """Selective search on each image (float [3, H, W] in [0, 1]) -> [P, 4] proposals in its pixels.

    A numpy round trip by necessity: selective search is OpenCV's, on uint8 HxWx3 images."""
    settings = selective_search_settings(config)
    out = []
    for img in images:
        array = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        out.append(torch.from_numpy(np.ascontiguousarray(selective_search(array, settings))).to(img.device))
    return out


def top_proposals(proposals: list[Tensor], max_proposals: int, device: torch.device) -> list[Tensor]:
    """The first ``max_proposals`` of each image's proposals (they come in ranking order), as float32."""
    return [torch.as_tensor(p, dtype=torch.float32, device=device).reshape(-1, 4)[:max_proposals] for p in proposals]


class SelectiveSearchDetector(Detector):
    """Base of the kinds that score selective-search proposals: they take ``proposals`` from the targets (training,
    cached) or the call (evaluation, cached), and run selective search themselves for a new image."""

    config: SelectiveSearchConfig

    @property
    def max_proposals(self) -> int:
        return self.config.max_proposals  # the top of selective search's ranking

    @max_proposals.setter
    def max_proposals(self, n: int) -> None:
        self.config.max_proposals = n


class FastRCNN(SelectiveSearchDetector):
    """``forward(images, targets=None, proposals=None)``: images is a list of [3, H, W] float tensors in [0, 1].

    Training: ``targets`` (``{"boxes": [G, 4], "labels": [G], "proposals": [P, 4]}`` per image) -> dict of named
    losses. Inference: per image ``{"boxes": [D, 4], "labels": [D], "scores": [D]}`` in original-image pixels;
    ``proposals`` (per image [P, 4], original pixels) or, when omitted, selective search on the spot.
    """

    kind = "fast_rcnn"
    config_class = FastRCNNConfig
    tiny_config = staticmethod(tiny_fast_rcnn_config)

    def __init__(
        self, config: FastRCNNConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights"
    ):
        super().__init__(config)
        self.transform = detector_transform(config.min_size, config.max_size)
        self.backbone = build_backbone(config.backbone, pretrained, weights_dir=weights_dir, **config.backbone_options)
        self.roi_heads = RoIHeads(self.backbone, config.num_classes, config.roi_heads)

    def forward(
        self,
        images: list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        proposals: list[Tensor] | None = None,
    ):
        if self.training and targets is None:
            raise ValueError("training mode needs targets; call model.eval() for inference")
        if targets is not None:
            if any("proposals" not in t for t in targets):
                raise ValueError("Fast R-CNN trains on external proposals: every target needs a 'proposals' entry")
            proposals = [t["proposals"] for t in targets]
        elif proposals is None:
            proposals = propose(images, self.config)
        proposals = top_proposals(proposals, self.config.max_proposals, images[0].device)
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        # The transform resizes images and target boxes; the proposals follow the same per-image scaling.
        proposals = [resize_boxes(p, size, new) for p, size, new in zip(proposals, original_sizes, batch.image_sizes)]
        features = self.backbone(batch.tensors)
        detections, losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        if targets is not None:
            return losses
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)
