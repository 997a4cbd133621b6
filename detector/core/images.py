"""Reading images: one policy for every mode Pillow reads, used by the datasets, ``detector.predict`` and the service.

Every image ends as 8-bit RGB, the same way wherever it comes from:
- alpha (RGBA, LA, PA, and palettes with a transparent colour) is composited over white, as a browser or an image
  viewer shows it, so a transparent logo is not its hidden colour channels;
- 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) are scaled to 0-255 (16-bit PNGs arrive as ``I`` or
  ``I;16``; ``convert("RGB")`` would clip everything above 255 to white);
- CMYK, YCbCr, LAB, HSV, 1-bit and 8-bit grayscale and palettes are converted by Pillow.

EXIF orientation is the caller's choice: a photo from a phone is stored sideways with a tag saying how to turn it,
and what a user uploads or points ``predict`` at should be seen as they see it (``exif_transpose=True``); a
dataset's boxes were drawn on the pixels as stored, as VOC's devkit and torchvision read them, so datasets keep
them (``exif_transpose=False``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
WHITE = (255, 255, 255)


class ImageReadError(OSError):
    """An image file that cannot be read; the message names the file and what to do."""


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB by the module's policy (a new image; ``image`` is not changed)."""
    if image.mode in _HIGH_DEPTH:
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.size and values.max() > 255):
            values = values * (255.0 / 65535.0)
        gray = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if image.mode == "P":
        # Through RGBA when the palette has a transparent entry (also avoids Pillow's warning about it).
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(path: str | os.PathLike, *, exif_transpose: bool) -> Image.Image:
    """The decoded 8-bit RGB image at ``path`` (see the module docstring for ``exif_transpose``).

    Raises FileNotFoundError for a missing file and :class:`ImageReadError` (an OSError) naming the file for one
    that is not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path} is not a readable image ({exc}); re-download or re-save the file") from exc


def load_rgb(path: str | os.PathLike, *, exif_transpose: bool) -> np.ndarray:
    """:func:`open_image` as a writable uint8 array [H, W, 3], safe to hand to transforms."""
    return np.array(open_image(path, exif_transpose=exif_transpose), dtype=np.uint8)


def read_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as stored, from the file header: Pillow does not decode pixels until asked to."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path} is not a readable image ({exc}); re-download or re-save the file") from exc
    return height, width
