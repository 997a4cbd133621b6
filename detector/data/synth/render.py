"""One generated image: its random generator, background, shapes and objects, composed and noised.

Images are (H, W, 3) uint8 RGB arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.data.synth.appearance import background, paint
from detector.data.synth.shapes import CLASSES, Shape, sample_shape, unit_outline
from detector.data.synth.visibility import SynthObject, resolve_visibility

__all__ = ["SPLITS", "Sample", "image_rng", "render_sample", "render_image"]

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(eq=False)
class Sample:
    """One generated image: (H, W, 3) uint8 RGB and its objects in drawing order (back to front)."""

    image: np.ndarray
    objects: list[SynthObject]


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
    canvas = background(rng, height, width)
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
        paint(rng, canvas, obj.alpha)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 8.0))
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Sample(image=image, objects=objects)


def render_image(
    seed: int, split: str, index: int, *, image_size: tuple[int, int] = (192, 320), max_objects: int = 4
) -> Sample:
    """Image ``index`` of ``split`` exactly as ``generate`` writes it for these arguments."""
    return render_sample(image_rng(seed, split, index), image_size=image_size, max_objects=max_objects)
