"""``AnnotatedDetection``: what every detection dataset format shares, whatever file the boxes come from (VOC XML,
COCO JSON, YOLO txt): the image list, targets built from parsed records, repairs of boxes outside the image, and
the images themselves.

Shape shorthand: N objects in one image, K dataset classes, H x W the image as stored on disk.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image as stored on disk. Label 0 is
background and the dataset classes are 1..K (label ``i + 1`` is ``classes[i]``). A format subclass provides
``annotation(i)`` (a ``VOCAnnotation`` record: the one record type of every format), ``image_path(i)`` and
``source(i)``.
"""

from __future__ import annotations

import copy
import operator
import os
import warnings as _warnings  # aliased: the dataset has an attribute called `warnings`
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.core.images import load_rgb
from detector.data.voc.annotations import AnnotationWarning, VOCAnnotation, class_lookup

__all__ = ["AnnotatedDetection"]


class AnnotatedDetection(torch.utils.data.Dataset):
    """Images and targets of a detection dataset (see the module docstring; ``VOCDetection`` documents the
    arguments and the target).

    ``items`` are (folder, image id) pairs in dataset order; ``classes_source`` says where the class list came
    from, for messages."""

    def __init__(
        self,
        root: str | os.PathLike,
        splits: tuple[str, ...],
        classes: tuple[str, ...],
        classes_source: str,
        items: list[tuple[Path, str]],
        *,
        keep_difficult: bool = True,
        transforms: Callable[[np.ndarray, dict[str, Any]], Any] | None = None,
    ):
        self.root = Path(root).expanduser()
        self.splits = splits
        self.keep_difficult = keep_difficult
        self.transforms = transforms
        self.warnings: list[str] = []
        self.classes, self._classes_source = classes, classes_source
        self._lookup = class_lookup(self.classes)
        self._label_of = {name: i + 1 for i, name in enumerate(self.classes)}
        self._items = items
        self.image_ids: list[str] = [image_id for _, image_id in self._items]
        self._annotations: dict[int, VOCAnnotation] = {}
        self._image_paths: dict[int, Path] = {}
        # (index, height, width) -> boxes [N, 4], labels [N], difficult [N] after repairs.
        self._targets: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._seen_warnings: set[str] = set()
        self._warned_files: set[Path] = set()

    @property
    def classes_source(self) -> str:
        """Where the class list came from (labels.txt, the annotations, the classes argument), for messages."""
        return self._classes_source

    def __len__(self) -> int:
        return len(self._items)

    def first(self, n: int) -> AnnotatedDetection:
        """The same dataset limited to its first ``n`` images (e.g. a quick validation on part of a split)."""
        view = copy.copy(self)
        view._items = self._items[:n]
        view.image_ids = self.image_ids[:n]
        # Caches are keyed by index, and the first n indices keep their meaning; copy so the views stay apart.
        view._annotations, view._image_paths, view._targets = (
            dict(self._annotations),
            dict(self._image_paths),
            dict(self._targets),
        )
        view.warnings = list(self.warnings)
        return view

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.splits!r}, "
            f"images={len(self)}, classes={len(self.classes)})"
        )

    def _index(self, i: int) -> int:
        i = operator.index(i)
        n = len(self._items)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} images")
        return i % n

    def subset(self, indices: Sequence[int], split: str) -> AnnotatedDetection:
        """The same dataset limited to the images at ``indices`` (in that order), named ``split``: a train/val
        split drawn from a dataset that has none (``--val-ratio``)."""
        indices = [self._index(i) for i in indices]
        view = copy.copy(self)
        view._items = [self._items[i] for i in indices]
        view.image_ids = [self.image_ids[i] for i in indices]
        view.splits = (split,)
        view._annotations = {k: self._annotations[i] for k, i in enumerate(indices) if i in self._annotations}
        view._image_paths = {k: self._image_paths[i] for k, i in enumerate(indices) if i in self._image_paths}
        view._targets, view._seen_warnings, view._warned_files = {}, set(self._seen_warnings), set(self._warned_files)
        view.warnings = list(self.warnings)
        return view

    # --- what each format provides

    def annotation(self, i: int) -> VOCAnnotation:
        """Image ``i``'s record: file name, size, objects with boxes as written (not clipped)."""
        raise NotImplementedError

    def image_path(self, i: int) -> Path:
        raise NotImplementedError

    def source(self, i: int) -> Path:
        """The file that describes image ``i`` (its XML, label file or JSON), named in every message about it."""
        raise NotImplementedError

    def source_file(self, i: int) -> Path:
        """The file on disk that ``source(i)`` names (a COCO image's source also names the image in the file)."""
        return self.source(i)

    # --- shared: targets, images, repairs

    def image_size(self, i: int) -> tuple[int, int]:
        """(height, width) from <size> without opening the image (the image header if <size> is missing)."""
        annotation = self.annotation(i)
        return annotation.height, annotation.width

    def target(self, i: int) -> dict[str, Any]:
        """The target of image ``i`` without decoding the image; boxes are clipped to <size>."""
        annotation = self.annotation(i)
        return self._make_target(self._index(i), annotation, annotation.height, annotation.width, [])

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        i = self._index(i)
        annotation = self.annotation(i)
        path = self.image_path(i)
        image = load_rgb(path, exif_transpose=False)  # boxes refer to the pixels as stored
        height, width = image.shape[:2]
        notes = []
        if (height, width) != (annotation.height, annotation.width):
            # The pixels are what the model sees, so their size wins over <size>.
            notes.append(
                f"{self.source(i)}: <size> says {annotation.width}x{annotation.height} (width x height) "
                f"but {path} is {width}x{height}; used the image's size. Fix <size>, or check that the "
                "annotation belongs to this image"
            )
        target = self._make_target(i, annotation, height, width, notes)
        if self.transforms is not None:
            return self.transforms(image, target)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous().float().div_(255.0), target

    def _make_target(
        self, i: int, annotation: VOCAnnotation, height: int, width: int, notes: list[str]
    ) -> dict[str, Any]:
        key = (i, height, width)
        cached = self._targets.get(key)
        if cached is None:
            cached, repairs = self._repair(self.source(i), annotation, height, width)
            notes = notes + repairs
            self._targets[key] = cached
        self._record(self.source(i), notes)
        boxes, labels, difficult = cached
        # Fresh tensors each call: transforms may modify the target in place.
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult, dtype=torch.bool),
            "image_id": annotation.image_id,
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
        }

    def _repair(
        self, source: Path, annotation: VOCAnnotation, height: int, width: int
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[str]]:
        """Clip boxes to the image and drop those left without area; returns arrays and messages."""
        boxes, labels, difficult, messages = [], [], [], []
        for k, obj in enumerate(annotation.objects, 1):
            if obj.difficult and not self.keep_difficult:
                continue
            x1, y1, x2, y2 = obj.box
            clipped = (
                min(max(x1, 0.0), width),
                min(max(y1, 0.0), height),
                min(max(x2, 0.0), width),
                min(max(y2, 0.0), height),
            )
            where = f"{source}: object[{k}] ({obj.name!r}) box {_fmt_box(obj.box)}"
            if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
                messages.append(
                    f"{where} has no area inside the {width}x{height} image; dropped it. Fix its <bndbox> to keep it"
                )
                continue
            if clipped != obj.box:
                messages.append(f"{where} reaches outside the {width}x{height} image; clipped to {_fmt_box(clipped)}")
            boxes.append(clipped)
            labels.append(self._label_of[obj.name])
            difficult.append(obj.difficult)
        arrays = (
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64),
            np.asarray(difficult, dtype=bool),
        )
        return arrays, messages

    def _record(self, source: Path, messages: list[str]) -> None:
        new = [m for m in messages if m not in self._seen_warnings]
        if not new:
            return
        self._seen_warnings.update(new)
        self.warnings += new
        if source not in self._warned_files:
            self._warned_files.add(source)
            _warnings.warn("; ".join(new), AnnotationWarning, stacklevel=4)


def _fmt_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
