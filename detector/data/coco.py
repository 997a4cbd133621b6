"""``COCODetection``: a COCO-format dataset (CVAT, Label Studio, Roboflow exports) as a detection dataset.

Layouts read::

    ROOT/annotations/instances_{split}.json     (COCO's own layout; a split names its JSON file)
    ROOT/{split}/ or ROOT/images/{split}/        (the images, by each entry's file_name)

    FILE.json                                    (one file: images beside it, or in ``images=DIR``; one split, "all")

The JSON is read by pycocotools' ``COCO``, not by a hand parser. Category ids become labels 1..K in the order of
``categories`` and their names are the class names (or, given ``classes``, each category is found by name).
``iscrowd=1`` boxes are kept as ``difficult``: never trained on, ignored by evaluation, as VOC's difficult boxes.
Images without annotations are kept, as background. An image's id is its file name without the extension. COCO
boxes ``[x, y, width, height]`` are continuous pixel coordinates already: ``xyxy`` is ``[x, y, x + width, y + height]``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detector.core.images import read_size
from detector.data.voc.annotations import AnnotationError, VOCAnnotation, VOCObject, check_class_names
from detector.data.voc.base import AnnotatedDetection
from detector.data.voc.layout import ALL, MissingSplitError

__all__ = ["COCODetection", "coco_annotation_file", "looks_like_coco"]


def looks_like_coco(root: Path) -> bool:
    """A JSON file, or a folder with ``annotations/instances_*.json``."""
    return (root.is_file() and root.suffix == ".json") or any((root / "annotations").glob("instances_*.json"))


def coco_annotation_file(root: Path, split: str) -> Path:
    """``root`` itself when it is a JSON file (any split: it is the whole dataset, ``all``), else
    ``root/annotations/instances_{split}.json``."""
    if root.is_file():
        if split != ALL:
            raise MissingSplitError(
                f"{root} is one annotation file, so its images form one split, {ALL!r}: pass --val-ratio R to draw "
                f"train and val from it (or ask for split {ALL!r})"
            )
        return root
    path = root / "annotations" / f"instances_{split}.json"
    if not path.is_file():
        found = sorted(p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json"))
        raise MissingSplitError(f"{path}: annotation file not found; splits in {root / 'annotations'}: {found}")
    return path


class COCODetection(AnnotatedDetection):
    """Images and targets of a COCO-format dataset; arguments and targets as ``VOCDetection``'s, plus ``images``:
    the image folder (default: see the module docstring)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | Sequence[str] = ALL,
        *,
        classes: Sequence[str] | None = None,
        keep_difficult: bool = True,
        transforms: Callable[[np.ndarray, dict[str, Any]], Any] | None = None,
        images: str | os.PathLike | None = None,
    ):
        root = Path(root).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found; pass a COCO JSON file or a folder with annotations/")
        splits = (split,) if isinstance(split, str) else tuple(split)
        files = [coco_annotation_file(root, s) for s in splits]
        cocos = [_read(path) for path in files]
        names, source = _classes(cocos[0], files[0], classes)
        items, records, self._files = [], [], []
        for path, coco, s in zip(files, cocos, splits):
            folder = _image_folder(root, s, images)
            records += _records(path, coco, names)
            items += [(folder, record.image_id) for record, _ in records[len(items) :]]
            self._files += [path] * (len(records) - len(self._files))
        # The dataset's folder (proposal caches live under it): the JSON file's own folder for a single file.
        folder_root = root.parent if root.is_file() else root
        super().__init__(
            folder_root, splits, names, source, items, keep_difficult=keep_difficult, transforms=transforms
        )
        for i, (record, _) in enumerate(records):
            self._annotations[i] = record
            self._image_paths[i] = items[i][0] / record.filename
        self._sources = [image_source for _, image_source in records]

    def annotation(self, i: int) -> VOCAnnotation:
        i = self._index(i)
        record = self._annotations[i]
        if record.width <= 0 or record.height <= 0:  # the JSON may leave the size out: the image header has it
            height, width = read_size(self.image_path(i))
            record = self._annotations[i] = replace(record, width=width, height=height)
        return record

    def image_path(self, i: int) -> Path:
        path = self._image_paths[self._index(i)]
        if not path.is_file():
            error = FileNotFoundError(f"{path}: image of {self.source(i)} not found; put it there or pass images=DIR")
            raise error
        return path

    def source(self, i: int) -> Path:
        return self._sources[self._index(i)]

    def source_file(self, i: int) -> Path:
        return self._files[self._index(i)]


def _read(path: Path) -> COCO:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            return COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise AnnotationError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})", path=path) from None


def _classes(coco: COCO, path: Path, classes: Sequence[str] | None) -> tuple[tuple[str, ...], str]:
    if classes is not None:
        return check_class_names(classes, "the classes argument"), "the classes argument"
    names = [c["name"] for c in coco.dataset.get("categories", [])]
    if not names:
        raise AnnotationError(f"{path}: no categories; a COCO file lists its classes in 'categories'", path=path)
    return check_class_names(names, f"{path} (categories)"), f"{path} (categories)"


def _image_folder(root: Path, split: str, images: str | os.PathLike | None) -> Path:
    if images is not None:
        return Path(images).expanduser()
    if root.is_file():
        return root.parent
    for folder in (root / split, root / "images" / split, root / "images"):
        if folder.is_dir():
            return folder
    return root / split  # named in the error when an image is read


def _records(path: Path, coco: COCO, classes: tuple[str, ...]) -> list[tuple[VOCAnnotation, Path]]:
    """One (record, source for messages) per image, in the file's image order."""
    by_name = {name.casefold(): name for name in classes}
    category_names = {}
    for category in coco.dataset.get("categories", []):
        name = by_name.get(str(category["name"]).casefold())
        if name is None:
            raise AnnotationError(
                f"{path}: category {category['name']!r} (id {category['id']}) is not one of the classes "
                f"{list(classes)}",
                path=path, field="categories",
            )  # fmt: skip
        category_names[category["id"]] = name
    records = []
    for image in coco.dataset.get("images", []):
        source = Path(f"{path}[image {image['id']}: {image.get('file_name', '')}]")
        objects = []
        for ann in coco.imgToAnns.get(image["id"], []):
            if ann.get("category_id") not in category_names:
                raise AnnotationError(
                    f"{source}: annotation id {ann.get('id')} has category_id {ann.get('category_id')!r}, which no "
                    f"entry of 'categories' has; known ids: {sorted(category_names)}",
                    path=path, field="category_id",
                )  # fmt: skip
            bbox = ann.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
                raise AnnotationError(
                    f"{source}: annotation id {ann.get('id')} has bbox {bbox!r}; expected [x, y, width, height]",
                    path=path, field="bbox",
                )  # fmt: skip
            x, y, w, h = (float(v) for v in bbox)
            objects.append(
                VOCObject(category_names[ann["category_id"]], (x, y, x + w, y + h), bool(ann.get("iscrowd", 0)),
                          False, False, "")
            )  # fmt: skip
        # The file name (without extension) is the image id: unique across a dataset's splits, unlike COCO's numbers.
        record = VOCAnnotation(
            Path(str(image["file_name"])).with_suffix("").as_posix(), str(image["file_name"]),
            int(image.get("width") or 0), int(image.get("height") or 0),
            tuple(objects),
        )  # fmt: skip
        records.append((record, source))
    return records
