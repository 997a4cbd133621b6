"""Test-time augmentation: ten-crop and multi-scale classification, flip-merged detection.

Shape shorthand: K classes, H x W the image, N images. Images are float tensors [3, H, W] in whatever value
range the model takes (TTA only moves pixels: resizing, cropping and mirroring are linear, so normalised inputs
stay normalised). Detection boxes are ``xyxy`` float in continuous pixel coordinates of the image they refer to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torchvision.ops import batched_nms

__all__ = ["ten_crop", "multiscale", "classify_tta", "flip_boxes", "detect_flip_tta", "TTA_MODES"]

TTA_MODES: tuple[str, ...] = ("none", "10crop", "multiscale")


def _resize_shorter(image: Tensor, size: int) -> Tensor:
    """[3, H, W] -> [3, H', W'] with min(H', W') = size and the aspect ratio kept (antialiased bilinear)."""
    return TF.resize(image, [size], antialias=True)


def ten_crop(image: Tensor, *, resize: int = 256, crop: int = 224) -> Tensor:
    """AlexNet's test views: [3, H, W] -> [10, 3, crop, crop].

    The shorter side is resized to ``resize``; views 0-4 are the top-left, top-right, bottom-left, bottom-right and
    centre crops, and view 5 + i is the horizontal mirror of view i. (torchvision's ``ten_crop`` takes its last five
    crops from the mirrored image, so its view 5 mirrors the top-*right* crop; the set is the same, the order is not.)
    """
    if crop > resize:
        raise ValueError(f"ten_crop: crop ({crop}) must not exceed resize ({resize})")
    crops = torch.stack(TF.five_crop(_resize_shorter(image, resize), [crop, crop]))
    return torch.cat([crops, crops.flip(-1)])


def multiscale(
    image: Tensor, scales: Sequence[int] = (224, 256, 288, 320), *, center_crop: bool = False
) -> list[Tensor]:
    """One view per scale: the image with its shorter side resized to ``s`` ([3, s, ~s W/H] or [3, ~s H/W, s]),
    or with ``center_crop`` its centre ``s`` x ``s`` square. Sizes differ, hence a list."""
    views = [_resize_shorter(image, s) for s in scales]
    if center_crop:
        views = [TF.center_crop(v, [s, s]) for v, s in zip(views, scales)]
    return views


@torch.no_grad()
def classify_tta(
    model: nn.Module,
    image: Tensor,
    mode: str = "none",
    *,
    resize: int = 256,
    crop: int = 224,
    scales: Sequence[int] = (224, 256, 288, 320),
) -> Tensor:
    """Class probabilities [K] for one image [3, H, W]: the mean of the softmax over the views.

    ``model`` maps [B, 3, h, w] to logits [B, K]. ``"none"`` feeds the image as given, ``"10crop"`` the views of
    ``ten_crop`` (one batch of 10), ``"multiscale"`` the full images of ``multiscale`` one at a time: the model must
    then accept any input size, e.g. by ending its convolutions with adaptive pooling (torchvision's VGG and ResNet
    do) or by being fully convolutional with spatially averaged class scores (VGG's dense evaluation).
    Probabilities, not logits, are averaged, as in the papers. The model's train/eval mode is left as it is.
    """
    if mode == "none":
        views = [image[None]]
    elif mode == "10crop":
        views = [ten_crop(image, resize=resize, crop=crop)]
    elif mode == "multiscale":
        views = [v[None] for v in multiscale(image, scales)]
    else:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {', '.join(TTA_MODES)}")
    probs = torch.cat([model(v).softmax(dim=-1) for v in views])  # [V, K]
    return probs.mean(dim=0)


def flip_boxes(boxes: Tensor, width: int | float) -> Tensor:
    """xyxy boxes [R, 4] of a horizontally mirrored image of ``width`` -> the same boxes in the original image:
    x' = W - x, with x1 and x2 swapping roles."""
    flipped = boxes.clone()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def _detector_setting(model: nn.Module, name: str, default: float) -> float:
    roi = getattr(getattr(model, "config", None), "roi_heads", None)
    return getattr(roi, name, default)


@torch.no_grad()
def detect_flip_tta(model: nn.Module, images: list[Tensor], *, iou: float | None = None) -> list[dict[str, Tensor]]:
    """Detections of each image [3, H, W] and of its horizontal mirror, merged: list of N dicts with ``boxes``
    [D, 4], ``labels`` [D] and ``scores`` [D], best first.

    The mirror's boxes are flipped back (``flip_boxes``), both sets concatenated and reduced by per-class NMS at
    ``iou`` (default: the model's ``config.roi_heads.nms_threshold``, else 0.5), keeping at most the model's
    ``config.roi_heads.detections_per_image`` (else 100). ``model`` is an eval-mode detector taking a list of images
    and returning such dicts (``detector.models.faster_rcnn.FasterRCNN``); originals and mirrors go in one call.
    """
    if model.training:
        raise ValueError("detect_flip_tta needs an eval-mode detector; call model.eval() first")
    iou = _detector_setting(model, "nms_threshold", 0.5) if iou is None else iou
    max_dets = int(_detector_setting(model, "detections_per_image", 100))
    outputs = model(list(images) + [img.flip(-1) for img in images])
    merged = []
    for img, plain, mirrored in zip(images, outputs[: len(images)], outputs[len(images) :]):
        boxes = torch.cat([plain["boxes"], flip_boxes(mirrored["boxes"], img.shape[-1])])
        scores = torch.cat([plain["scores"], mirrored["scores"]])
        labels = torch.cat([plain["labels"], mirrored["labels"]])
        keep = batched_nms(boxes, scores, labels, iou)[:max_dets]  # sorted by decreasing score
        merged.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return merged
