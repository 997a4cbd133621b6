"""How images look: one family of colours and textures for background and objects alike.

Colours and textures say nothing about the class (every object draws them from the same distribution, and the
background carries the same textures plus clutter), so a detector has to learn the shapes. Images are (H, W, 3)
arrays, float32 while being composed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from detector.data.synth.shapes import CV_SHIFT, cv_points

__all__ = ["MIN_CONTRAST", "background", "paint"]

MIN_CONTRAST = 70.0  # RGB Euclidean distance between an object's colours and the mean colour under it


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, 3).astype(np.float32)


def _contrasting_colour(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    """A random colour at least MIN_CONTRAST away from ``reference`` (rejection keeps it uniform)."""
    for _ in range(64):
        colour = _random_colour(rng)
        if np.linalg.norm(colour - reference) >= MIN_CONTRAST:
            return colour
    # Unreachable in practice (the far corner of the RGB cube is always >= 221 away); keeps it total.
    return np.where(reference < 128, 255.0, 0.0).astype(np.float32)


def _ramp(h: int, w: int, angle: float) -> np.ndarray:
    """(h, w) float32 projection of pixel centres on the direction ``angle``."""
    xs = (np.arange(w, dtype=np.float32) + 0.5) * math.cos(angle)
    ys = (np.arange(h, dtype=np.float32) + 0.5) * math.sin(angle)
    return ys[:, None] + xs[None, :]


def _normalise(t: np.ndarray) -> np.ndarray:
    lo, hi = float(t.min()), float(t.max())
    return (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """(h, w) float32 in [0, 1]: random values on a grid of ``cell`` px, bicubically upsampled."""
    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return _normalise(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC))


def _texture(rng: np.random.Generator, h: int, w: int, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 texture mixing colours c1 and c2: solid, stripes, checkers, gradient or noise."""
    kind = int(rng.integers(5))
    if kind == 0:  # solid
        return np.broadcast_to(c1, (h, w, 3)).copy()
    angle = rng.uniform(0.0, math.pi)
    if kind == 1:  # stripes, from soft to hard-edged
        period = rng.uniform(3.0, 16.0)
        wave = np.sin(_ramp(h, w, angle) * (2.0 * math.pi / period))
        t = np.clip(0.5 + 0.5 * wave * rng.uniform(1.0, 6.0), 0.0, 1.0)
    elif kind == 2:  # checkerboard at a random angle
        cell = rng.uniform(3.0, 14.0)
        u = np.floor(_ramp(h, w, angle) / cell)
        v = np.floor(_ramp(h, w, angle + 0.5 * math.pi) / cell)
        t = ((u + v) % 2).astype(np.float32)
    elif kind == 3:  # linear gradient across the region
        t = _normalise(_ramp(h, w, rng.uniform(0.0, 2.0 * math.pi)))
    else:  # blotchy noise
        t = _smooth_noise(rng, h, w, rng.uniform(3.0, 20.0))
    return c1 + (c2 - c1) * t[..., None]


def _blob(rng: np.random.Generator, center: tuple[float, float], radius: float, n: int) -> np.ndarray:
    """(n, 2) irregular polygon: jittered angles and radii, deliberately none of the six classes."""
    t = np.sort(rng.uniform(0.0, 2.0 * math.pi, n))
    r = radius * rng.uniform(0.55, 1.0, n)
    return np.stack([center[0] + r * np.cos(t), center[1] + r * np.sin(t)], axis=1)


def _colour_tuple(colour: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in colour)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 background: gradient, faint texture, low-contrast patches, then clutter."""
    c1, c2 = _random_colour(rng), _random_colour(rng)
    if rng.random() < 0.7:
        t = _normalise(_ramp(h, w, rng.uniform(0.0, 2.0 * math.pi)))
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = _normalise(np.hypot(np.arange(w)[None, :] + 0.5 - cx, np.arange(h)[:, None] + 0.5 - cy))
    img = c1 + (c2 - c1) * t.astype(np.float32)[..., None]
    if rng.random() < 0.5:
        # Objects use the same textures, so texture alone must not mean "object here".
        a = rng.uniform(0.1, 0.45)
        img = img * (1 - a) + _texture(rng, h, w, _random_colour(rng), _random_colour(rng)) * a
    for _ in range(int(rng.integers(0, 4))):  # soft, low-contrast patches
        radius = rng.uniform(0.15, 0.45) * min(h, w)
        poly = _blob(rng, (rng.uniform(0, w), rng.uniform(0, h)), radius, int(rng.integers(6, 11)))
        # Drawn and blurred at quarter resolution: the patch is smooth anyway and a full-size blur of
        # this width would dominate the generation time.
        small = np.zeros((math.ceil(h / 4), math.ceil(w / 4)), np.float32)
        cv2.fillPoly(small, [cv_points(poly / 4)], 1.0, lineType=cv2.LINE_8, shift=CV_SHIFT)
        small = cv2.GaussianBlur(small, (0, 0), radius / 16)
        patch = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        a = rng.uniform(0.15, 0.35) * patch[..., None]
        img = img * (1 - a) + _random_colour(rng) * a
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    _draw_clutter(rng, canvas)
    return canvas.astype(np.float32)


def _draw_clutter(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """Draw distractors in place on the (h, w, 3) uint8 canvas: thin lines, scribbles, small blobs."""
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(0, 7))):  # straight thin lines, often running off the image
        p, q = rng.uniform((-0.2 * w, -0.2 * h), (1.2 * w, 1.2 * h), (2, 2))
        cv2.line(
            canvas,
            tuple(cv_points(p).tolist()),
            tuple(cv_points(q).tolist()),
            _colour_tuple(_random_colour(rng)),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
            CV_SHIFT,
        )
    for _ in range(int(rng.integers(0, 4))):  # open random-walk scribbles
        n = int(rng.integers(5, 13))
        heading = np.cumsum(rng.normal(0.0, 0.8, n)) + rng.uniform(0, 2 * math.pi)
        steps = rng.uniform(4.0, 15.0, (n, 1)) * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        pts = rng.uniform((0, 0), (w, h)) + np.cumsum(steps, axis=0)
        cv2.polylines(
            canvas,
            [cv_points(pts)],
            False,
            _colour_tuple(_random_colour(rng)),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
            CV_SHIFT,
        )
    for _ in range(int(rng.integers(0, 6))):  # small irregular blobs, below MIN_SIZE
        poly = _blob(rng, (rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(2.0, 6.0), int(rng.integers(5, 9)))
        cv2.fillPoly(canvas, [cv_points(poly)], _colour_tuple(_random_colour(rng)), cv2.LINE_AA, CV_SHIFT)


def paint(rng: np.random.Generator, canvas: np.ndarray, alpha: np.ndarray) -> None:
    """Composite one object with coverage ``alpha`` (H, W) uint8 onto the (H, W, 3) float32 canvas."""
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    region = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = alpha[region].astype(np.float32)[..., None] / 255.0
    under = canvas[region]
    # Contrast against what is actually under the object (background and objects below) keeps every
    # object findable; the colours are otherwise uniform, so they say nothing about the class.
    reference = under[alpha[region] >= 128].mean(axis=0)
    c1 = _contrasting_colour(rng, reference)
    c2 = _contrasting_colour(rng, reference)
    tex = _texture(rng, under.shape[0], under.shape[1], c1, c2)
    canvas[region] = under + (tex - under) * a
