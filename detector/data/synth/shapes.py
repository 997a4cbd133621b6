"""The six shape classes: their unit outlines, random placement, and the image coordinate conventions.

Geometry uses continuous pixel coordinates: pixel (row i, col j) covers [j, j+1) x [i, i+1). Polygons are
(P, 2) float arrays of (x, y) points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CLASSES", "MIN_SIZE", "CV_SHIFT", "CV_SCALE", "Shape", "cv_points", "unit_outline", "sample_shape"]

CLASSES: tuple[str, ...] = ("ellipse", "triangle", "rectangle", "star", "cross", "ring")

# Sizes in pixels. MIN_SIZE is also VOC's "too small to be fair" bound for the visible box.
MIN_SIZE = 12

# cv2 draws with integer vertices; 4 fractional bits give sub-pixel placement.
CV_SHIFT = 4
CV_SCALE = 1 << CV_SHIFT


@dataclass(eq=False)
class Shape:
    """One object before rendering.

    ``outline`` (P, 2) and ``hole`` (Q, 2) are polygons in unit coordinates (within [-1, 1]^2, x then y).
    A point u maps to the image as ``center + R(angle) @ (radii * u)``, so ``radii`` are the half-extents
    before rotation, in pixels. ``hole`` is cut out of the outline (the ring); None for solid shapes.
    """

    name: str
    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float
    outline: np.ndarray
    hole: np.ndarray | None = None

    def polygon(self, unit: np.ndarray) -> np.ndarray:
        """(P, 2) unit polygon -> (P, 2) float64 polygon in continuous image coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        return (unit * np.asarray(self.radii)) @ rot.T + np.asarray(self.center)


def cv_points(poly: np.ndarray) -> np.ndarray:
    """(P, 2) continuous polygon -> (P, 2) int32 vertices for cv2 drawing with ``shift=CV_SHIFT``.

    cv2 puts integer coordinates at pixel centres, i.e. at continuous coordinate + 0.5.
    """
    return np.round((poly - 0.5) * CV_SCALE).astype(np.int32)


def _circle(n: int = 72) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def unit_outline(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """The class-specific unit polygon(s) of ``name`` with random shape parameters: (outline, hole)."""
    if name == "ellipse":
        return _circle(), None
    if name == "ring":
        # A thick enough band that the hole survives small sizes and JPEG, a thin enough one to differ
        # from an ellipse at a glance.
        return _circle(), _circle() * rng.uniform(0.45, 0.7)
    if name == "rectangle":
        return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]), None
    if name == "triangle":
        # Jittered vertex angles give non-isosceles triangles; the stretch does the rest.
        t = np.deg2rad(-90.0 + np.array([0.0, 120.0, 240.0]) + rng.normal(0.0, 12.0, 3))
        return np.stack([np.cos(t), np.sin(t)], axis=1), None
    if name == "star":
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.55)
        t = -0.5 * math.pi + np.arange(2 * points) * math.pi / points
        r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1), None
    if name == "cross":
        w = rng.uniform(0.25, 0.42)
        pts = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
        return np.array(pts, dtype=np.float64), None
    raise ValueError(f"unknown shape {name!r}; expected one of {CLASSES}")


def sample_shape(rng: np.random.Generator, width: int, height: int) -> Shape:
    """A random shape of a random class, size, stretch, rotation and position for a W x H image."""
    name = CLASSES[int(rng.integers(len(CLASSES)))]
    largest = 0.9 * min(width, height)
    # Log-uniform so that small objects (where detectors struggle) are as common as large ones.
    size = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(max(largest, MIN_SIZE + 1))))
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    rx, ry = (size / 2, size / 2 / aspect) if aspect >= 1 else (size / 2 * aspect, size / 2)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    outline, hole = unit_outline(name, rng)
    reach = max(rx, ry)
    if rng.random() < 0.7 and 2 * reach < min(width, height):
        cx, cy = rng.uniform(reach, width - reach), rng.uniform(reach, height - reach)
    else:
        # Anywhere, including partly outside: this is where truncated objects come from.
        cx = rng.uniform(-0.3 * reach, width + 0.3 * reach)
        cy = rng.uniform(-0.3 * reach, height + 0.3 * reach)
    return Shape(name, (cx, cy), (rx, ry), angle, outline, hole)
