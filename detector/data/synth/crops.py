"""The classification variant of a VOC-format dataset: every non-difficult object cropped into class folders.

Layout written: ``OUT/<split>/<class>/<image_id>_<k>.jpg``, ``k`` the object's index in its annotation; crops are
``size`` x ``size`` uint8 RGB, written as JPEG.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from detector.core.images import load_rgb
from detector.data.synth.shapes import CLASSES
from detector.data.synth.writer import JPEG_QUALITY

__all__ = ["write_classification_crops"]


def write_classification_crops(
    voc_root: str | Path,
    out_dir: str | Path,
    *,
    size: int = 64,
    context: float = 0.15,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> dict:
    """Write the dataset's classification variant: one ``size`` x ``size`` image per non-difficult object.

    Each object's box is enlarged by ``context`` times its width (height) on the left and right (top and
    bottom), clipped to the image and warped to ``size`` x ``size`` (aspect ratio not kept, as R-CNN warps
    its regions), then written to ``out_dir/<split>/<class>/<image_id>_<k>.jpg`` with ``k`` the object's
    index in its annotation. Every class gets a folder in every split, even an empty one, so that all
    splits list the same classes. Reads ``voc_root`` as ``generate`` writes it (any VOC-format folder works).

    Returns ``{"size", "context", "classes", "splits": {split: {"crops", "difficult_skipped", "per_class"}}}``.
    """
    # detector.data.voc imports torch (about 3 s); the generator's CLI does not need it unless asked for crops.
    from detector.data.voc import find_image, parse_voc_xml, read_labels_file  # noqa: PLC0415 (start-up time)

    if size < 1:
        raise ValueError(f"size={size}: use a positive number of pixels")
    if context < 0:
        raise ValueError(f"context={context}: use a non-negative fraction of the box size")
    root, out = Path(voc_root), Path(out_dir)
    labels = root / "labels.txt"
    classes = read_labels_file(labels) if labels.is_file() else CLASSES
    summary = {"size": size, "context": context, "classes": list(classes), "splits": {}}
    for split in splits:
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(
                f"{split_file} does not exist; write the VOC dataset first (generate) or pass other splits"
            )
        for name in classes:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        stats = {"crops": 0, "difficult_skipped": 0, "per_class": dict.fromkeys(classes, 0)}
        for image_id in split_file.read_text().split():
            xml = root / "Annotations" / f"{image_id}.xml"
            ann = parse_voc_xml(xml, classes)
            stats["difficult_skipped"] += sum(obj.difficult for obj in ann.objects)
            kept = [(k, obj) for k, obj in enumerate(ann.objects) if not obj.difficult]
            if not kept:
                continue  # the image is not even opened
            image = load_rgb(find_image(root, image_id, ann.filename), exif_transpose=False)
            for k, obj in kept:
                path = out / split / obj.name / f"{image_id}_{k}.jpg"
                _write_crop(path, image, _context_window(obj.box, context, image.shape, xml, k, obj.name), size)
                stats["crops"] += 1
                stats["per_class"][obj.name] += 1
        summary["splits"][split] = stats
    return summary


def _context_window(
    box: tuple[float, float, float, float], context: float, shape: tuple[int, ...], xml: Path, k: int, name: str
) -> tuple[int, int, int, int]:
    """Pixel window (c0, r0, c1, r1), end-exclusive, of the xyxy ``box`` grown by ``context`` and clipped to an
    image of ``shape`` [H, W, 3]; raises naming ``xml`` and object ``k`` (``name``) when nothing is left."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    dx, dy = context * (x1 - x0), context * (y1 - y0)
    c0, r0 = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
    c1, r1 = min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy))
    if c1 <= c0 or r1 <= r0:
        raise ValueError(f"{xml}: object {k} ({name}) lies outside its {width} x {height} image")
    return c0, r0, c1, r1


def _write_crop(path: Path, image: np.ndarray, window: tuple[int, int, int, int], size: int) -> None:
    """``image`` [H, W, 3] uint8 RGB cut to ``window`` and warped to ``size`` x ``size``, as JPEG at ``path``."""
    c0, r0, c1, r1 = window
    crop = cv2.resize(image[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(path), crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {path}; check that the directory is writable")
