"""Selective search (OpenCV's implementation) and the settings it runs with.

R-CNN and Fast R-CNN take their regions from selective search rather than from an RPN. Searching costs 1-2 CPU
seconds per VOC image in fast mode (docs/proposals.md), which is why ``detector.data.proposals.cache`` keeps them.

Shape shorthand: P proposals of one image, H x W the image as stored on disk.

Boxes are ``xyxy`` float32 numpy arrays in continuous pixel coordinates of the image as stored on disk
(pixel column j covers [j, j + 1)), like the dataset's targets.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

__all__ = ["MODES", "FORMAT_VERSION", "SelectiveSearchSettings", "DEFAULT_SETTINGS", "selective_search"]

# Bumped when the meaning of a cache entry changes (box convention, filtering), so old folders are not reused.
FORMAT_VERSION = 1
MODES: tuple[str, ...] = ("fast", "quality")


@dataclass(frozen=True)
class SelectiveSearchSettings:
    """What selective search runs with; every field changes the proposals, so all go into the cache key.

    mode: "fast" (OpenCV ``switchToSelectiveSearchFast``; R-CNN used selective search's fast mode) or
        "quality" (``switchToSelectiveSearchQuality``: more colour spaces, segmentation scales and
        similarity strategies; about 3x the boxes and 3x the time, see docs/proposals.md).
    max_proposals: keep at most this many, the first in selective search's own ranking order.
    scale: the image is resized so that its longer side is ``scale`` pixels before searching (up or down),
        because the segmentation's k is in pixels and was tuned on VOC's ~500 px images; 0 searches the
        image as stored. Boxes are always returned in the stored image's pixels.
    min_size: boxes narrower or shorter than this many pixels of the stored image are dropped. A box
        less than half an object's width cannot reach IoU 0.5 with it, so boxes under 4 px can only ever
        match objects under 8 px; these slivers are common along strong edges and only cost space.
        (The Fast R-CNN code's VOC loader used 2.)
    """

    mode: str = "fast"
    max_proposals: int = 2000
    scale: int = 500
    min_size: float = 4.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if int(self.max_proposals) != self.max_proposals or self.max_proposals < 1:
            raise ValueError(f"max_proposals must be a positive integer, got {self.max_proposals!r}")
        if int(self.scale) != self.scale or self.scale < 0:
            raise ValueError(f"scale must be a non-negative integer (0 = image as stored), got {self.scale!r}")
        if not self.min_size >= 0:
            raise ValueError(f"min_size must be >= 0 pixels, got {self.min_size!r}")
        # Normalised so that 2000 and 2000.0 give one cache key.
        object.__setattr__(self, "max_proposals", int(self.max_proposals))
        object.__setattr__(self, "scale", int(self.scale))
        object.__setattr__(self, "min_size", float(self.min_size))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelectiveSearchSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown selective search settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def key(self) -> str:
        """Short hash of the settings and the cache format: the last part of the cache folder's name."""
        text = json.dumps({"format": FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def folder_name(self) -> str:
        return f"{self.mode}-{self.max_proposals}-{self.scale}-{self.key()}"


# The defaults above, as one (frozen) instance for default arguments.
DEFAULT_SETTINGS = SelectiveSearchSettings()


def selective_search(image: np.ndarray, settings: SelectiveSearchSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """Selective search proposals of one image.

    image: H x W x 3 uint8 RGB (as ``detector.data.voc`` loads it).
    Returns float32 [P, 4] xyxy boxes in the image's continuous pixel coordinates, P <= max_proposals:
    clipped to the image, duplicates and boxes under ``min_size`` on either side removed, in selective
    search's ranking order (as the paper describes it: a region's position in the merge hierarchy times a
    random factor). The random factor comes from C's ``rand()``, which is seeded here, so the same image and
    settings always give the same boxes in the same order (this resets ``rand()`` for the whole process; another
    thread calling ``rand()`` during the search would change the order, not the boxes).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return np.zeros((0, 4), np.float32)

    bgr = np.ascontiguousarray(image[:, :, ::-1])  # OpenCV's colour-space conversions assume BGR
    if settings.scale:
        factor = settings.scale / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))  # cv2 wants (w, h)
        if size != (width, height):
            interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interpolation)

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(bgr)
    if settings.mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    _seed_c_rand()
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # (x, y, w, h), integer pixels

    # A rect covers pixel columns x .. x + w - 1, i.e. continuous [x, x + w); map by the exact per-axis
    # factors of the resize (its size was rounded), then clip.
    sx, sy = width / bgr.shape[1], height / bgr.shape[0]
    boxes = np.stack(
        [rects[:, 0] * sx, rects[:, 1] * sy, (rects[:, 0] + rects[:, 2]) * sx, (rects[:, 1] + rects[:, 3]) * sy], axis=1
    )
    boxes = np.clip(boxes, 0.0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] - boxes[:, 0] >= max(settings.min_size, 1e-3)) & (
        boxes[:, 3] - boxes[:, 1] >= max(settings.min_size, 1e-3)
    )
    boxes = boxes[keep]
    # First occurrence of each box, in ranking order (np.unique sorts, so sort its indices back).
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)]
    return np.ascontiguousarray(boxes[: settings.max_proposals])


def _seed_c_rand(seed: int = 0) -> None:
    # OpenCV's selective search ranks regions with std::rand(), which cv2.setRNGSeed does not reach;
    # unseeded, the order (and so which boxes survive max_proposals) changes from call to call.
    try:
        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError, TypeError):  # no dlopen(NULL) on Windows: the order stays random there
        pass
