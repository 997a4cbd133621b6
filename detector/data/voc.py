"""PASCAL VOC, and any folder in VOC format, as a detection dataset.

Layout read::

    ROOT/Annotations/{image_id}.xml
    ROOT/JPEGImages/{image_id}.jpg      (or the image named by <filename> in the XML)
    ROOT/ImageSets/Main/{split}.txt     (one image id per line; the only source of the image list)
    ROOT/labels.txt                     (optional: class names, one per line)

``ROOT`` may also be a ``VOCdevkit/`` folder holding ``VOC2007/``, ``VOC2012/``, ...; a split then
means the union of that split over the selected years (the usual "07+12 trainval").

Shape shorthand: N objects in one image, K dataset classes, H x W the image as stored on disk.

Boxes are ``xyxy`` float tensors in continuous pixel coordinates of the image as stored on disk.
VOC writes 1-based inclusive pixel corners, so ``xmin=1, xmax=10`` covers ten pixel columns and
becomes ``[0, 10]``: the box is ``[xmin - 1, ymin - 1, xmax, ymax]``. Label 0 is background and the
dataset classes are 1..K (label ``i + 1`` is ``classes[i]``).
"""

from __future__ import annotations

import copy
import operator
import os
import re
import warnings as _warnings  # aliased: the dataset has an attribute called `warnings`
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.core.images import load_rgb, read_size

__all__ = [
    "VOC_CLASSES",
    "AnnotationError",
    "AnnotationWarning",
    "VOCObject",
    "VOCAnnotation",
    "parse_voc_xml",
    "read_labels_file",
    "VOCDetection",
]

# The official devkit order; label i + 1 is VOC_CLASSES[i].
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# Tried after `{id}.jpg` and the XML's <filename>, for VOC-format folders exported by other tools.
_IMAGE_EXTENSIONS = (".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp")


class AnnotationError(ValueError):
    """A VOC annotation or labels file the user has to fix.

    The message names the file and the field and says what to change; ``path`` and ``field``
    hold the same information for code that wants to report it differently.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, field: str | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.field = field


class AnnotationWarning(UserWarning):
    """A problem in an annotation that was repaired (box clipped or dropped, size corrected)."""


@dataclass(frozen=True)
class VOCObject:
    """One ``<object>`` of an annotation.

    ``box`` is continuous xyxy, ``(xmin - 1, ymin - 1, xmax, ymax)`` of the VOC 1-based corners,
    exactly as written in the file (not clipped to the image).
    """

    name: str
    box: tuple[float, float, float, float]
    difficult: bool
    truncated: bool
    occluded: bool
    pose: str


@dataclass(frozen=True)
class VOCAnnotation:
    """One parsed ``Annotations/{image_id}.xml``.

    ``width`` and ``height`` come from ``<size>``; ``parse_voc_xml`` leaves them 0 when ``<size>``
    is missing or zero, and ``VOCDetection`` fills them in from the image file's header.
    """

    image_id: str
    filename: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]


# --------------------------------------------------------------------------------------------
# Parsing


def parse_voc_xml(path: str | os.PathLike, classes: Sequence[str] | None = None) -> VOCAnnotation:
    """Parse one VOC annotation file.

    With ``classes`` given, each object name is matched case-insensitively (after stripping
    whitespace) to that list and stored in the list's spelling; a name not in it raises
    ``AnnotationError``. With ``classes=None`` names are only stripped, which is useful for
    listing the classes a new dataset uses.

    Raises ``AnnotationError`` naming the file and field for malformed files: XML syntax errors,
    an ``<object>`` without ``<name>`` or without its own ``<bndbox>``, missing or non-numeric
    coordinates, ``xmin > xmax`` or ``ymin > ymax``.
    """
    lookup = None if classes is None else _class_lookup(_check_class_names(classes, "the classes argument"))
    hint = "add it to the classes argument (or to the dataset's labels.txt, one name per line)"
    return _parse_voc_xml(Path(path), lookup, hint)


def read_labels_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Read ``labels.txt``: one class name per line, in label order (line 1 is label 1).

    Surrounding whitespace and blank lines are ignored. A name repeated (compared
    case-insensitively, as object names are matched that way) raises ``AnnotationError``.
    """
    path = Path(path)
    # utf-8-sig: files saved by Windows editors start with a byte-order mark.
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    names: list[str] = []
    first_seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            continue
        key = name.casefold()
        if key in first_seen:
            raise AnnotationError(
                f"{path}: line {lineno}: class {name!r} repeats line {first_seen[key]} "
                "(class names are matched case-insensitively); keep one of them",
                path=path,
                field=f"line {lineno}",
            )
        first_seen[key] = lineno
        names.append(name)
    if not names:
        raise AnnotationError(f"{path}: no class names found; write one class name per line", path=path, field="labels")
    return tuple(names)


