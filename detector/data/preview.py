"""Augmentation previews: a grid of samples, each as the original and a few augmented versions of it.

Detection (``task="detect"``) reads a VOC-format dataset and draws the boxes after augmentation. Classification
(``task="classify"``) reads an image-folder layout ``ROOT/<split>/<class>/*.jpg``, or, when ``ROOT/<split>`` does not
exist, the objects of a VOC-format ``ROOT`` cropped out of their images; its augmented views are the network's input
(normalisation undone for display). One row per sample, the original first. ``python -m detector.augment`` is the
command line.

Images are uint8 [H, W, 3] RGB arrays when loaded, float [3, H, W] tensors in [0, 1] after a transform, and PIL
images once drawn; boxes are ``xyxy`` in continuous pixel coordinates of the image they are drawn on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from detector.core.images import load_rgb
from detector.core.visualize import draw_detections
from detector.data.augment import classification_transform, detection_pipeline
from detector.data.folder import IMAGE_EXTENSIONS
from detector.data.formats import open_detection
from detector.data.transforms import keep_numpy

__all__ = ["TASKS", "DataError", "Grid", "augmentation_grid", "detection_rows", "classification_rows", "compose_grid"]

TASKS: tuple[str, ...] = ("detect", "classify")
_GAP = 4  # pixels between tiles

Row = tuple[list[Image.Image], str | None]  # the tiles of one sample, and its caption (None: no caption)


class DataError(Exception):
    """A dataset folder the user has to fix or point elsewhere; the message says which and why."""


def _to_pil(image: Tensor) -> Image.Image:
    """float [3, H, W] in [0, 1] -> RGB image."""
    array = image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def _denormalise(image: Tensor) -> Tensor:
    """A normalised classification input [3, h, w] back to [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return image * std + mean


def _caption(image: Image.Image, text: str) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(11, round(out.height / 12)))
    x0, y0, x1, y1 = draw.textbbox((2, 2), text, font=font)
    draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 255), font=font)
    return out


def _pick(count: int, n: int, seed: int) -> list[int]:
    """``n`` indices of ``range(count)`` drawn by ``seed`` (all of them, in order, when there are no more)."""
    if count <= n:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), n))


def detection_rows(root: Path, split: str, preset: str, n: int, views: int, seed: int) -> Iterator[Row]:
    """Per sample: the original and ``views`` augmentations of it, boxes drawn with their class names; no caption."""
    dataset = open_detection(root, split, transforms=keep_numpy)
    if len(dataset) == 0:
        raise DataError(f"{root}: split {split!r} lists no images; pick another --split")
    transform = detection_pipeline(preset, train=True)
    names = dataset.classes

    def draw(image: Tensor, target: dict) -> Image.Image:
        labels = [names[int(i) - 1] for i in target["labels"]]
        return draw_detections(_to_pil(image), target["boxes"].tolist(), labels, class_names=names)

    for i in _pick(len(dataset), n, seed):
        image, target = dataset[i]
        original = torch.from_numpy(image).permute(2, 0, 1).float().div(255)
        row = [draw(original, target)]
        for v in range(views):
            transform.reseed(seed * 1_000_003 + i * 1_009 + v)
            row.append(draw(*transform(image, target)))
        yield row, None


