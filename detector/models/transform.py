"""The detectors' input transform: torchvision's ``GeneralizedRCNNTransform`` (normalise, resize so the shorter side
is ``min_size`` and the longer at most ``max_size``, pad into a batch divisible by 32), with one departure.

torchvision computes the resized side as ``floor(side * scale)``: for an image whose long side is more than
``max_size`` times its short side (740 x 1 under a 736 px cap, 7400 x 10, 40000 x 1) the short side becomes 0 and
the model fails. Here every side keeps at least one pixel;
for every other image the resize is torchvision's, to the bit. Boxes are ``xyxy`` float pixels; targets' boxes
follow the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD


class DetectorTransform(GeneralizedRCNNTransform):
    """``GeneralizedRCNNTransform`` whose resize never gives a side of 0 pixels (see the module docstring)."""

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        if torchvision._is_tracing() and not self.training:
            return self._traced_resize(image), target
        h, w = image.shape[-2:]
        if self.training:
            if self._skip_resize:
                return image, target
            size = self.torch_choice(self.min_size)
        else:
            size = self.min_size[-1]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        if math.floor(h * scale) >= 1 and math.floor(w * scale) >= 1:  # torchvision's own call, bit for bit
            resized = F.interpolate(
                image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
            )[0]
        else:
            out = (max(1, math.floor(h * scale)), max(1, math.floor(w * scale)))
            resized = F.interpolate(image[None], size=out, mode="bilinear", align_corners=False)[0]
        if target is None:
            return resized, target
        target = {**target, "boxes": resize_boxes(target["boxes"], (h, w), resized.shape[-2:])}
        return resized, target

    def _traced_resize(self, image: Tensor) -> Tensor:
        """The test-time resize as graph operations on the image's traced shape (export, ``detector.inference.
        export``): the same sizes as ``resize``, computed in float64 as Python does, so an exported graph resizes an
        image of any size as the eager model does. (torchvision's traced resize computes the scale in float32 and
        can come out a pixel short.)"""
        hw = torch._shape_as_tensor(image)[-2:].to(torch.float64)
        # In float64, as Python computes eager's sizes. Every operand is a 1-element tensor, not a 0-dim one: the
        # ONNX exporter turns 0-dim tensors into float32 scalars (432 px became 431). S / min(h, w) = max(S / hw).
        size, cap = (torch.tensor([float(s)], dtype=torch.float64) for s in (self.min_size[-1], self.max_size))
        scale = torch.minimum((size / hw).amax(0, keepdim=True), (cap / hw).amin(0, keepdim=True))
        out = (hw * scale).floor().to(torch.int64).clamp(min=1)
        return F.interpolate(image[None], size=(out[0], out[1]), mode="bilinear", align_corners=False)[0]


def detector_transform(min_size: tuple[int, ...], max_size: int) -> DetectorTransform:
    """The transform every detector kind uses: ImageNet normalisation, batches padded to multiples of 32."""
    return DetectorTransform(
        min_size=min_size, max_size=max_size, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
        size_divisible=32,
    )  # fmt: skip
