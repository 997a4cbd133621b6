"""``YOLODetection``: an ultralytics-format dataset (YOLO txt labels) as a detection dataset.

Layouts read::

    data.yaml                       path: ROOT (relative to the yaml), train: images/train, val: images/val,
                                    test: ..., names: [a, b] or {0: a, 1: b}
    ROOT/images/{split}/*.jpg       (a folder without data.yaml: its classes from ROOT/classes.txt)
    ROOT/labels/{split}/*.txt       one line per box: ``class cx cy w h``, normalised to [0, 1]

As ultralytics does, an image's label file is its path with the last ``images`` folder replaced by ``labels`` and
the extension by ``.txt``; an image without one is background. A split names the yaml's key (``train``, ``val``,
``test``) or the folder under ``images/``. YOLO class ``c`` is label ``c + 1``. A YOLO box is turned into pixels
with the image's size, read from its header; a line with the wrong count of values, a class outside the names or
a value outside [0, 1] is an ``AnnotationError`` naming the file, the line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from detector.core.images import read_size
from detector.data.voc.annotations import AnnotationError, VOCAnnotation, VOCObject, check_class_names
from detector.data.voc.base import AnnotatedDetection
from detector.data.voc.layout import ALL, MissingSplitError

__all__ = ["YOLODetection", "looks_like_yolo"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_FIELDS = ("class", "cx", "cy", "w", "h")


def looks_like_yolo(root: Path) -> bool:
    """A ``.yaml`` file, or a folder with ``data.yaml`` or with ``images/`` beside ``labels/``."""
    if root.is_file():
        return root.suffix in (".yaml", ".yml")
    return (root / "data.yaml").is_file() or ((root / "images").is_dir() and (root / "labels").is_dir())


class YOLODetection(AnnotatedDetection):
    """Images and targets of a YOLO-format dataset; arguments and targets as ``VOCDetection``'s."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | Sequence[str] = "train",
        *,
        classes: Sequence[str] | None = None,
        keep_difficult: bool = True,
        transforms: Callable[[np.ndarray, dict[str, Any]], Any] | None = None,
    ):
        root = Path(root).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found; pass a data.yaml or a folder with images/ and labels/")
        splits = (split,) if isinstance(split, str) else tuple(split)
        base, spec, names, source = _read_spec(root)
        if classes is not None:
            names, source = check_class_names(classes, "the classes argument"), "the classes argument"
        items, paths = [], []
        for s in splits:
            for image in _split_images(base, spec, s, root):
                items.append((image.parent, _image_id(base, image)))
                paths.append(image)
        super().__init__(base, splits, names, source, items, keep_difficult=keep_difficult, transforms=transforms)
        self._image_paths = dict(enumerate(paths))

    def image_path(self, i: int) -> Path:
        return self._image_paths[self._index(i)]

    def source(self, i: int) -> Path:
        return label_path(self.image_path(i))

    def annotation(self, i: int) -> VOCAnnotation:
        i = self._index(i)
        record = self._annotations.get(i)
        if record is None:
            image = self.image_path(i)
            height, width = read_size(image)
            objects = _read_labels(label_path(image), self.classes, width, height)
            record = VOCAnnotation(self.image_ids[i], image.name, width, height, objects)
            self._annotations[i] = record
        return record


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, the extension ``.txt``."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _image_id(base: Path, image: Path) -> str:
    try:
        return image.relative_to(base).with_suffix("").as_posix()
    except ValueError:
        return image.with_suffix("").as_posix()


def _read_spec(root: Path) -> tuple[Path, dict, tuple[str, ...], str]:
    """(dataset root, the yaml's content or {}, class names, where they came from)."""
    path = root if root.is_file() else root / "data.yaml"
    if not path.is_file():  # a folder without data.yaml: classes.txt, as LabelImg's YOLO export writes it
        classes_file = root / "classes.txt"
        if not classes_file.is_file():
            raise AnnotationError(
                f"{root}: a YOLO folder needs data.yaml (with names) or classes.txt (one class per line)", path=root
            )
        names = [line.strip() for line in classes_file.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        return root, {}, check_class_names(names, str(classes_file)), str(classes_file)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AnnotationError(f"{path}: not valid YAML ({exc})", path=path) from None
    if not isinstance(spec, dict) or "names" not in spec:
        raise AnnotationError(f"{path}: a YOLO data.yaml needs 'names' (a list, or a dict of id: name)", path=path)
    names = spec["names"]
    if isinstance(names, dict):
        ids = sorted(int(k) for k in names)
        if ids != list(range(len(ids))):
            raise AnnotationError(f"{path}: 'names' ids must be 0..{len(ids) - 1}, got {ids}", path=path, field="names")
        names = [names[k] if k in names else names[str(k)] for k in ids]
    base = Path(spec.get("path") or path.parent)
    base = base if base.is_absolute() else path.parent / base
    return base, spec, check_class_names([str(n) for n in names], f"{path} (names)"), f"{path} (names)"


def _split_images(base: Path, spec: dict, split: str, root: Path) -> list[Path]:
    if spec:
        if split not in spec or spec[split] in (None, ""):
            known = [k for k in ("train", "val", "test") if spec.get(k)]
            raise MissingSplitError(f"{root}: no split {split!r}; the yaml names {known}")
        entries = spec[split] if isinstance(spec[split], list) else [spec[split]]
        folders = [base / str(entry) for entry in entries]
    else:
        folders = [base / "images" / split] if split != ALL else [base / "images"]
        if not folders[0].is_dir():
            known = sorted(p.name for p in (base / "images").iterdir() if p.is_dir())
            raise MissingSplitError(f"{folders[0]}: split folder not found; splits in {base / 'images'}: {known}")
    images = []
    for folder in folders:
        if folder.suffix == ".txt":  # a list of image paths, one per line, relative to the dataset root
            lines = folder.read_text(encoding="utf-8-sig").splitlines()
            images += [base / line.strip() for line in lines if line.strip()]
        elif folder.is_dir():
            images += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            raise FileNotFoundError(f"{folder}: the images of split {split!r} are not there")
    return images


def _read_labels(path: Path, classes: Sequence[str], width: int, height: int) -> tuple[VOCObject, ...]:
    if not path.is_file():
        return ()  # ultralytics: no label file, a background image
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        values = line.split()
        if not values:
            continue
        where = f"{path}, line {number}"
        if len(values) != 5:
            raise AnnotationError(
                f"{where}: {len(values)} values; a box is 5: class cx cy w h (segments and keypoints are not read)",
                path=path, field="line",
            )  # fmt: skip
        try:
            c = int(values[0])
            cx, cy, w, h = (float(v) for v in values[1:])
        except ValueError:
            raise AnnotationError(f"{where}: not numbers: {line.strip()!r}", path=path, field="line") from None
        if not 0 <= c < len(classes):
            raise AnnotationError(
                f"{where}: class {c} is outside the {len(classes)} names (0..{len(classes) - 1})", path=path,
                field="class",
            )  # fmt: skip
        for field, value in zip(_FIELDS[1:], (cx, cy, w, h)):
            if not 0.0 <= value <= 1.0:
                raise AnnotationError(f"{where}: {field} = {value:g} is outside [0, 1]", path=path, field=field)
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        objects.append(VOCObject(classes[c], box, False, False, False, ""))
    return tuple(objects)
