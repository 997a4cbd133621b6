"""Turning untrusted bytes into an RGB image the model can use, or into an APIError that says what was wrong.

Checks in the order that costs least: the format by its first bytes (not the file name or the client's content
type), the pixel count from the header before anything is decoded (decompression bombs; the configured limit, not
Pillow's own), files cut short (a GIF without its trailer, a PNG without its IEND chunk), then the decode.

The decode goes no larger than the model needs: ``target(width, height)`` gives the smallest size the model will use
(a detector resizes the shorter side to its ``min_size``, a classifier to a few hundred pixels at most). A JPEG is
decoded at 1/2, 1/4 or 1/8 scale when that still covers it (``Image.draft``), anything else is reduced by an integer
factor right after decoding (``Image.reduce``), so a 36 MP upload becomes a model-sized image before any float copy
of it exists. EXIF orientation is applied, then every mode ends as 8-bit RGB by the one policy of
``detector.core.images``, as in training and predict.

Any exception from the decoder is the upload's fault (400), whatever its type: Pillow raises TypeError, IndexError,
struct.error, ValueError, SyntaxError and OSError on hostile files, and the list is not closed.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageOps

from api.errors import APIError
from detector.core.images import to_rgb

log = logging.getLogger("api")

# Magic numbers of the formats the service can be allowed to read; anything else is 415 before Pillow sees it.
_SIGNATURES: list[tuple[str, bytes, int]] = [
    ("JPEG", b"\xff\xd8\xff", 0),
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("GIF", b"GIF87a", 0),
    ("GIF", b"GIF89a", 0),
    ("BMP", b"BM", 0),
    ("TIFF", b"II*\x00", 0),
    ("TIFF", b"MM\x00*", 0),
]

Target = Callable[[int, int], tuple[int, int]]


@dataclass
class Decoded:
    """The decoded image (RGB, upright, possibly reduced) and the upload's own upright size: boxes found on
    ``image`` scale by ``width / image.width`` and ``height / image.height`` to the upload's pixels."""

    image: Image.Image
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        return self.width / self.image.width, self.height / self.image.height


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes start with (Pillow's format names), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def raise_pillow_limit(max_pixels: int) -> None:
    """Pillow refuses images over its own ``MAX_IMAGE_PIXELS`` (89 MP) before we can count them: the service's
    setting must be the limit that applies, so Pillow's is raised to it (never lowered: it guards other code)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _check_complete(data: bytes, fmt: str) -> None:
    # Pillow decodes the first frame of a GIF cut in half and a PNG cut after its pixels without complaint; the
    # formats end with a marker that says the file is whole.
    if fmt == "GIF" and not data.rstrip(b"\x00").endswith(b"\x3b"):
        raise APIError(400, "corrupt_image", "the GIF image is truncated (no trailer byte at its end)")
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        raise APIError(400, "corrupt_image", "the PNG image is truncated (no IEND chunk at its end)")


def _open(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise APIError(413, "image_too_large", f"the image has more than {max_pixels} pixels, the limit") from None
    except Exception as exc:
        raise APIError(400, "corrupt_image", f"the {fmt} image cannot be read: {exc}") from None
    width, height = im.size
    if width < 1 or height < 1:
        raise APIError(400, "corrupt_image", f"the {fmt} image has no pixels ({width} x {height})")
    if width * height > max_pixels:
        raise APIError(
            413,
            "image_too_large",
            f"the image is {width} x {height} = {width * height} pixels; the limit is {max_pixels}",
        )
    return im


def _decode_reduced(im: Image.Image, target: Target | None) -> Image.Image:
    """Decodes ``im`` (stored orientation) no larger than ``target`` needs: JPEG draft, then an integer reduce."""
    if target is None:
        im.load()
        return im
    want_w, want_h = target(*im.size)
    if im.format == "JPEG":
        im.draft(im.mode if im.mode in ("RGB", "L") else "RGB", (want_w, want_h))  # picks a scale >= wanted
    im.load()
    factor = min(im.width // max(want_w, 1), im.height // max(want_h, 1))
    if factor >= 2:
        try:
            im = im.reduce(factor)
        except (ValueError, NotImplementedError):  # modes reduce() does not take: reduce the RGB version instead
            im = to_rgb(im).reduce(factor)
    return im


def decode_image(data: bytes, *, allowed_formats: list[str], max_pixels: int, target: Target | None = None) -> Decoded:
    """An 8-bit RGB PIL image upright as its EXIF says (reduced towards ``target(width, height)`` when given), with
    the upload's upright size; or APIError 400/413/415/422."""
    if not data:
        raise APIError(422, "empty_image", "the image is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None or fmt not in allowed_formats:
        what = f"{fmt} images are" if fmt else "this content is"
        raise APIError(
            415,
            "unsupported_media_type",
            f"{what} not accepted; send one of: {', '.join(allowed_formats)} (recognised by content)",
        )
    _check_complete(data, fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = _open(data, fmt, max_pixels)
        stored_w, stored_h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
            im = ImageOps.exif_transpose(_decode_reduced(im, target))
            image = to_rgb(im)
        except APIError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise APIError(413, "image_too_large", f"the image has more than {max_pixels} pixels, the limit") from None
        except MemoryError:
            raise APIError(503, "overloaded", "not enough memory to decode the image now; retry later") from None
        except Exception as exc:  # any decoder failure is the file's: see the module docstring
            raise APIError(400, "corrupt_image", f"the {fmt} image is truncated or corrupt: {exc}") from None
    # Orientations 5-8 turn the image a quarter: the upload's upright size is its stored size swapped.
    width, height = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)
    return Decoded(image, width, height)


def scale_to_cover(min_size: int, max_size: int) -> Target:
    """The target of a detector that resizes the shorter side to ``min_size`` with the longer at most ``max_size``:
    the upload scaled the same way (never enlarged), in whole pixels rounded up."""

    def target(width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, min_size / min(width, height), max_size / max(width, height))
        return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))

    return target
