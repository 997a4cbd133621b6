"""A real labelled detection dataset from a package: DeepForest's tree crowns, tiled into a VOC folder.

The ``deepforest`` wheel on PyPI (MIT licence, (c) 2019 Ben Weinstein; https://github.com/weecology/DeepForest)
ships four aerial RGB photographs of NEON field sites with hand-drawn tree-crown boxes in LabelImg's VOC XML:

    2019_YELL_2_528000_4978000_image_crop2.png  2299 x 2472  574 trees
    2019_YELL_2_541000_4977000_image_crop.png   1249 x 1035  279 trees
    OSBS_029.tif                                 400 x 400    61 trees
    SOAP_061.png                                 400 x 400    37 trees ("Alive" / "Dead": one class here)

Crowns are 10-90 px across: the "one class, many small objects, few images" case. The two large photographs are
cut into tiles of at most ``tile`` px a side (a 2299 px image at the detectors' 600/1000 resize would shrink every
crown to a few pixels); the result is a plain VOC folder (``Annotations/``, ``JPEGImages/``, ``labels.txt``, no
ImageSets), so training draws its train/val split with ``--val-ratio``, the way a user's LabelImg folder would be.

A crown cut by a tile's edge keeps its visible part; when less than ``min_visible`` of it is inside the tile it is
marked ``difficult`` (VOC's rule for objects one cannot be asked to find: never trained on, ignored by evaluation).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

from PIL import Image

from detector.data.convert import voc_xml
from detector.data.voc.annotations import VOCObject, parse_voc_xml

PACKAGE = "deepforest==2.1.0"  # the version whose files the table above describes
DATA_DIR = "deepforest/data/"
SOURCES = (  # annotation file -> the image it labels (OSBS_029's XML names the .tif; the .png is the same photo)
    "2019_YELL_2_528000_4978000_image_crop2.xml",
    "2019_YELL_2_541000_4977000_image_crop.xml",
    "OSBS_029.xml",
    "SOAP_061.xml",
)
CLASS = "tree"


def find_wheel(wheel: str | Path | None, cache: Path) -> Path:
    """The deepforest wheel: ``wheel`` if given, else one already in ``cache``, else ``pip download`` into it (the
    package registry is the only network this needs). Raises SystemExit saying what to do when offline."""
    if wheel is not None:
        path = Path(wheel)
        if not path.is_file():
            raise SystemExit(f"error: --wheel {path}: no such file")
        return path
    found = sorted(cache.glob("deepforest-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--disable-pip-version-check", "-d", cache]
    print(f"downloading the {PACKAGE} wheel (about 21 MB) into {cache}", flush=True)
    if subprocess.run([str(c) for c in cmd]).returncode != 0:
        raise SystemExit(
            f"error: could not download {PACKAGE} from the package index. On a machine with access run "
            f"`pip download {PACKAGE} --no-deps -d DIR`, copy the .whl here and pass --wheel PATH"
        )
    return sorted(cache.glob("deepforest-*.whl"))[-1]


def _clip(obj: VOCObject, x0: int, y0: int, tile_w: int, tile_h: int, min_visible: float) -> VOCObject | None:
    x1, y1, x2, y2 = obj.box
    cx1, cy1 = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    cx2, cy2 = min(x2 - x0, float(tile_w)), min(y2 - y0, float(tile_h))
    if cx2 - cx1 < 1 or cy2 - cy1 < 1:
        return None  # (almost) nothing of it in this tile
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    visible = (cx2 - cx1) * (cy2 - cy1) / area
    cut = visible < 1.0 - 1e-9
    return replace(
        obj, name=CLASS, box=(cx1, cy1, cx2, cy2), truncated=obj.truncated or cut,
        difficult=obj.difficult or visible < min_visible,
    )  # fmt: skip


def _cuts(size: int, tile: int) -> list[tuple[int, int]]:
    """(start, length) of the fewest tiles of at most ``tile`` px that cover ``size`` px, equal to a pixel and not
    overlapping (no crown is seen by two tiles, so none can be in both train and val)."""
    n = -(-size // tile)
    edges = [round(i * size / n) for i in range(n + 1)]
    return [(a, b - a) for a, b in zip(edges, edges[1:])]


def prepare(wheel: Path, out: Path, *, tile: int = 400, min_visible: float = 0.5) -> dict:
    """Writes the tiled VOC folder to ``out``; returns counts (images, boxes, difficult boxes). A folder already
    prepared from the same wheel and settings is left as it is (runs may be reading it)."""
    stamp = {"wheel": wheel.name, "tile": tile, "min_visible": min_visible}
    marker = out / ".prepared.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("settings") == stamp:
            return done["counts"]
    if out.exists():
        shutil.rmtree(out)
    (out / "Annotations").mkdir(parents=True)
    (out / "JPEGImages").mkdir()
    (out / "labels.txt").write_text(CLASS + "\n")
    extract = out / ".source"
    counts = {"images": 0, "boxes": 0, "difficult": 0}
    with zipfile.ZipFile(wheel) as zf:
        licence = next(n for n in zf.namelist() if n.endswith("/LICENSE"))
        (out / "LICENSE.deepforest").write_bytes(zf.read(licence))
        for name in SOURCES:
            zf.extract(DATA_DIR + name, extract)
            ann = parse_voc_xml(extract / DATA_DIR / name)
            zf.extract(DATA_DIR + ann.filename, extract)
            image = Image.open(extract / DATA_DIR / ann.filename).convert("RGB")
            stem = Path(name).stem
            for y0, h in _cuts(image.height, tile):
                for x0, w in _cuts(image.width, tile):
                    objects = [o for o in (_clip(o, x0, y0, w, h, min_visible) for o in ann.objects) if o]
                    image_id = f"{stem}_{x0}_{y0}" if (w, h) != image.size else stem
                    image.crop((x0, y0, x0 + w, y0 + h)).save(out / "JPEGImages" / f"{image_id}.png")
                    xml = voc_xml(f"{image_id}.png", w, h, objects)
                    (out / "Annotations" / f"{image_id}.xml").write_text(xml)
                    counts["images"] += 1
                    counts["boxes"] += len(objects)
                    counts["difficult"] += sum(o.difficult for o in objects)
    shutil.rmtree(extract)
    marker.write_text(json.dumps({"settings": stamp, "counts": counts}))
    return counts
