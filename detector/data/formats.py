"""One entry point for every detection dataset format: ``open_detection(data, split, format="auto")``.

    voc   a VOC folder (Annotations/, JPEGImages/, ImageSets/Main/), a VOCdevkit, or a plain folder of XML files
    coco  a COCO JSON file, or a folder with annotations/instances_{split}.json
    yolo  an ultralytics data.yaml, or a folder with images/{split}/ and labels/{split}/

``auto`` tells them apart by what ``data`` points at: a ``.json`` file or an ``annotations/instances_*.json``
folder is COCO, a ``.yaml`` file or a folder with ``data.yaml`` (or ``images/`` beside ``labels/``) is YOLO, anything
else VOC. Every format gives the same dataset (``detector.data.voc.base.AnnotatedDetection``): the same targets,
repairs and errors, so training, evaluation, proposals and the previews read them all.

A dataset with no split of the name asked for (a folder without ImageSets, one COCO file) can be split with
``val_ratio``: ``train`` and ``val`` are then drawn from all its images, a fixed draw for a given ``split_seed``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.data.coco import COCODetection, looks_like_coco
from detector.data.voc import VOCDetection
from detector.data.voc.base import AnnotatedDetection
from detector.data.voc.layout import ALL, MissingSplitError
from detector.data.yolo import YOLODetection, looks_like_yolo

FORMATS = ("auto", "voc", "coco", "yolo")
DRAWN_SPLITS = ("train", "val")  # what val_ratio draws from a dataset without splits


def detect_format(data: str | os.PathLike) -> str:
    """voc, coco or yolo, by what ``data`` points at (see the module docstring)."""
    root = Path(data).expanduser()
    if looks_like_coco(root):
        return "coco"
    if looks_like_yolo(root):
        return "yolo"
    return "voc"


def open_detection(
    data: str | os.PathLike,
    split: str | Sequence[str],
    *,
    format: str = "auto",
    val_ratio: float | None = None,
    split_seed: int = 0,
    years: Sequence[str] | None = None,
    images: str | os.PathLike | None = None,
    **options: Any,
) -> AnnotatedDetection:
    """The ``split`` of the dataset at ``data`` (``options``: ``classes``, ``keep_difficult``, ``transforms``).

    With ``val_ratio``, a dataset that has no split named ``train`` or ``val`` gets them drawn from all its images:
    ``val`` is a ``val_ratio`` share (at least one image), ``train`` the rest, both in dataset order."""
    kind = detect_format(data) if format == "auto" else format
    if kind not in FORMATS[1:]:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    try:
        return _open(kind, data, split, years=years, images=images, **options)
    except MissingSplitError:
        if val_ratio is None or not isinstance(split, str) or split not in DRAWN_SPLITS:
            raise
    if not 0.0 < val_ratio < 1.0:
        raise ValueError(f"val_ratio must be in (0, 1), got {val_ratio}")
    everything = _open(kind, data, ALL, years=years, images=images, **options)
    train, val = drawn_split(len(everything), val_ratio, split_seed)
    return everything.subset(train if split == "train" else val, split)


def drawn_split(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, val indices) of ``n`` images: a seeded draw of round(n * val_ratio) images (at least 1 when
    n > 1) for val, each list in dataset order."""
    n_val = min(max(round(n * val_ratio), 1 if n > 1 else 0), n - 1 if n > 1 else 0)
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return [i for i in range(n) if i not in chosen], sorted(chosen)


def _open(kind: str, data, split, *, years, images, **options) -> AnnotatedDetection:
    if kind == "coco":
        return COCODetection(data, split, images=images, **options)
    if kind == "yolo":
        return YOLODetection(data, split, **options)
    return VOCDetection(data, split, years=years, **options)
