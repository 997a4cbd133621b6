"""VOC-format folders written by hand: one <object>, one annotation file, a whole dataset folder.

Boxes passed here are the annotation files' 1-based inclusive pixel corners, as the devkit writes them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def obj_xml(name: str, box, *, difficult="0", truncated="0", extra: str = "") -> str:
    """One <object>; pass difficult=None / truncated=None to leave the element out."""
    xmin, ymin, xmax, ymax = box
    flags = ""
    if difficult is not None:
        flags += f"<difficult>{difficult}</difficult>"
    if truncated is not None:
        flags += f"<truncated>{truncated}</truncated>"
    return (
        f"<object><name>{name}</name><pose>Left</pose>{flags}{extra}"
        f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
        "</object>"
    )


def annotation_xml(filename: str, size: tuple[int, int] | None, objects: list[str]) -> str:
    """A whole annotation; ``size`` is (width, height) or None to leave <size> out."""
    size_xml = (
        "" if size is None else f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
    )
    return f"<annotation><folder>VOC</folder><filename>{filename}</filename>{size_xml}{''.join(objects)}</annotation>"


def make_voc(
    root: Path,
    images: dict[str, tuple[str, Image.Image | None]],
    splits: dict[str, str],
    labels: str | None = None,
    image_ext: str = ".jpg",
) -> Path:
    """Write a VOC-format folder: ``images`` maps id -> (xml text, image or None for no file);
    ``splits`` maps a file name in ImageSets/Main (without .txt) to its exact contents."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (xml, image) in images.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        if image is not None:
            image.save(root / "JPEGImages" / f"{image_id}{image_ext}")
    for name, text in splits.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text(text)
    if labels is not None:
        (root / "labels.txt").write_text(labels)
    return root


def rgb(width: int, height: int, color=(120, 60, 30)) -> Image.Image:
    return Image.new("RGB", (width, height), color)
