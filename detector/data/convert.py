"""Converting a detection dataset between formats: VOC, COCO and YOLO, in any direction.

    python -m detector.data.convert --data SRC --to coco|voc|yolo --out DST [--format auto] [--splits a,b]

Every split of ``SRC`` (``--splits`` to choose) is read with the same readers as training
(``detector.data.formats``) and written in the target format's own layout, images copied (hard-linked when the
file system allows). Boxes are written as read, before any clipping to the image, with enough digits that a round
trip VOC -> COCO -> VOC keeps every box within 1e-6 px. ``difficult`` becomes COCO's ``iscrowd`` and back; YOLO has
no such flag, so difficult boxes are written to YOLO as ordinary boxes (the count is printed).

Layouts written:
- voc: ``Annotations/{id}.xml``, ``JPEGImages/``, ``ImageSets/Main/{split}.txt``, ``labels.txt``;
- coco: ``annotations/instances_{split}.json``, ``images/{split}/``;
- yolo: ``images/{split}/``, ``labels/{split}/{stem}.txt``, ``data.yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import yaml

from detector.data.formats import FORMATS, detect_format, open_detection
from detector.data.voc.annotations import VOCObject
from detector.data.voc.base import AnnotatedDetection

TARGETS = ("voc", "coco", "yolo")


def dataset_splits(data: str | Path, format: str = "auto") -> list[str]:
    """The split names a dataset has: VOC's split files, COCO's instances_*.json, the YOLO yaml's keys or image
    folders; ``["all"]`` for one that has none."""
    root, kind = Path(data), detect_format(data) if format == "auto" else format
    if kind == "coco" and root.is_dir():
        return sorted(p.stem.removeprefix("instances_") for p in (root / "annotations").glob("instances_*.json"))
    if kind == "yolo":
        spec = root if root.is_file() else root / "data.yaml"
        if spec.is_file():
            content = yaml.safe_load(spec.read_text()) or {}
            return [k for k in ("train", "val", "test") if content.get(k)]
        folders = sorted(p.name for p in (root / "images").iterdir() if p.is_dir())
        return folders or ["all"]
    main = root / "ImageSets" / "Main"
    if kind == "voc" and main.is_dir():
        return sorted(p.stem for p in main.glob("*.txt") if not re.fullmatch(r".+_(train|val|trainval|test)", p.stem))
    return ["all"]


def convert(data: str | Path, to: str, out: str | Path, *, format: str = "auto", splits: Sequence[str] = ()) -> dict:
    """Writes every split of ``data`` (or ``splits``) into ``out`` in format ``to``; returns counts per split."""
    if to not in TARGETS:
        raise ValueError(f"--to must be one of {TARGETS}, got {to!r}")
    out = Path(out)
    splits = list(splits) or dataset_splits(data, format)
    summary, classes = {}, None
    for split in splits:
        dataset = open_detection(data, split, format=format, classes=classes)
        classes = dataset.classes  # every split with the first one's labels
        summary[split] = {"voc": _write_voc, "coco": _write_coco, "yolo": _write_yolo}[to](dataset, out, split)
    if to == "voc":
        (out / "labels.txt").write_text("\n".join(classes) + "\n")
    if to == "yolo":
        spec = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": list(classes)}
        (out / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return summary


def _file_id(image_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", image_id)


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _num(value: float) -> str:
    return f"{value:.12g}"


# --- one file or entry in each format, from records (the converter's) or detections (detector.predict --save-txt)


def voc_xml(filename: str, width: int, height: int, objects: Iterable[VOCObject]) -> str:
    """A VOC annotation file's text; boxes are continuous ``xyxy``, written in VOC's 1-based corners with enough
    digits to read back within 1e-6 px."""
    size = f"<width>{width}</width><height>{height}</height><depth>3</depth>"
    lines = ["<annotation>", f"\t<filename>{escape(filename)}</filename>", f"\t<size>{size}</size>"]
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        lines += [
            "\t<object>", f"\t\t<name>{escape(obj.name)}</name>",
            f"\t\t<difficult>{int(obj.difficult)}</difficult>", f"\t\t<truncated>{int(obj.truncated)}</truncated>",
            # VOC's corners are 1-based: the continuous box [x1, x2] is written as x1 + 1 .. x2.
            f"\t\t<bndbox><xmin>{_num(x1 + 1)}</xmin><ymin>{_num(y1 + 1)}</ymin>"
            f"<xmax>{_num(x2)}</xmax><ymax>{_num(y2)}</ymax></bndbox>",
            "\t</object>",
        ]  # fmt: skip
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def yolo_line(obj: VOCObject, classes: Sequence[str], width: int, height: int) -> str | None:
    """``class cx cy w h``, normalised, for one object; its box clipped to the image first (YOLO's values lie in
    [0, 1]), and None when nothing of it is left inside."""
    x1, y1, x2, y2 = (min(max(v, 0.0), limit) for v, limit in zip(obj.box, (width, height) * 2))
    if x2 <= x1 or y2 <= y1:
        return None
    return (f"{list(classes).index(obj.name)} {_num((x1 + x2) / 2 / width)} {_num((y1 + y2) / 2 / height)} "
            f"{_num((x2 - x1) / width)} {_num((y2 - y1) / height)}")  # fmt: skip


def coco_annotation(
    ann_id: int,
    image_id: int,
    category_id: int,
    box: Sequence[float],
    *,
    iscrowd: bool = False,
    score: float | None = None,
) -> dict[str, Any]:
    """One entry of a COCO file's ``annotations`` for a continuous ``xyxy`` box (``area``: the box's, as these
    datasets have no masks); ``score`` for a results file."""
    x1, y1, x2, y2 = (float(v) for v in box)
    entry = {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x1, y1, x2 - x1, y2 - y1],
             "area": (x2 - x1) * (y2 - y1), "iscrowd": int(iscrowd)}  # fmt: skip
    return entry if score is None else {**entry, "score": float(score)}


def _write_voc(dataset: AnnotatedDetection, out: Path, split: str) -> dict:
    ids = []
    for i in range(len(dataset)):
        record, image = dataset.annotation(i), dataset.image_path(i)
        file_id = _file_id(dataset.image_ids[i])
        _place(image, out / "JPEGImages" / f"{file_id}{image.suffix}")
        (out / "Annotations").mkdir(parents=True, exist_ok=True)
        xml = voc_xml(file_id + image.suffix, record.width, record.height, record.objects)
        (out / "Annotations" / f"{file_id}.xml").write_text(xml)
        ids.append(file_id)
    (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{x}\n" for x in ids))
    return {"images": len(ids)}


def _write_coco(dataset: AnnotatedDetection, out: Path, split: str) -> dict:
    images, annotations = [], []
    label_of = {name: k for k, name in enumerate(dataset.classes, start=1)}
    for i in range(len(dataset)):
        record, image = dataset.annotation(i), dataset.image_path(i)
        name = f"{_file_id(dataset.image_ids[i])}{image.suffix}"
        _place(image, out / "images" / split / name)
        images.append({"id": i + 1, "file_name": name, "width": record.width, "height": record.height})
        annotations += [
            coco_annotation(len(annotations) + k, i + 1, label_of[obj.name], obj.box, iscrowd=obj.difficult)
            for k, obj in enumerate(record.objects, start=1)
        ]
    categories = [{"id": k, "name": name, "supercategory": ""} for name, k in label_of.items()]
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    payload = {"images": images, "annotations": annotations, "categories": categories}
    (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(payload))
    return {"images": len(images), "boxes": len(annotations)}


def _write_yolo(dataset: AnnotatedDetection, out: Path, split: str) -> dict:
    difficult = boxes = 0
    for i in range(len(dataset)):
        record, image = dataset.annotation(i), dataset.image_path(i)
        stem = _file_id(dataset.image_ids[i])
        _place(image, out / "images" / split / f"{stem}{image.suffix}")
        lines = []
        for obj in record.objects:
            line = yolo_line(obj, dataset.classes, record.width, record.height)
            if line is not None:
                lines.append(line)
                difficult += obj.difficult  # YOLO has no such flag: written as an ordinary box
        boxes += len(lines)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return {"images": len(dataset), "boxes": boxes, "difficult_written_as_boxes": difficult}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.data.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", required=True, help="the dataset to read (any format detector.train reads)")
    p.add_argument("--format", choices=FORMATS, default="auto", help="its format (default: told by --data)")
    p.add_argument("--to", required=True, choices=TARGETS, help="the format to write")
    p.add_argument("--out", required=True, type=Path, help="the folder to write into")
    p.add_argument("--splits", default="", help="comma-separated splits to convert (default: every split found)")
    args = p.parse_args(argv)
    try:
        summary = convert(
            args.data, args.to, args.out, format=args.format, splits=[s for s in args.splits.split(",") if s]
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, counts in summary.items():
        print(f"{split}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    print(f"written to {args.out} ({args.to})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
