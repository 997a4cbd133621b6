"""Where things are in a VOC-format folder: year subsets of a VOCdevkit, split files, image files.

Layout read::

    ROOT/Annotations/{image_id}.xml
    ROOT/JPEGImages/{image_id}.jpg      (or the image named by <filename> in the XML)
    ROOT/ImageSets/Main/{split}.txt     (one image id per line; the only source of the image list)

``ROOT`` may also be a ``VOCdevkit/`` folder (or the folder above it) holding ``VOC2007/``, ``VOC2012/``, ...;
each of those is a *subset* laid out as above.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from detector.data.voc.annotations import VOC_CLASSES

__all__ = ["ALL", "MissingSplitError", "find_subsets", "read_split", "find_image", "annotations_dir", "images_dir"]

# Tried after `{id}.jpg` and the XML's <filename>, for VOC-format folders exported by other tools.
_IMAGE_EXTENSIONS = (".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp")


def find_subsets(root: Path, years: Sequence[str | int] | str | int | None) -> list[Path]:
    """The VOC-format folders (each holding Annotations/) that ``root`` and ``years`` select."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found; pass the folder holding Annotations/ or VOCdevkit/")
    if isinstance(years, (str, int)):
        years = (years,)
    years = None if years is None else tuple(str(y) for y in years)
    if not (root / "Annotations").is_dir() and (root / "VOCdevkit").is_dir():
        root = root / "VOCdevkit"

    if not (root / "Annotations").is_dir() and any(root.glob("*.xml")):
        return [root]  # a plain folder of XML files and their images, as labelling tools write them
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
            f"{root}: neither a VOC-format folder (Annotations/, JPEGImages/, ImageSets/Main/), a folder of XML files, "
            "nor a VOCdevkit folder (VOC2007/, VOC2012/, ...); check the root path, or give --format coco|yolo"
        )
    if years is None:
        return list(found.values())
    missing = [y for y in years if y not in found]
    if missing:
        raise FileNotFoundError(
            f"{root / f'VOC{missing[0]}'}: year folder not found; years found in {root}: {', '.join(found)}"
        )
    return [found[y] for y in dict.fromkeys(years)]


ALL = "all"  # the one split of a folder without ImageSets/Main: every annotated image


class MissingSplitError(FileNotFoundError):
    """The dataset has no split of that name (``--val-ratio`` can draw ``train`` and ``val`` from it)."""


def annotations_dir(subset: Path) -> Path:
    """``subset/Annotations``, or ``subset`` itself for a plain folder of XML files and images."""
    return subset / "Annotations" if (subset / "Annotations").is_dir() else subset


def images_dir(subset: Path) -> Path:
    return subset / "JPEGImages" if (subset / "Annotations").is_dir() else subset


def read_split(subset: Path, split: str, classes: Sequence[str]) -> list[str]:
    """Image ids listed in ``subset/ImageSets/Main/{split}.txt`` (first column of each line); without
    ``ImageSets/Main`` the one split is ``all``: every XML file's image, in name order.

    ``classes`` (and VOC's own) let a per-class file such as ``dog_train.txt`` be told from a split file.
    """
    main = subset / "ImageSets" / "Main"
    if not main.is_dir():
        if split == ALL:
            return sorted(p.stem for p in annotations_dir(subset).glob("*.xml"))
        raise MissingSplitError(
            f"{subset} has no ImageSets/Main/ split files, so its images form one split, {ALL!r}: pass --val-ratio R "
            f"to draw train and val from it (or ask for split {ALL!r})"
        )
    path = main / f"{split}.txt"
    # Both the dataset's classes and VOC's: `dog_train.txt` sits next to `train.txt` in VOC itself.
    class_keys = {c.casefold() for c in (*classes, *VOC_CLASSES)}
    if not path.is_file():
        if not main.is_dir():
            raise FileNotFoundError(
                f"{main}: folder not found; a VOC-format dataset lists its images in ImageSets/Main/{{split}}.txt"
            )
        splits = sorted(p.stem for p in main.glob("*.txt") if not _is_class_split_file(p, class_keys))
        raise MissingSplitError(f"{path}: split file not found; split files in {main}: {', '.join(splits) or 'none'}")
    rows = _read_rows(path)
    if _is_class_split_file(path, class_keys):
        raise ValueError(
            f"{path}: this is a per-class file (image id and a 1 / -1 / 0 flag per line), not a list "
            f"of images; pass the split name alone, e.g. split={split.split('_')[-1]!r}"
        )
    return [row[0] for row in rows]


def _looks_like_class_file(rows: list[list[str]]) -> bool:
    """True for ``{class}_{split}.txt`` contents: every line is an image id and a 1 / -1 / 0 flag."""
    return bool(rows) and all(len(row) == 2 and row[1] in ("1", "-1", "0") for row in rows)


def _read_rows(path: Path) -> list[list[str]]:
    return [row for row in (line.split() for line in path.read_text(encoding="utf-8-sig").splitlines()) if row]


def _is_class_split_file(path: Path, class_keys: set[str]) -> bool:
    stem = path.stem.casefold()
    return any(stem.startswith(key + "_") for key in class_keys) and _looks_like_class_file(_read_rows(path))


def find_image(subset: Path, image_id: str, filename: str, folder: Path | None = None) -> Path:
    """The image file of ``image_id`` in ``folder`` (default ``subset/JPEGImages``, or ``subset`` for a plain folder).

    Tried in order: ``{image_id}.jpg``, the base name of ``filename`` (the XML's <filename>; may be empty), then
    ``{image_id}`` with each of ``_IMAGE_EXTENSIONS``. Raises FileNotFoundError listing what was tried.
    """
    folder = images_dir(subset) if folder is None else folder
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
    raise error
