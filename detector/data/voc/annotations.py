"""Reading VOC annotation files (``Annotations/{image_id}.xml``) and class lists (``labels.txt``).

Shape shorthand: N objects in one image.

Boxes are continuous ``xyxy`` pixel coordinates of the image as stored on disk. VOC writes 1-based inclusive pixel
corners, so ``xmin=1, xmax=10`` covers ten pixel columns and becomes ``[0, 10]``: the box is
``[xmin - 1, ymin - 1, xmax, ymax]``. Nothing here clips boxes to the image; ``VOCDetection`` does.

Every problem a user can fix raises ``AnnotationError`` naming the file and the field and saying what to change.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "VOC_CLASSES",
    "AnnotationError",
    "AnnotationWarning",
    "VOCObject",
    "VOCAnnotation",
    "parse_voc_xml",
    "parse_annotation",
    "read_labels_file",
    "check_class_names",
    "class_lookup",
]

# The official devkit order; label i + 1 is VOC_CLASSES[i].
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


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
    """One parsed ``Annotations/{image_id}.xml``; ``objects`` holds its N objects in file order.

    ``width`` and ``height`` come from ``<size>``; ``parse_voc_xml`` leaves them 0 when ``<size>``
    is missing or zero, and ``VOCDetection`` fills them in from the image file's header.
    """

    image_id: str
    filename: str
    width: int
    height: int
    objects: tuple[VOCObject, ...]


# --------------------------------------------------------------------------------------------
# Class lists


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


def check_class_names(classes: Iterable[str], source: str) -> tuple[str, ...]:
    """``classes`` stripped, as a tuple; raises naming ``source`` for a string, an empty name, a repeat or no names."""
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


def class_lookup(classes: Sequence[str]) -> dict[str, str]:
    """Case-folded name -> the spelling in ``classes``, for matching object names case-insensitively."""
    return {name.casefold(): name for name in classes}


# --------------------------------------------------------------------------------------------
# Annotation files


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
    lookup = None if classes is None else class_lookup(check_class_names(classes, "the classes argument"))
    hint = "add it to the classes argument (or to the dataset's labels.txt, one name per line)"
    return parse_annotation(Path(path), lookup, hint)


def parse_annotation(path: Path, lookup: dict[str, str] | None, unknown_hint: str) -> VOCAnnotation:
    """``parse_voc_xml`` with the class lookup already built (see ``class_lookup``; None keeps names as written).

    ``unknown_hint`` ends the message for an object whose class is not in ``lookup``: what the user should do.
    """
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
    # findall("object") only looks at direct children, as _parse_object does for <bndbox>.
    objects = [_parse_object(path, obj, k, lookup, unknown_hint) for k, obj in enumerate(root.findall("object"), 1)]
    return VOCAnnotation(
        image_id=path.stem,
        filename=(root.findtext("filename") or "").strip(),
        width=width,
        height=height,
        objects=tuple(objects),
    )


def _parse_object(path: Path, obj: ET.Element, k: int, lookup: dict[str, str] | None, unknown_hint: str) -> VOCObject:
    """The ``k``-th (1-based) ``<object>`` of the file at ``path``."""
    where = f"object[{k}]"
    name = _parse_name(path, obj, k, lookup, unknown_hint)
    # obj.find("bndbox") only looks at direct children: a person's <part> (head, hand, foot) carries its
    # own <bndbox>, which must not be taken for the person's.
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
    return VOCObject(
        name=name,
        box=(xmin - 1.0, ymin - 1.0, xmax, ymax),
        difficult=_parse_flag(path, obj, where, "difficult"),
        truncated=_parse_flag(path, obj, where, "truncated"),
        occluded=_parse_flag(path, obj, where, "occluded"),
        pose=pose,
    )


# --------------------------------------------------------------------------------------------
# Fields


def _parse_name(path: Path, obj: ET.Element, k: int, lookup: dict[str, str] | None, unknown_hint: str) -> str:
    """<name> of the ``k``-th object, stripped, in ``lookup``'s spelling when a lookup is given."""
    where = f"object[{k}]"
    raw_name = obj.findtext("name")
    if raw_name is None or not raw_name.strip():
        raise AnnotationError(
            f"{path}: {where}/name: the {_ordinal(k)} <object> has no <name>; add the class name or delete the object",
            path=path,
            field=f"{where}/name",
        )
    name = raw_name.strip()
    if lookup is None:
        return name
    if name.casefold() not in lookup:
        known = ", ".join(lookup.values())
        raise AnnotationError(
            f"{path}: {where}/name: {name!r} is not a known class (known: {known}); fix the name or {unknown_hint}",
            path=path,
            field=f"{where}/name",
        )
    return lookup[name.casefold()]


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
