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

Modules, in the order an image is made: ``shapes`` (classes, outlines, placement), ``visibility`` (coverage,
occlusion, VOC flags), ``appearance`` (colours, textures, background, clutter), ``render`` (one image),
``writer`` (the VOC folder), ``crops`` (the classification variant), ``cli`` (the command line).

Usage: ``python -m detector.data.synth --out DIR`` or ``generate(DIR)``. The classification variant (one crop
per non-difficult object, in class folders): ``--classification DIR2`` or ``write_classification_crops(DIR, DIR2)``.
"""

from detector.data.synth.appearance import MIN_CONTRAST
from detector.data.synth.crops import write_classification_crops
from detector.data.synth.render import SPLITS, Sample, image_rng, render_image, render_sample
from detector.data.synth.shapes import CLASSES, MIN_SIZE, Shape, sample_shape, unit_outline
from detector.data.synth.visibility import (
    DIFFICULT_VISIBLE,
    MIN_VISIBLE,
    OCCLUDED_FRACTION,
    SynthObject,
    resolve_visibility,
    shape_alpha,
    tight_box,
)
from detector.data.synth.writer import JPEG_QUALITY, format_summary, generate, voc_xml

__all__ = [
    "CLASSES",
    "SPLITS",
    "MIN_SIZE",
    "MIN_VISIBLE",
    "DIFFICULT_VISIBLE",
    "OCCLUDED_FRACTION",
    "MIN_CONTRAST",
    "JPEG_QUALITY",
    "Shape",
    "SynthObject",
    "Sample",
    "unit_outline",
    "sample_shape",
    "shape_alpha",
    "tight_box",
    "resolve_visibility",
    "image_rng",
    "render_sample",
    "render_image",
    "voc_xml",
    "generate",
    "format_summary",
    "write_classification_crops",
]
