"""A generated PASCAL-VOC-format detection dataset: six shapes on cluttered backgrounds.

The point of this dataset is a detection problem that is small enough to train on a laptop yet cannot be
solved by colour thresholding: the six classes differ only by *shape*. Colour and texture of every object
come from one distribution whatever its class, backgrounds carry the same textures plus distractor clutter,
and objects vary in size (log-uniform from about 12 px to most of the image), aspect ratio, rotation,
occlusion and truncation.

Conventions:
- Geometry uses continuous pixel coordinates: pixel (row i, col j) covers [j, j+1) x [i, i+1).
- Boxes written to XML follow VOC: 1-based inclusive integer corners, so the visible pixel columns
  c0..c1 (0-based) give ``xmin = c0 + 1, xmax = c1 + 1`` and ``[xmin - 1, ymin - 1, xmax, ymax]`` is the
  continuous ``xyxy`` box of those pixels.
- Images are (H, W, 3) uint8 RGB arrays; masks are (H, W) bool; alphas are (H, W) uint8 coverage.
- Label 0 is background; label k (1..6) is ``CLASSES[k - 1]``, written one per line to ``labels.txt``.

Usage: ``python -m detector.data.synth --out DIR`` or ``generate(DIR)``. The classification variant (one crop
per non-difficult object, in class folders): ``--classification DIR2`` or ``write_classification_crops(DIR, DIR2)``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

CLASSES: tuple[str, ...] = ("ellipse", "triangle", "rectangle", "star", "cross", "ring")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Sizes in pixels. MIN_SIZE is also VOC's "too small to be fair" bound for the visible box.
MIN_SIZE = 12
MIN_VISIBLE = 0.25  # below this an object is removed from the image altogether
DIFFICULT_VISIBLE = 0.5
OCCLUDED_FRACTION = 0.05
MIN_CONTRAST = 70.0  # RGB Euclidean distance between an object's colours and the mean colour under it
JPEG_QUALITY = 92

# cv2 draws with integer vertices; 4 fractional bits give sub-pixel placement.
_SHIFT = 4
_SCALE = 1 << _SHIFT
# Shapes are filled at 4 x 4 samples per pixel; alpha = covered samples / 16, so alpha >= 128 (the mask)
# means at least half of the pixel is covered.
_SUPERSAMPLE = 4
_COVERAGE_TO_ALPHA = np.round(np.arange(_SUPERSAMPLE**2 + 1) * 255 / _SUPERSAMPLE**2).astype(np.uint8)


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


@dataclass(eq=False)
class Sample:
    """One generated image: (H, W, 3) uint8 RGB and its objects in drawing order (back to front)."""

    image: np.ndarray
    objects: list[SynthObject]


# ----------------------------------------------------------------------------------------------------
# Shapes


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
        pts = np.round(((poly - (x0, y0)) * _SUPERSAMPLE - 0.5) * _SCALE).astype(np.int32)
        cv2.fillPoly(sub, [pts], 1 if k == 0 else 0, cv2.LINE_8, _SHIFT)
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


# ----------------------------------------------------------------------------------------------------
# Appearance: one family of colours and textures for background and objects alike


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


def _cv_points(poly: np.ndarray) -> np.ndarray:
    return np.round((poly - 0.5) * _SCALE).astype(np.int32)


def _colour_tuple(colour: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in colour)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
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
        cv2.fillPoly(small, [_cv_points(poly / 4)], 1.0, lineType=cv2.LINE_8, shift=_SHIFT)
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
            tuple(_cv_points(p).tolist()),
            tuple(_cv_points(q).tolist()),
            _colour_tuple(_random_colour(rng)),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
            _SHIFT,
        )
    for _ in range(int(rng.integers(0, 4))):  # open random-walk scribbles
        n = int(rng.integers(5, 13))
        heading = np.cumsum(rng.normal(0.0, 0.8, n)) + rng.uniform(0, 2 * math.pi)
        steps = rng.uniform(4.0, 15.0, (n, 1)) * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        pts = rng.uniform((0, 0), (w, h)) + np.cumsum(steps, axis=0)
        cv2.polylines(
            canvas,
            [_cv_points(pts)],
            False,
            _colour_tuple(_random_colour(rng)),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
            _SHIFT,
        )
    for _ in range(int(rng.integers(0, 6))):  # small irregular blobs, below MIN_SIZE
        poly = _blob(rng, (rng.uniform(0, w), rng.uniform(0, h)), rng.uniform(2.0, 6.0), int(rng.integers(5, 9)))
        cv2.fillPoly(canvas, [_cv_points(poly)], _colour_tuple(_random_colour(rng)), cv2.LINE_AA, _SHIFT)


def _paint(rng: np.random.Generator, canvas: np.ndarray, alpha: np.ndarray) -> None:
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


# ----------------------------------------------------------------------------------------------------
# One image


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for image ``index`` of ``split``.

    Seeding per image by (seed, split, index) makes each image independent of generation order and of
    the other splits' sizes: growing --train leaves the val and test images unchanged.
    """
    return np.random.default_rng([seed, SPLITS.index(split), index])


def render_sample(
    rng: np.random.Generator, *, image_size: tuple[int, int] = (192, 320), max_objects: int = 4
) -> Sample:
    """Draw one image with 1..max_objects objects, at least one of them not difficult."""
    lo, hi = image_size
    width, height = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    canvas = _background(rng, height, width)
    objects: list[SynthObject] = []
    for _ in range(50):
        shapes = [sample_shape(rng, width, height) for _ in range(int(rng.integers(1, max_objects + 1)))]
        objects = resolve_visibility(shapes, width, height)
        if any(not o.difficult for o in objects):
            break
    else:
        # Practically unreachable; a centred, unstretched shape of half the image is never difficult.
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        outline, hole = unit_outline(name, rng)
        r = 0.25 * min(width, height)
        shape = Shape(name, (width / 2, height / 2), (r, r), rng.uniform(0, 2 * math.pi), outline, hole)
        objects = resolve_visibility([shape], width, height)
    for obj in objects:
        _paint(rng, canvas, obj.alpha)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 8.0))
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Sample(image=image, objects=objects)


