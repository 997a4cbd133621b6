"""Turning untrusted bytes into an RGB image, or into an APIError that says what was wrong.

Checks in the order that costs least: the format by its first bytes (not the file name or the client's content
type), the pixel count from the header before anything is decoded (decompression bombs), then a full decode that
catches truncated and corrupt files. EXIF orientation is applied, then every mode Pillow reads ends as 8-bit RGB by
the one policy of ``detector.core.images`` (alpha composited on white, 16-bit scaled), as in training and predict.
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from api.errors import APIError
from detector.core.images import to_rgb

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


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes start with (Pillow's format names), or None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def decode_image(data: bytes, *, allowed_formats: list[str], max_pixels: int) -> Image.Image:
    """An 8-bit RGB PIL image upright as its EXIF says, or APIError 400/413/415/422."""
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
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise APIError(400, "corrupt_image", f"the {fmt} image cannot be read: {exc}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise APIError(413, "image_too_large", f"the image has too many pixels: {exc}") from None
        width, height = im.size
        if width < 1 or height < 1:
            raise APIError(400, "corrupt_image", f"the {fmt} image has no pixels ({width} x {height})")
        if width * height > max_pixels:
            raise APIError(
                413,
                "image_too_large",
                f"the image is {width} x {height} = {width * height} pixels; the limit is {max_pixels}",
            )
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise APIError(413, "image_too_large", f"the image has too many pixels: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise APIError(400, "corrupt_image", f"the {fmt} image is truncated or corrupt: {exc}") from None
