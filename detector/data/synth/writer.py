"""Writing the generated dataset in PASCAL VOC format: images, annotations, image sets and labels.txt.

Label 0 is background; label k (1..6) is ``CLASSES[k - 1]``, written one per line to ``labels.txt``. Boxes in the
XML are VOC's 1-based inclusive integer corners (see ``detector.data.synth.visibility``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from detector.data.synth.render import SPLITS, Sample, render_image
from detector.data.synth.shapes import CLASSES
from detector.data.synth.visibility import SynthObject

__all__ = ["JPEG_QUALITY", "voc_xml", "generate", "format_summary"]

JPEG_QUALITY = 92


def voc_xml(image_id: str, width: int, height: int, objects: list[SynthObject]) -> str:
    """The PASCAL VOC annotation text for one image (tab-indented like the original files)."""
    lines = [
        "<annotation>",
        "\t<folder>synth</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        "\t\t<database>detector synthetic shapes</database>",
        "\t\t<annotation>detector.data.synth</annotation>",
        "\t\t<image>generated</image>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{width}</width>",
        f"\t\t<height>{height}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in objects:
        xmin, ymin, xmax, ymax = obj.box
        lines += [
            "\t<object>",
            f"\t\t<name>{obj.name}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{int(obj.truncated)}</truncated>",
            f"\t\t<difficult>{int(obj.difficult)}</difficult>",
            f"\t\t<occluded>{int(obj.occluded)}</occluded>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{xmin}</xmin>",
            f"\t\t\t<ymin>{ymin}</ymin>",
            f"\t\t\t<xmax>{xmax}</xmax>",
            f"\t\t\t<ymax>{ymax}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _presence_line(image_id: str, objects: list[SynthObject], name: str) -> str:
    """VOC's per-class image-set line: 1 present, 0 only difficult instances, -1 absent."""
    mine = [o for o in objects if o.name == name]
    if any(not o.difficult for o in mine):
        return f"{image_id}  1"
    if mine:
        return f"{image_id}  0"
    return f"{image_id} -1"


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _check_args(train: int, val: int, test: int, seed: int, image_size: tuple[int, int], max_objects: int) -> None:
    for name, n in (("train", train), ("val", val), ("test", test)):
        if n < 0:
            raise ValueError(f"{name}={n}: the number of images must be >= 0")
    if train + val + test > 999_999:
        raise ValueError(f"train+val+test={train + val + test}: ids have 6 digits, use at most 999999")
    if seed < 0:
        raise ValueError(f"seed={seed}: use a non-negative integer")
    if len(image_size) != 2 or not 32 <= image_size[0] <= image_size[1]:
        raise ValueError(f"image_size={tuple(image_size)}: give (MIN, MAX) with 32 <= MIN <= MAX")
    if max_objects < 1:
        raise ValueError(f"max_objects={max_objects}: use at least 1")


def generate(
    out_dir: str | Path,
    *,
    train: int = 600,
    val: int = 100,
    test: int = 200,
    seed: int = 0,
    image_size: tuple[int, int] = (192, 320),
    max_objects: int = 4,
    progress: bool = True,
) -> dict:
    """Write a PASCAL-VOC-format dataset into ``out_dir`` and return its summary.

    Layout: JPEGImages/{id}.jpg, Annotations/{id}.xml, ImageSets/Main/{split}.txt and
    {class}_{split}.txt for train, val, trainval and test, and labels.txt. Ids run "000001", ... over
    train, then val, then test. Existing files of the same names are overwritten; nothing is deleted.

    The summary is ``{"seed", "image_size", "max_objects", "classes", "splits": {split: {"images",
    "objects", "difficult", "truncated", "occluded", "per_class": {class: count}}}}``.
    """
    _check_args(train, val, test, seed, image_size, max_objects)
    image_size = (int(image_size[0]), int(image_size[1]))
    out = Path(out_dir)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    counts = {"train": train, "val": val, "test": test}
    ids: dict[str, list[str]] = {split: [] for split in SPLITS}
    annotations: dict[str, list[SynthObject]] = {}
    summary = {
        "seed": seed,
        "image_size": list(image_size),
        "max_objects": max_objects,
        "classes": list(CLASSES),
        "splits": {},
    }
    bar = tqdm(total=train + val + test, desc=f"writing {out}", unit="img", disable=not progress)
    next_id = 1
    for split in SPLITS:
        stats = _empty_stats()
        for index in range(counts[split]):
            image_id = f"{next_id:06d}"
            next_id += 1
            sample = render_image(seed, split, index, image_size=image_size, max_objects=max_objects)
            _write_sample(out, image_id, sample)
            # Keep only what the image-set files need; the alphas would hold every mask in memory.
            annotations[image_id] = [_without_alpha(o) for o in sample.objects]
            ids[split].append(image_id)
            _add_stats(stats, sample.objects)
            bar.update(1)
        summary["splits"][split] = stats
    bar.close()

    ids["trainval"] = ids["train"] + ids["val"]
    _write_image_sets(out, ids, annotations)
    return summary


def _empty_stats() -> dict:
    return {
        "images": 0,
        "objects": 0,
        "difficult": 0,
        "truncated": 0,
        "occluded": 0,
        "per_class": {name: 0 for name in CLASSES},
    }


def _add_stats(stats: dict, objects: list[SynthObject]) -> None:
    """Count one image and its ``objects`` into a split's ``stats`` (see ``_empty_stats``)."""
    stats["images"] += 1
    for o in objects:
        stats["objects"] += 1
        stats["per_class"][o.name] += 1
        stats["difficult"] += int(o.difficult)
        stats["truncated"] += int(o.truncated)
        stats["occluded"] += int(o.occluded)


def _write_sample(out: Path, image_id: str, sample: Sample) -> None:
    """JPEGImages/{image_id}.jpg and Annotations/{image_id}.xml of one rendered image."""
    height, width = sample.image.shape[:2]
    jpg = out / "JPEGImages" / f"{image_id}.jpg"
    if not cv2.imwrite(str(jpg), sample.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {jpg}; check that the directory is writable")
    (out / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, width, height, sample.objects))


def _without_alpha(o: SynthObject) -> SynthObject:
    return SynthObject(
        o.name, o.box, o.truncated, o.occluded, o.difficult, o.visible_fraction, np.zeros((0, 0), np.uint8)
    )


def _write_image_sets(out: Path, ids: dict[str, list[str]], annotations: dict[str, list[SynthObject]]) -> None:
    """ImageSets/Main/{split}.txt and {class}_{split}.txt for train, val, trainval and test; then labels.txt."""
    main_dir = out / "ImageSets" / "Main"
    for split in ("train", "val", "trainval", "test"):
        _write_lines(main_dir / f"{split}.txt", ids[split])
        for name in CLASSES:
            _write_lines(
                main_dir / f"{name}_{split}.txt", [_presence_line(i, annotations[i], name) for i in ids[split]]
            )
    _write_lines(out / "labels.txt", list(CLASSES))


def format_summary(summary: dict) -> str:
    """A plain-text table of objects per class and split, as printed by the CLI."""
    splits = list(summary["splits"])
    rows = [("", *splits)]
    rows.append(("images", *(str(summary["splits"][s]["images"]) for s in splits)))
    for name in summary["classes"]:
        rows.append((name, *(str(summary["splits"][s]["per_class"][name]) for s in splits)))
    for key in ("objects", "difficult", "truncated", "occluded"):
        rows.append((key, *(str(summary["splits"][s][key]) for s in splits)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r)) for r in rows
    )
