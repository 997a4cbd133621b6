"""``VOCDetection``: a VOC-format folder (or a VOCdevkit of several years) as a detection dataset.

Shape shorthand: N objects in one image, K dataset classes, H x W the image as stored on disk.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image as stored on disk (see
``detector.data.voc.annotations`` for how VOC's 1-based corners map to them). Label 0 is background and the
dataset classes are 1..K (label ``i + 1`` is ``classes[i]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.images import read_size
from detector.data.voc.annotations import (
    VOC_CLASSES,
    VOCAnnotation,
    check_class_names,
    parse_annotation,
    parse_voc_xml,
    read_labels_file,
)
from detector.data.voc.base import AnnotatedDetection
from detector.data.voc.layout import annotations_dir, find_image, find_subsets, images_dir, read_split

__all__ = ["VOCDetection"]


class VOCDetection(AnnotatedDetection):
    """Images and targets of a VOC-format dataset.

    Args:
        root: a folder holding ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``; or a
            ``VOCdevkit/`` folder holding ``VOC2007/``, ``VOC2012/``, ... (or the folder above it); or a plain
            folder of XML files beside their images (as LabelImg writes them).
        split: name of ``ImageSets/Main/{split}.txt``, or a tuple of names whose union is taken. Without
            ``ImageSets/Main`` the one split is ``"all"``, every annotated image.
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
        root = Path(root).expanduser()
        splits = (split,) if isinstance(split, str) else tuple(split)
        if not splits or not all(isinstance(s, str) and s for s in splits):
            raise ValueError(f"split must be a split name or a tuple of names, got {split!r}")
        self.root = root
        self._subsets = find_subsets(root, years)
        resolved = self._resolve_classes(classes)
        items: list[tuple[Path, str]] = []
        for subset in self._subsets:
            ids: dict[str, None] = {}  # ordered set: a union of splits keeps file order, no repeats
            for s in splits:
                ids.update(dict.fromkeys(read_split(subset, s, resolved[0] if resolved else ())))
            self._check_annotations_exist(subset, ids)
            items += [(subset, image_id) for image_id in ids]
        names, source = resolved or _discover_classes(root, items)
        super().__init__(root, splits, names, source, items, keep_difficult=keep_difficult, transforms=transforms)

    def _resolve_classes(self, classes: Sequence[str] | None) -> tuple[tuple[str, ...], str] | None:
        """(class names, where they came from), or None: no labels.txt, so they are discovered."""
        if classes is not None:
            return check_class_names(classes, "the classes argument"), "the classes argument"
        # A labels.txt at the root covers every year; otherwise each year folder may carry one,
        # and they must agree or the same label would mean different classes.
        files = list(dict.fromkeys([self.root / "labels.txt", *(s / "labels.txt" for s in self._subsets)]))
        files = [f for f in files if f.is_file()]
        if not files:
            return None
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
        folder = annotations_dir(subset)
        present = {entry.name for entry in os.scandir(folder)} if folder.is_dir() else set()
        missing = [image_id for image_id in ids if f"{image_id}.xml" not in present]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            error = FileNotFoundError(
                f"{folder / (missing[0] + '.xml')}: annotation not found{more}; "
                "add the XML files or remove these ids from the split file"
            )
            raise error

    def annotation(self, i: int) -> VOCAnnotation:
        """The parsed XML of image ``i`` (parsed once, then cached); boxes as written, not clipped."""
        i = self._index(i)
        annotation = self._annotations.get(i)
        if annotation is None:
            hint = f"add it to labels.txt (classes now: {self._classes_source}), one name per line, or pass classes="
            annotation = parse_annotation(self.source(i), self._lookup, hint)
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
            usual = images_dir(subset) / f"{image_id}.jpg"  # find_image's first choice: no need to parse the XML
            path = usual if usual.is_file() else find_image(subset, image_id, self.annotation(i).filename)
            self._image_paths[i] = path
        return path

    def source(self, i: int) -> Path:
        subset, image_id = self._items[self._index(i)]
        return annotations_dir(subset) / f"{image_id}.xml"


def _discover_classes(root: Path, items: list[tuple[Path, str]]) -> tuple[tuple[str, ...], str]:
    """Without labels.txt: the names the annotations use, sorted (the first spelling of names that differ only in
    case). When every name is a VOC class, the 20 VOC classes in devkit order instead, so that a VOC-named dataset
    keeps VOC's labels (and VOC-trained checkpoints keep fitting it)."""
    names: dict[str, str] = {}
    for subset, image_id in items:
        for obj in parse_voc_xml(annotations_dir(subset) / f"{image_id}.xml").objects:
            names.setdefault(obj.name.strip().casefold(), obj.name.strip())
    if set(names) <= {c.casefold() for c in VOC_CLASSES}:
        return VOC_CLASSES, f"the 20 VOC classes, as {root} has no labels.txt and its names are VOC's"
    found = tuple(sorted(names.values(), key=str.casefold))
    return check_class_names(found, "the annotations"), f"discovered in the annotations of {root} (no labels.txt)"