def _check_class_names(classes: Iterable[str], source: str) -> tuple[str, ...]:
    if isinstance(classes, str):
        raise TypeError(f"{source} must be a sequence of class names, not the single string {classes!r}")
    names = []
    seen: set[str] = set()
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{source}: class names must be non-empty strings, got {name!r}")
        name = name.strip()
        if name.casefold() in seen:
            raise ValueError(f"{source}: class {name!r} appears twice (names are matched case-insensitively)")
        seen.add(name.casefold())
        names.append(name)
    if not names:
        raise ValueError(f"{source}: the class list is empty")
    return tuple(names)


def _class_lookup(classes: Sequence[str]) -> dict[str, str]:
    return {name.casefold(): name for name in classes}


def _parse_voc_xml(path: Path, lookup: dict[str, str] | None, unknown_hint: str) -> VOCAnnotation:
    data = path.read_bytes()
    # Some exporters put a byte-order mark or blank lines before "<?xml"; expat rejects that.
    data = data.removeprefix(b"\xef\xbb\xbf").lstrip()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise AnnotationError(
            f"{path}: XML syntax error ({e}); fix the file or re-export it from the labelling tool",
            path=path,
            field="XML",
        ) from None

    size = root.find("size")
    width = _parse_size(path, size, "width")
    height = _parse_size(path, size, "height")

    objects = []
    # findall("object") and obj.find("bndbox") only look at direct children: a person's
    # <part> (head, hand, foot) carries its own <bndbox>, which must not be taken for the person's.
    for k, obj in enumerate(root.findall("object"), 1):
        where = f"object[{k}]"
        raw_name = obj.findtext("name")
        if raw_name is None or not raw_name.strip():
            raise AnnotationError(
                f"{path}: {where}/name: the {_ordinal(k)} <object> has no <name>; "
                "add the class name or delete the object",
                path=path,
                field=f"{where}/name",
            )
        name = raw_name.strip()
        if lookup is not None:
            if name.casefold() not in lookup:
                known = ", ".join(lookup.values())
                raise AnnotationError(
                    f"{path}: {where}/name: {name!r} is not a known class (known: {known}); "
                    f"fix the name or {unknown_hint}",
                    path=path,
                    field=f"{where}/name",
                )
            name = lookup[name.casefold()]

        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError(
                f"{path}: {where}/bndbox: object {name!r} has no <bndbox> of its own "
                "(boxes inside <part> do not count); add xmin, ymin, xmax, ymax in a <bndbox>",
                path=path,
                field=f"{where}/bndbox",
            )
        xmin, ymin, xmax, ymax = (
            _parse_coord(path, bndbox, f"{where}/bndbox", tag) for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        for lo, hi, lo_tag, hi_tag in ((xmin, xmax, "xmin", "xmax"), (ymin, ymax, "ymin", "ymax")):
            if lo > hi:
                raise AnnotationError(
                    f"{path}: {where}/bndbox/{lo_tag}: {lo_tag}={lo:g} is greater than {hi_tag}={hi:g} "
                    f"for object {name!r}; swap them or redraw the box",
                    path=path,
                    field=f"{where}/bndbox/{lo_tag}",
                )
        pose = (obj.findtext("pose") or "").strip() or "Unspecified"
        objects.append(
            VOCObject(
                name=name,
                box=(xmin - 1.0, ymin - 1.0, xmax, ymax),
                difficult=_parse_flag(path, obj, where, "difficult"),
                truncated=_parse_flag(path, obj, where, "truncated"),
                occluded=_parse_flag(path, obj, where, "occluded"),
                pose=pose,
            )
        )

    return VOCAnnotation(
        image_id=path.stem,
        filename=(root.findtext("filename") or "").strip(),
        width=width,
        height=height,
        objects=tuple(objects),
    )


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def _parse_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    # float() accepts "nan" and "inf", which no box or size can be.
    return value if np.isfinite(value) else None


def _parse_size(path: Path, size: ET.Element | None, tag: str) -> int:
    """<size>/<tag> as an int, or 0 when <size> or the field is missing, empty or zero."""
    text = None if size is None else size.findtext(tag)
    if text is None or not text.strip():
        return 0
    value = _parse_number(text.strip())
    if value is None or value < 0:
        raise AnnotationError(
            f"{path}: size/{tag}: {text.strip()!r} is not a valid image {tag}; "
            "write the image's size in pixels or delete <size> to read it from the image",
            path=path,
            field=f"size/{tag}",
        )
    return int(round(value))


def _parse_coord(path: Path, bndbox: ET.Element, where: str, tag: str) -> float:
    text = bndbox.findtext(tag)
    if text is None or not text.strip():
        raise AnnotationError(
            f"{path}: {where}/{tag}: <{tag}> is missing or empty; a <bndbox> needs numeric xmin, ymin, xmax and ymax",
            path=path,
            field=f"{where}/{tag}",
        )
    value = _parse_number(text.strip())
    if value is None:
        raise AnnotationError(
            f"{path}: {where}/{tag}: {text.strip()!r} is not a number; write the pixel coordinate",
            path=path,
            field=f"{where}/{tag}",
        )
    return value


def _parse_flag(path: Path, obj: ET.Element, where: str, tag: str) -> bool:
    """A 0/1 flag such as <difficult>; missing or empty means 0, as in the VOC devkit."""
    text = (obj.findtext(tag) or "").strip().lower()
    if not text or text in ("false", "no"):
        return False
    if text in ("true", "yes"):
        return True
    value = _parse_number(text)
    if value is None:
        raise AnnotationError(
            f"{path}: {where}/{tag}: {text!r} is not a flag; write 0 or 1",
            path=path,
            field=f"{where}/{tag}",
        )
    return value != 0


# --------------------------------------------------------------------------------------------
# Folder layout


def _find_subsets(root: Path, years: Sequence[str | int] | str | int | None) -> list[Path]:
    """The VOC-format folders (each holding Annotations/) that ``root`` and ``years`` select."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found; pass the folder holding Annotations/ or VOCdevkit/")
    if isinstance(years, (str, int)):
        years = (years,)
    years = None if years is None else tuple(str(y) for y in years)
    if not (root / "Annotations").is_dir() and (root / "VOCdevkit").is_dir():
        root = root / "VOCdevkit"

    if (root / "Annotations").is_dir():
        if years is not None and {f"VOC{y}" for y in years} != {root.name}:
            raise ValueError(
                f"years={years} selects VOC20xx folders inside a VOCdevkit folder, but {root} is a single "
                "dataset folder (it holds Annotations/); pass the VOCdevkit folder as root, or drop years"
            )
        return [root]

    found = {}
    for child in sorted(root.iterdir()):
        match = re.fullmatch(r"VOC(\d{4})", child.name)
        if match and child.is_dir():
            found[match.group(1)] = child
    if not found:
        raise FileNotFoundError(
            f"{root}: neither a VOC-format folder (Annotations/, JPEGImages/, ImageSets/Main/) "
            "nor a VOCdevkit folder (VOC2007/, VOC2012/, ...); check the root path"
        )
    if years is None:
        return list(found.values())
    missing = [y for y in years if y not in found]
    if missing:
        raise FileNotFoundError(
            f"{root / f'VOC{missing[0]}'}: year folder not found; years found in {root}: {', '.join(found)}"
        )
    return [found[y] for y in dict.fromkeys(years)]


def _looks_like_class_file(rows: list[list[str]]) -> bool:
    """True for ``{class}_{split}.txt`` contents: every line is an image id and a 1 / -1 / 0 flag."""
    return bool(rows) and all(len(row) == 2 and row[1] in ("1", "-1", "0") for row in rows)


def _read_rows(path: Path) -> list[list[str]]:
    return [row for row in (line.split() for line in path.read_text(encoding="utf-8-sig").splitlines()) if row]


def _is_class_split_file(path: Path, class_keys: set[str]) -> bool:
    stem = path.stem.casefold()
    return any(stem.startswith(key + "_") for key in class_keys) and _looks_like_class_file(_read_rows(path))


def _read_split(subset: Path, split: str, classes: Sequence[str]) -> list[str]:
    """Image ids listed in ``subset/ImageSets/Main/{split}.txt`` (first column of each line)."""
    main = subset / "ImageSets" / "Main"
    path = main / f"{split}.txt"
    # Both the dataset's classes and VOC's: `dog_train.txt` sits next to `train.txt` in VOC itself.
    class_keys = {c.casefold() for c in (*classes, *VOC_CLASSES)}
    if not path.is_file():
        if not main.is_dir():
            raise FileNotFoundError(
                f"{main}: folder not found; a VOC-format dataset lists its images in ImageSets/Main/{{split}}.txt"
            )
        splits = sorted(p.stem for p in main.glob("*.txt") if not _is_class_split_file(p, class_keys))
        raise FileNotFoundError(f"{path}: split file not found; split files in {main}: {', '.join(splits) or 'none'}")
    rows = _read_rows(path)
    if _is_class_split_file(path, class_keys):
        raise ValueError(
            f"{path}: this is a per-class file (image id and a 1 / -1 / 0 flag per line), not a list "
            f"of images; pass the split name alone, e.g. split={split.split('_')[-1]!r}"
        )
    return [row[0] for row in rows]


def _find_image(subset: Path, image_id: str, filename: str) -> Path:
    folder = subset / "JPEGImages"
    candidates = [folder / f"{image_id}.jpg"]
    if filename:
        # Only the base name: <filename> sometimes holds the labeller's absolute path.
        candidates.append(folder / Path(filename.replace("\\", "/")).name)
    candidates += [folder / f"{image_id}{ext}" for ext in _IMAGE_EXTENSIONS]
    candidates = list(dict.fromkeys(candidates))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(p.name for p in candidates[1:])
    error = FileNotFoundError(
        f"{candidates[0]}: image for {image_id!r} not found (also tried {tried} in {folder}); "
        f"put the image there or remove {image_id!r} from the split file"
    )
    error.filename = str(candidates[0])
    raise error


# --------------------------------------------------------------------------------------------
# Images


# --------------------------------------------------------------------------------------------
# Dataset


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

        self._subsets = _find_subsets(self.root, years)
        self.classes, self._classes_source = self._resolve_classes(classes)
        self._lookup = _class_lookup(self.classes)
        self._label_of = {name: i + 1 for i, name in enumerate(self.classes)}

        self._items: list[tuple[Path, str]] = []
        for subset in self._subsets:
            ids: dict[str, None] = {}  # ordered set: a union of splits keeps file order, no repeats
            for s in self.splits:
                ids.update(dict.fromkeys(_read_split(subset, s, self.classes)))
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
            return _check_class_names(classes, "the classes argument"), "the classes argument"
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
            annotation = _parse_voc_xml(self._xml_path(i), self._lookup, hint)
            if annotation.width <= 0 or annotation.height <= 0:
                subset, image_id = self._items[i]
                self._image_paths[i] = _find_image(subset, image_id, annotation.filename)
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
            path = _find_image(subset, image_id, self.annotation(i).filename)
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