def render_image(
    seed: int, split: str, index: int, *, image_size: tuple[int, int] = (192, 320), max_objects: int = 4
) -> Sample:
    """Image ``index`` of ``split`` exactly as ``generate`` writes it for these arguments."""
    return render_sample(image_rng(seed, split, index), image_size=image_size, max_objects=max_objects)


# ----------------------------------------------------------------------------------------------------
# Writing VOC


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
        stats = {
            "images": 0,
            "objects": 0,
            "difficult": 0,
            "truncated": 0,
            "occluded": 0,
            "per_class": {name: 0 for name in CLASSES},
        }
        for index in range(counts[split]):
            image_id = f"{next_id:06d}"
            next_id += 1
            sample = render_image(seed, split, index, image_size=image_size, max_objects=max_objects)
            height, width = sample.image.shape[:2]
            jpg = out / "JPEGImages" / f"{image_id}.jpg"
            if not cv2.imwrite(str(jpg), sample.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"could not write {jpg}; check that the directory is writable")
            (out / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, width, height, sample.objects))
            # Keep only what the image-set files need; the alphas would hold every mask in memory.
            annotations[image_id] = [
                SynthObject(
                    o.name, o.box, o.truncated, o.occluded, o.difficult, o.visible_fraction, np.zeros((0, 0), np.uint8)
                )
                for o in sample.objects
            ]
            ids[split].append(image_id)
            stats["images"] += 1
            for o in sample.objects:
                stats["objects"] += 1
                stats["per_class"][o.name] += 1
                stats["difficult"] += int(o.difficult)
                stats["truncated"] += int(o.truncated)
                stats["occluded"] += int(o.occluded)
            bar.update(1)
        summary["splits"][split] = stats
    bar.close()

    ids["trainval"] = ids["train"] + ids["val"]
    main_dir = out / "ImageSets" / "Main"
    for split in ("train", "val", "trainval", "test"):
        _write_lines(main_dir / f"{split}.txt", ids[split])
        for name in CLASSES:
            _write_lines(
                main_dir / f"{name}_{split}.txt", [_presence_line(i, annotations[i], name) for i in ids[split]]
            )
    _write_lines(out / "labels.txt", list(CLASSES))
    return summary


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
    from detector.core.images import load_rgb
    from detector.data.voc import (
        _find_image,
        parse_voc_xml,
        read_labels_file,
    )  # torch-backed: imported on use

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
            ann = parse_voc_xml(root / "Annotations" / f"{image_id}.xml", classes)
            image = None
            for k, obj in enumerate(ann.objects):
                if obj.difficult:
                    stats["difficult_skipped"] += 1
                    continue
                if image is None:
                    image = load_rgb(_find_image(root, image_id, ann.filename), exif_transpose=False)
                height, width = image.shape[:2]
                x0, y0, x1, y1 = obj.box
                dx, dy = context * (x1 - x0), context * (y1 - y0)
                c0, r0 = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
                c1, r1 = min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy))
                if c1 <= c0 or r1 <= r0:
                    raise ValueError(
                        f"{root / 'Annotations' / f'{image_id}.xml'}: object {k} ({obj.name}) lies outside its {width} x {height} image"
                    )
                crop = cv2.resize(image[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_AREA)
                path = out / split / obj.name / f"{image_id}_{k}.jpg"
                if not cv2.imwrite(str(path), crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                    raise OSError(f"could not write {path}; check that the directory is writable")
                stats["crops"] += 1
                stats["per_class"][obj.name] += 1
        summary["splits"][split] = stats
    return summary


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detector.data.synth",
        description="Generate a PASCAL-VOC-format dataset of six shapes (" + ", ".join(CLASSES) + ") "
        "that differ only by shape, on cluttered backgrounds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, default=argparse.SUPPRESS, help="dataset directory to write")
    parser.add_argument("--train", type=int, default=600, help="number of training images")
    parser.add_argument("--val", type=int, default=100, help="number of validation images")
    parser.add_argument("--test", type=int, default=200, help="number of test images")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=[192, 320],
        metavar=("MIN", "MAX"),
        help="range of image width and height, drawn independently per image",
    )
    parser.add_argument("--max-objects", type=int, default=4, help="at most this many objects per image")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--classification",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the classification variant into DIR: every non-difficult object "
        "cropped (with context) to DIR/<split>/<class>/<image_id>_<k>.jpg",
    )
    parser.add_argument("--crop-size", type=int, default=64, help="side of the classification crops in pixels")
    args = parser.parse_args(argv)
    try:
        summary = generate(
            args.out,
            train=args.train,
            val=args.val,
            test=args.test,
            seed=args.seed,
            image_size=tuple(args.image_size),
            max_objects=args.max_objects,
            progress=not args.no_progress,
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {args.out}")
    print(format_summary(summary))
    if args.classification is not None:
        try:
            crops = write_classification_crops(args.out, args.classification, size=args.crop_size)
        except ValueError as err:
            parser.error(str(err))
        counts = ", ".join(f"{s}: {v['crops']}" for s, v in crops["splits"].items())
        print(f"wrote {args.classification}: {args.crop_size} x {args.crop_size} crops ({counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