def _image_folder_items(root: Path, split: str) -> list[tuple[Path, str]]:
    folder = root / split
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    items = [(f, c.name) for c in classes for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise DataError(f"{folder}: no images found; expected {folder}/<class>/*.jpg (or .png, .jpeg, .bmp, .webp)")
    return items


def _load_rgb(path: Path) -> np.ndarray:
    try:
        return load_rgb(path, exif_transpose=True)  # as the classifier trains on it (detector.data.folder)
    except OSError as exc:
        raise DataError(f"{path} is not a readable image ({exc}); delete or replace it") from None


def _voc_object_crops(root: Path, split: str) -> list[tuple[np.ndarray, str]]:
    """Every non-difficult object of a VOC-format split, cropped to its box: (uint8 [h, w, 3], class name)."""
    dataset = open_detection(root, split, transforms=keep_numpy)
    crops = []
    for i in range(len(dataset)):
        image, target = dataset[i]
        for box, label, difficult in zip(target["boxes"], target["labels"], target["difficult"]):
            x0, y0 = int(box[0].floor()), int(box[1].floor())  # floor/ceil: every pixel the box touches
            x1, y1 = int(box[2].ceil()), int(box[3].ceil())
            if not difficult and x1 > x0 and y1 > y0:
                crops.append((image[y0:y1, x0:x1], dataset.classes[int(label) - 1]))
    if not crops:
        raise DataError(f"{root}: split {split!r} has no (non-difficult) objects to crop; pick another --split")
    return crops


def classification_rows(root: Path, split: str, preset: str, n: int, views: int, seed: int, size: int) -> Iterator[Row]:
    """Per sample: the original and ``views`` network inputs made from it; the class name as caption."""
    if (root / split).is_dir():
        items = _image_folder_items(root, split)
        load = lambda item: (_load_rgb(item[0]), item[1])  # noqa: E731
    else:
        try:
            items = _voc_object_crops(root, split)
        except FileNotFoundError:
            raise DataError(
                f"{root / split}: folder not found; --task classify reads ROOT/<split>/<class>/*.jpg "
                "or the objects of a VOC-format ROOT"
            ) from None
        load = lambda item: item  # noqa: E731
    transform = classification_transform(preset, train=True, size=size)
    for i in _pick(len(items), n, seed):
        image, name = load(items[i])
        row = [Image.fromarray(image)]
        for v in range(views):
            transform.reseed(seed * 1_000_003 + i * 1_009 + v)
            row.append(_to_pil(_denormalise(transform(image))))
        yield row, name


def compose_grid(rows: list[Row], cell: int) -> Image.Image:
    """Tiles scaled to height ``cell`` (aspect kept), rows stacked top to bottom on a dark background; a row's
    caption is written on its first tile after scaling, so it reads the same on small and large images."""
    scaled = []
    for row, caption in rows:
        tiles = [im.resize((max(1, round(im.width * cell / im.height)), cell), Image.BILINEAR) for im in row]
        if caption:
            tiles[0] = _caption(tiles[0], caption)
        scaled.append(tiles)
    width = max(sum(im.width for im in row) + _GAP * (len(row) + 1) for row in scaled)
    grid = Image.new("RGB", (width, len(scaled) * (cell + _GAP) + _GAP), (32, 32, 32))
    for r, row in enumerate(scaled):
        x = _GAP
        for im in row:
            grid.paste(im, (x, _GAP + r * (cell + _GAP)))
            x += im.width + _GAP
    return grid


class Grid(NamedTuple):
    """An augmentation preview: the composed ``image`` and the number of ``samples`` (rows) in it."""

    image: Image.Image
    samples: int


def augmentation_grid(
    root: Path,
    *,
    task: str,
    preset: str,
    split: str = "train",
    n: int = 16,
    views: int = 3,
    seed: int = 0,
    size: int = 224,
    cell: int = 160,
) -> Grid:
    """``n`` samples of ``root``'s ``split`` (drawn by ``seed``), each with ``views`` augmentations by ``preset``.

    ``task`` is ``"detect"`` or ``"classify"`` (see the module docstring); ``size`` is the classification input size,
    ``cell`` the tile height in pixels. Raises ``DataError``, ``FileNotFoundError`` or ``ValueError`` (including
    ``AnnotationError``) with a message naming the folder or file for data that cannot be shown.
    """
    if task == "detect":
        rows = list(detection_rows(root, split, preset, n, views, seed))
    elif task == "classify":
        rows = list(classification_rows(root, split, preset, n, views, seed, size))
    else:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return Grid(compose_grid(rows, cell), len(rows))
