"""torchvision's feature-pyramid COCO detectors (``fasterrcnn_resnet50_fpn``, ``..._v2``,
``fasterrcnn_mobilenet_v3_large_fpn``) with random weights made to behave like trained ones, offline: batch-norm
statistics calibrated on one image (so activations are sane), the classifier's logits spread (so detections pass
the 0.05 score threshold), and, for v1 and MobileNet, the trunk's batch norm frozen as in torchvision's COCO weights.

Used by the benchmark (``detector.bench --backbone *_fpn``) and by the tests that compare our imported models with
torchvision's (``tests/support/torchvision_models.py``). Nothing here downloads weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import detection
from torchvision.ops.misc import FrozenBatchNorm2d

# torchvision's COCO v1 and MobileNet weights were trained with frozen batch norm in the trunk, v2 with batch norm.
FROZEN_TRUNK = ("fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn")
COCO_CLASSES = 91  # torchvision's COCO category slots, background included
# RoIs (xyxy pixels of the resized image) whose pooled features calibrate the box head's batch norm (v2).
CALIBRATION_BOXES = torch.tensor([[0, 0, 200, 200], [100, 50, 400, 300], [10, 200, 300, 500]], dtype=torch.float32)


def freeze_batch_norm(module: nn.Module) -> None:
    """BatchNorm2d -> FrozenBatchNorm2d in place, keeping the statistics and the affine parameters."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)


def _build(arch: str) -> nn.Module:
    """torchvision's builder without weights: random initialisation, batch norm everywhere (not frozen)."""
    return getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=COCO_CLASSES)


def torchvision_detector(arch: str, state_dict: dict[str, Tensor] | None = None) -> nn.Module:
    """torchvision's ``arch`` laid out as its COCO weights run it (the trunk's batch norm frozen for v1 and
    MobileNet), with random weights or ``state_dict`` (one of ``calibrated_detector``'s models). In eval mode."""
    model = _build(arch)
    if arch in FROZEN_TRUNK:
        freeze_batch_norm(model.backbone.body)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model.eval()


def calibrated_detector(
    arch: str, image: Tensor, *, seed: int = 0, spread: float = 8.0, min_size: int | None = None
) -> nn.Module:
    """torchvision's ``arch`` with weights drawn after ``torch.manual_seed(seed)``, every batch norm's statistics
    set to those of ``image`` ([3, H, W] in [0, 1], resized to ``min_size``, default torchvision's 800), and the
    classifier's weights multiplied by ``spread``. In eval mode, resizing to ``min_size``."""
    torch.manual_seed(seed)
    model = _build(arch)
    if min_size is not None:
        model.transform.min_size = (min_size,)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: the statistics of exactly this image
    model.train()
    with torch.no_grad():
        images, _ = model.transform([image])
        features = model.backbone(images.tensors)
        model.roi_heads.box_head(model.roi_heads.box_roi_pool(features, [CALIBRATION_BOXES], images.image_sizes))
        # Random logits sit near 0: every class scores about 1/91 and nothing passes the 0.05 threshold.
        model.roi_heads.box_predictor.cls_score.weight.mul_(spread)
    if arch in FROZEN_TRUNK:
        freeze_batch_norm(model.backbone.body)
    return model.eval()
