"""``VOCDetection``: a VOC-format folder (or a VOCdevkit of several years) as a detection dataset.

Shape shorthand: N objects in one image, K dataset classes, H x W the image as stored on disk.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image as stored on disk (see
``detector.data.voc.annotations`` for how VOC's 1-based corners map to them). Label 0 is background and the
dataset classes are 1..K (label ``i + 1`` is ``classes[i]``).
"""

from __future__ import annotations

import copy
import operator
import os
import warnings as _warnings  # aliased: the dataset has an attribute called `warnings`
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.core.images import load_rgb, read_size
from detector.data.voc.annotations import (
    VOC_CLASSES,
    AnnotationWarning,
    VOCAnnotation,
    check_class_names,
    class_lookup,
    parse_annotation,
    read_labels_file,
)
from detector.data.voc.layout import find_image, find_subsets, read_split

__all__ = ["VOCDetection"]


class VOCDetection(torch.utils.data.Dataset):
    """Images and targets of a VOC-format dataset.

    Args:
        root: a folder holding ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``; or a
            ``VOCdevkit/`` folder holding ``VOC2007/``, ``VOC2012/``, ... (or the folder above it).
        split: name of ``ImageSets/Main/{split}.txt``, or a tuple of names whose union is taken.
        classes: class names, label ``i + 1`` is ``classes[i]``. Default: ``ROOT/labels.txt`` if
            present, else the 20 VOC classes.
        keep_difficult: if False, objects marked ``<difficult>1</difficult>`` are left out of targets.
        transforms: ``transforms(image, target) -> (image, target)``, called with the image as uint8
            numpy [H, W, 3] RGB; its result is returned unchanged. Without it the image is float32
            [3, H, W] in [0, 1].
        years: with a VOCdevkit root, the years to use, e.g. ``("2007", "2012")``; default every
            ``VOC20xx`` folder found. The split is the union over the years.

    A target is a dict: ``boxes`` float32 [N, 4] xyxy, ``labels`` int64 [N] in 1..K, ``difficult``
    bool [N], ``image_id`` str, ``orig_size`` int64 [2] = (H, W).

    Boxes reaching outside the image are clipped to it and boxes left with no area are dropped;
    each repair is appended to ``warnings`` (naming the file) and reported once per file with
    ``warnings.warn``. With DataLoader workers the repairs found in a worker stay in that worker's
    copy of the dataset; call ``target(i)`` for every index in the main process to collect them.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | Sequence[str] = "trainval",
        *,
        classes: Sequence[str] | None = None,
        keep_difficult: bool = True,
        transforms: Callable[[np.ndarray, dict[str, Any]], Any] | None = None,
        years: Sequence[str | int] | str | int | None = None,
    ):
        self.root = Path(root).expanduser()
        self.keep_difficult = keep_difficult
        self.transforms = transforms
        self.warnings: list[str] = []

        self.splits = (split,) if isinstance(split, str) else tuple(split)
        if not self.splits or not all(isinstance(s, str) and s for s in self.splits):
            raise ValueError(f"split must be a split name or a tuple of names, got {split!r}")

        self._subsets = find_subsets(self.root, years)
        self.classes, self._classes_source = self._resolve_classes(classes)
        self._lookup = class_lookup(self.classes)
        self._label_of = {name: i + 1 for i, name in enumerate(self.classes)}

        self._items: list[tuple[Path, str]] = []
        for subset in self._subsets:
            ids: dict[str, None] = {}  # ordered set: a union of splits keeps file order, no repeats
            for s in self.splits:
                ids.update(dict.fromkeys(read_split(subset, s, self.classes)))
            self._check_annotations_exist(subset, ids)
            self._items += [(subset, image_id) for image_id in ids]
        self.image_ids: list[str] = [image_id for _, image_id in self._items]

        self._annotations: dict[int, VOCAnnotation] = {}
        self._image_paths: dict[int, Path] = {}
        # (index, height, width) -> boxes [N, 4], labels [N], difficult [N] after repairs.
        self._targets: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._seen_warnings: set[str] = set()
        self._warned_files: set[Path] = set()

    def _resolve_classes(self, classes: Sequence[str] | None) -> tuple[tuple[str, ...], str]:
        if classes is not None:
            return check_class_names(classes, "the classes argument"), "the classes argument"
        # A labels.txt at the root covers every year; otherwise each year folder may carry one,
        # and they must agree or the same label would mean different classes.
        files = list(dict.fromkeys([self.root / "labels.txt", *(s / "labels.txt" for s in self._subsets)]))
        files = [f for f in files if f.is_file()]
        if not files:
            return VOC_CLASSES, f"the 20 VOC classes, as {self.root} has no labels.txt"
        if files[0] != self.root / "labels.txt":
            first = read_labels_file(files[0])
            for other in files[1:]:
                if read_labels_file(other) != first:
                    raise ValueError(
                        f"{files[0]} and {other} list different classes; make them identical, "
                        f"put one labels.txt in {self.root}, or pass classes="
                    )
        return read_labels_file(files[0]), str(files[0])

    @staticmethod
    def _check_annotations_exist(subset: Path, ids: Iterable[str]) -> None:
        folder = subset / "Annotations"
        present = {entry.name for entry in os.scandir(folder)} if folder.is_dir() else set()
        missing = [image_id for image_id in ids if f"{image_id}.xml" not in present]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            error = FileNotFoundError(
                f"{folder / (missing[0] + '.xml')}: annotation not found{more}; "
                "add the XML files or remove these ids from the split file"
            )
            error.filename = str(folder / f"{missing[0]}.xml")
            raise error

    def __len__(self) -> int:
        return len(self._items)

    def first(self, n: int) -> VOCDetection:
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

    def _xml_path(self, i: int) -> Path:
        subset, image_id = self._items[i]
        return subset / "Annotations" / f"{image_id}.xml"

    def annotation(self, i: int) -> VOCAnnotation:
        """The parsed XML of image ``i`` (parsed once, then cached); boxes as written, not clipped."""
        i = self._index(i)
        annotation = self._annotations.get(i)
        if annotation is None:
            hint = f"add it to labels.txt (classes now: {self._classes_source}), one name per line, or pass classes="
            annotation = parse_annotation(self._xml_path(i), self._lookup, hint)
            if annotation.width <= 0 or annotation.height <= 0:
                subset, image_id = self._items[i]
                self._image_paths[i] = find_image(subset, image_id, annotation.filename)
                height, width = read_size(self._image_paths[i])
                annotation = replace(annotation, width=width, height=height)
            self._annotations[i] = annotation
        return annotation

    def image_path(self, i: int) -> Path:
        """Path of image ``i``: ``JPEGImages/{id}.jpg``, else the XML's <filename>, else other extensions."""
        i = self._index(i)
        path = self._image_paths.get(i)
        if path is None:
            subset, image_id = self._items[i]
            path = find_image(subset, image_id, self.annotation(i).filename)
            self._image_paths[i] = path
        return path

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
                f"{self._xml_path(i)}: <size> says {annotation.width}x{annotation.height} (width x height) "
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
            cached, repairs = self._repair(self._xml_path(i), annotation, height, width)
            notes = notes + repairs
            self._targets[key] = cached
        self._record(self._xml_path(i), notes)
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
        self, xml_path: Path, annotation: VOCAnnotation, height: int, width: int
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
            where = f"{xml_path}: object[{k}] ({obj.name!r}) box {_fmt_box(obj.box)}"
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

    def _record(self, xml_path: Path, messages: list[str]) -> None:
        new = [m for m in messages if m not in self._seen_warnings]
        if not new:
            return
        self._seen_warnings.update(new)
        self.warnings += new
        if xml_path not in self._warned_files:
            self._warned_files.add(xml_path)
            _warnings.warn("; ".join(new), AnnotationWarning, stacklevel=4)


def _fmt_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
