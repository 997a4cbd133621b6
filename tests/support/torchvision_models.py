"""torchvision's COCO detector architectures with random weights made to behave like trained ones, for the offline
equivalence and fine-tuning tests: batch-norm statistics calibrated on a photograph (so activations are sane), the
classifier's logits spread (so detections pass the 0.05 threshold), and, for v1 and MobileNet, the trunk's batch norm
frozen as in torchvision's COCO weights."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import detection
from torchvision.ops.misc import FrozenBatchNorm2d

from tests.support.images import photo

SIZE = 512  # both models resize to this shorter side (torchvision's preset is 800; the equivalence is the same)


def _frozen(module: nn.Module) -> None:
    """BatchNorm2d -> FrozenBatchNorm2d in place, as torchvision's COCO v1 and MobileNet weights were trained."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            _frozen(child)


def torchvision_model(arch: str, seed: int = 0, spread: float = 8.0) -> nn.Module:
    torch.manual_seed(seed)
    model = getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=91)
    model.transform.min_size = (SIZE,)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: the statistics of exactly this photo
    model.train()
    with torch.no_grad():
        images, _ = model.transform([photo("astronaut")])
        model.roi_heads.box_head(model.roi_heads.box_roi_pool(model.backbone(images.tensors), [
            torch.tensor([[0, 0, 200, 200], [100, 50, 400, 300], [10, 200, 300, 500]], dtype=torch.float32)
        ], images.image_sizes))  # fmt: skip
        model.roi_heads.box_predictor.cls_score.weight.mul_(spread)
    if arch != "fasterrcnn_resnet50_fpn_v2":
        _frozen(model.backbone.body)
    return model.eval()
