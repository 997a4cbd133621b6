"""What of each shape ends up visible: anti-aliased coverage, occlusion by later shapes, and the VOC flags.

Masks are (H, W) bool; alphas are (H, W) uint8 coverage. Boxes follow VOC: 1-based inclusive integer corners,
so the visible pixel columns c0..c1 (0-based) give ``xmin = c0 + 1, xmax = c1 + 1`` and
``[xmin - 1, ymin - 1, xmax, ymax]`` is the continuous ``xyxy`` box of those pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from detector.data.synth.shapes import CLASSES, CV_SCALE, CV_SHIFT, MIN_SIZE, Shape

__all__ = [
    "MIN_VISIBLE",
    "DIFFICULT_VISIBLE",
    "OCCLUDED_FRACTION",
    "SynthObject",
    "shape_alpha",
    "tight_box",
    "resolve_visibility",
]

MIN_VISIBLE = 0.25  # below this an object is removed from the image altogether
DIFFICULT_VISIBLE = 0.5
OCCLUDED_FRACTION = 0.05

# Shapes are filled at 4 x 4 samples per pixel; alpha = covered samples / 16, so alpha >= 128 (the mask)
# means at least half of the pixel is covered.
_SUPERSAMPLE = 4
_COVERAGE_TO_ALPHA = np.round(np.arange(_SUPERSAMPLE**2 + 1) * 255 / _SUPERSAMPLE**2).astype(np.uint8)


@dataclass(eq=False)
class SynthObject:
    """A rendered object as it ends up in the annotation.

    ``alpha`` (H, W) uint8 is the anti-aliased coverage of the whole shape inside the image, before any
    occlusion; ``mask`` thresholds it at half coverage. ``box`` is the VOC box (1-based inclusive) of the
    pixels of ``mask`` not covered by objects drawn later.
    """

    name: str
    box: tuple[int, int, int, int]
    truncated: bool
    occluded: bool
    difficult: bool
    visible_fraction: float
    alpha: np.ndarray

    @property
    def label(self) -> int:
        return CLASSES.index(self.name) + 1

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 128


def shape_alpha(shape: Shape, width: int, height: int) -> tuple[np.ndarray, int]:
    """Anti-aliased coverage of ``shape`` in a W x H image.

    Returns (alpha, full_area): alpha (H, W) uint8, and the number of at-least-half-covered pixels of
    the whole shape including the part outside the image, which visibility fractions are relative to.
    """
    outer = shape.polygon(shape.outline)
    polys = [outer] + ([shape.polygon(shape.hole)] if shape.hole is not None else [])
    # Only the shape's own box is rendered, so the part outside the image is counted at no extra cost.
    x0, y0 = math.floor(outer[:, 0].min()) - 1, math.floor(outer[:, 1].min()) - 1
    x1, y1 = math.ceil(outer[:, 0].max()) + 1, math.ceil(outer[:, 1].max()) + 1
    # Coverage by supersampling rather than cv2's LINE_AA fill: that one grows shapes by about half a
    # pixel on every side, which would put boxes a pixel outside the shape.
    sub = np.zeros(((y1 - y0) * _SUPERSAMPLE, (x1 - x0) * _SUPERSAMPLE), np.uint8)
    for k, poly in enumerate(polys):
        # cv2 puts integer coordinates at (sub)pixel centres, i.e. at continuous coordinate + 0.5.
        pts = np.round(((poly - (x0, y0)) * _SUPERSAMPLE - 0.5) * CV_SCALE).astype(np.int32)
        cv2.fillPoly(sub, [pts], 1 if k == 0 else 0, cv2.LINE_8, CV_SHIFT)
    # Covered samples per pixel; strided adds are much faster than a 4-D reshape-and-sum.
    rows = sum(sub[i::_SUPERSAMPLE] for i in range(_SUPERSAMPLE))
    counts = sum(rows[:, i::_SUPERSAMPLE] for i in range(_SUPERSAMPLE))
    coverage = _COVERAGE_TO_ALPHA[counts]
    full_area = int(np.count_nonzero(coverage >= 128))
    alpha = np.zeros((height, width), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix0 < ix1 and iy0 < iy1:
        alpha[iy0:iy1, ix0:ix1] = coverage[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    return alpha, full_area


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(H, W) bool mask with at least one pixel -> VOC box (xmin, ymin, xmax, ymax), 1-based inclusive."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]) + 1, int(rows[0]) + 1, int(cols[-1]) + 1, int(rows[-1]) + 1


def resolve_visibility(shapes: list[Shape], width: int, height: int) -> list[SynthObject]:
    """Annotate ``shapes`` (drawing order, back to front) as they will look in a W x H image.

    Later shapes occlude earlier ones. A shape with less than MIN_VISIBLE of its area visible is removed
    from the image, so it neither appears unlabelled nor occludes what lies below it. Returns the kept
    objects in drawing order.
    """
    kept: list[SynthObject] = []
    above = np.zeros((height, width), bool)
    # Front to back, so each shape is judged only against the shapes that are really drawn over it.
    for shape in reversed(shapes):
        alpha, full_area = shape_alpha(shape, width, height)
        if full_area == 0:
            continue
        mask = alpha >= 128
        visible = mask & ~above
        n_visible = int(np.count_nonzero(visible))
        if n_visible < MIN_VISIBLE * full_area:
            continue
        box = tight_box(visible)
        fraction = n_visible / full_area
        small = min(box[2] - box[0] + 1, box[3] - box[1] + 1) < MIN_SIZE
        kept.append(
            SynthObject(
                name=shape.name,
                box=box,
                truncated=bool(np.count_nonzero(mask) < full_area),
                occluded=bool(np.count_nonzero(mask & above) > OCCLUDED_FRACTION * full_area),
                difficult=bool(fraction < DIFFICULT_VISIBLE or small),
                visible_fraction=fraction,
                alpha=alpha,
            )
        )
        above |= mask
    kept.reverse()
    return kept
