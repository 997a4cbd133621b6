"""Test-time augmentation: ten-crop and multi-scale classification, flip-merged detection.

Classification views scale with the model's input size S the way the augmentation presets do (224 -> S): the
views are cut from images made at ``round(256 S / 224)`` (``tta_source_transform``); ``10crop`` takes the four
corner and the centre S x S crops and their mirrors, ``multiscale`` resizes to shorter sides ``round(k S / 224)``
for k in 224, 256, 288, 320 and needs a model that accepts any input size.

Shape shorthand: K classes, H x W the image, N images. Images are float tensors [3, H, W] in whatever value
range the model takes (TTA only moves pixels: resizing, cropping and mirroring are linear, so normalised inputs
stay normalised). Detection boxes are ``xyxy`` float in continuous pixel coordinates of the image they refer to.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torchvision.ops import batched_nms

from detector.data.augment import ClassificationTransform
from detector.models.base import Detector

__all__ = [
    "TTA_MODES",
    "classify_tta",
    "detect_flip_tta",
    "flip_boxes",
    "multiscale",
    "ten_crop",
    "tta_sizes",
    "tta_source_transform",
]

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


@torch.no_grad()
def detect_flip_tta(model: Detector, images: list[Tensor], *, iou: float | None = None) -> list[dict[str, Tensor]]:
    """Detections of each image [3, H, W] and of its horizontal mirror, merged: list of N dicts with ``boxes``
    [D, 4], ``labels`` [D] and ``scores`` [D], best first.

    The mirror's boxes are flipped back (``flip_boxes``), both sets concatenated and reduced by per-class NMS at
    ``iou`` (default: the model's ``config.roi_heads.nms_threshold``), keeping at most the model's
    ``config.roi_heads.detections_per_image``. ``model`` is an eval-mode detector (``detector.models.base.Detector``);
    originals and mirrors go in one call.
    """
    if model.training:
        raise ValueError("detect_flip_tta needs an eval-mode detector; call model.eval() first")
    heads = model.config.roi_heads
    iou = heads.nms_threshold if iou is None else iou
    max_dets = heads.detections_per_image
    outputs = model(list(images) + [img.flip(-1) for img in images])
    merged = []
    for img, plain, mirrored in zip(images, outputs[: len(images)], outputs[len(images) :]):
        boxes = torch.cat([plain["boxes"], flip_boxes(mirrored["boxes"], img.shape[-1])])
        scores = torch.cat([plain["scores"], mirrored["scores"]])
        labels = torch.cat([plain["labels"], mirrored["labels"]])
        keep = batched_nms(boxes, scores, labels, iou)[:max_dets]  # sorted by decreasing score
        merged.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return merged


def tta_sizes(input_size: int) -> dict:
    """Sizes of the test-time views for a model trained at ``input_size`` S: ``resize`` = round(256 S / 224),
    the side of the images the views are taken from; ``crop`` = S; ``scales`` = round(k S / 224) for
    k = 224, 256, 288, 320."""
    return {
        "resize": round(256 * input_size / 224),
        "crop": input_size,
        "scales": tuple(round(k * input_size / 224) for k in (224, 256, 288, 320)),
    }


def tta_source_transform(preset: str, *, input_size: int) -> ClassificationTransform:
    """The evaluation transform for TTA: uint8 [H, W, 3] -> normalised [3, R, R], R = ``tta_sizes(S)["resize"]``.

    ``alexnet`` and ``vgg`` keep the aspect ratio (shorter side R, centre R x R square, as their papers' test
    images); the other presets train on whole images squashed to a square, so their source is squashed too.
    """
    side = tta_sizes(input_size)["resize"]
    if preset in ("alexnet", "vgg"):
        return ClassificationTransform([A.SmallestMaxSize(max_size=side), A.CenterCrop(side, side)])
    return ClassificationTransform([A.Resize(side, side)])
