"""The hostile-upload corpus: files an attacker (or a broken client) sends, each with the status the service must
answer. Built in code from small valid images, except two files found by mutation fuzzing
(``python -m detector.tools.fuzz_images``) that made Pillow raise TypeError and AttributeError from their EXIF
tags, which the decoder's old list of exceptions let through as 500s (kept here as base64: 288 and 1174 bytes)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support.images import encode

# Found by the fuzzer against the decoder before this change: TIFF with an IFDRational where an int is expected.
FUZZ_TIFF_RATIONAL = base64.b64decode(
    "SUkqAAgAAAAMAAABBAABAAAAIAAAAAEBBAABAAAAGAAAAAIBAwADAAAAngAAAAMBAwABAAAAAQAAAAYBAwABAAAAAgAAABEBBQABAAAArAAAABIBAwABAAAABgAAABUBAwABAAAAAwAAABYBBAABAAAAGAAAABcBBAABAAAAAAkAABoBBQABAAAApAAAABwBAwABAAAAAQAAAAAAAAAIAAgACABIAAAAAQAAANiigkROChMELM+l6ICa97qhio7uRtCrAGTajQjDutcsFtwFihRMemtmBwEfAquGpUGcwmF1/s36YK7ypdavs2PfIpO314VfT2t7t+IS7odbq5FAUreXgFbBY1PjQzm2ngwVYNRmyFA9yd8UDqtVkibbcuTL"
)
# Found by the fuzzer: a JPEG whose EXIF holds an IFDRational where Pillow expects text.
FUZZ_JPEG_EXIF_TEXT = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/4QA2RXhpZgAATU0AKgAAAAgAAgESAAMAAAABAAYAAAFNAAUAAAABAAAAJgAAAAAAAABIAAAAAf/bAEMACAYGBwYFCAcHBwkJCAoMFA0MCwsMGRITDxQdGh8eHRocHCAkLicgIiwjHBwoNyksMDE0NDQfJzk9ODI8LjM0Mv/bAEMBCQkJDAsMGA0NGDIhHCEyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMv/AABEIABgAIAMBIgACEQEDEQH/xAAfAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgv/xAC1EAACAQMDAgQDBQUEBAAAAX0BAgMABBEFEiExQQYTUWEHInEUMoGRoQgjQrHBFVLR8CQzYnKCCQoWFxgZGiUmJygpKjQ1Njc4OTpDREVGR0hJSlNUVVZXWFlaY2RlZmdoaWpzdHV2d3h5eoOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4eLj5OXm5+jp6vHy8/T19vf4+fr/xAAfAQADAQEBAQEBAQEBAAAAAAAAAQIDBAUGBwgJCgv/xAC1EQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/AH2EkFpBdtDKbQxxK1z9pLFpCTsMgc4QO208kPuwORjJhntoxdX0l1cW8j20we2aSL9420xuCdq/ONu4k9duG2jIFWdQkmuLa5lhaSOHdJFcSIAfOUFPKP3lDKwOcgnhW/hJwkUputk7pL5jQvE5GUI25BySD0wcg/f8xc4oUXDml6bWdrdm9baN2/DcpNzfPHW/X7tL9F1f9213bZZruWDUX04rdGzTar2804TccPwGwwVWym4gjByeQcB8V+ljGJvJt1jMoLBCHcIC4iRwV5DHdubIJyuSRxUAkaWxEVzK14kcCIFti6Fi3zE7QCpVEZvmwBtxx8y4gk0m8+0XMtv5aQyq0U211WNyAvK88Elc7sD0IJyApwX2ldX131/Ht1ez7dJqwjH3Xora3ekm1ra/bu7fOwt4I7yS8hYNYwGCORzPh2EbPuZQu/G75fvHkCNuOQKvoIvtMMiacJoXIZFt5TsLiTIdVLBSCFz/ABEeYPmAwAUVFFc8FzdUn03at/Xz7nIqvM/ZuK3eut9r9+pUgnlgtmMCLEJikI3N5UbrgKNhO3dyjEIcMQoYHgYh02MX11KrrGjTSNPDNECUb+IDLfMfuL0Aww3c7CAUVtiF7DDSqR1d+vly+ndnY7JzkkrxXZeb176q/wDwLo//2Q=="
)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose pixels are a few bytes: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _tiff_strips_past_the_end(tiff: bytes) -> bytes:
    """A little-endian TIFF whose StripOffsets (tag 273) point far past the end of the file."""
    b = bytearray(tiff)
    ifd = struct.unpack_from("<I", b, 4)[0]
    for k in range(struct.unpack_from("<H", b, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag, kind, count = struct.unpack_from("<HHI", b, entry)
        if tag == 273:
            if count == 1:
                struct.pack_into("<I", b, entry + 8, 0x7FFF0000)
            else:  # the offsets live in an array elsewhere
                array = struct.unpack_from("<I", b, entry + 8)[0]
                for i in range(count):
                    struct.pack_into("<I" if kind == 4 else "<H", b, array + i * (4 if kind == 4 else 2), 0x7FF0)
    return bytes(b)


def _animated_gif() -> bytes:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (40, 60, 3)).astype(np.uint8)).convert("P") for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue()


def corpus() -> dict[str, tuple[bytes, int]]:
    """name -> (bytes, the status the service answers): 200 for the odd but valid ones."""
    photo = (np.random.default_rng(1).integers(0, 255, (60, 80, 3))).astype(np.uint8)
    jpeg, png, gif = encode(photo, "JPEG"), encode(photo, "PNG"), _animated_gif()
    bad_strips = _tiff_strips_past_the_end(encode(photo, "TIFF", compression="raw"))
    return {
        "fuzz: TIFF rational tag": (FUZZ_TIFF_RATIONAL, 400),
        "fuzz: JPEG EXIF rational as text": (FUZZ_JPEG_EXIF_TEXT, 400),
        "JPEG cut in half": (jpeg[: len(jpeg) // 2], 400),
        "PNG cut before IEND": (png[:-12], 400),
        "PNG cut in half": (png[: len(png) // 2], 400),
        "GIF cut in half": (gif[: len(gif) // 2], 400),
        "GIF without its trailer": (gif[:-1], 400),
        "TIFF with strips past the end": (bad_strips, 400),
        "WebP with a mangled body": (encode(photo, "WEBP")[:40] + b"\0" * 200, 400),
        "PNG bomb header 100000 x 100000": (png_header_only(100_000, 100_000), 413),
        "PNG 0 x 0": (png_header_only(0, 0), 400),
        "JPEG magic then garbage": (b"\xff\xd8\xff" + b"\x00" * 300, 400),
        "plain text": (b"hello, this is not an image", 415),
        "HTML": (b"<html><script>alert(1)</script></html>", 415),
        "PDF": (b"%PDF-1.4\n%...", 415),
        "zero bytes": (b"", 422),
        "CMYK JPEG": (encode(Image.fromarray(photo).convert("CMYK"), "JPEG"), 200),
        "16-bit PNG": (encode(Image.fromarray(photo[..., 0]).convert("I;16"), "PNG"), 200),
        "palette PNG with transparency": (encode(Image.fromarray(photo).convert("P"), "PNG", transparency=0), 200),
        "animated GIF": (gif, 200),
        "740 x 1 PNG": (encode(np.zeros((1, 740, 3), np.uint8), "PNG"), 200),
        "1 x 740 PNG": (encode(np.zeros((740, 1, 3), np.uint8), "PNG"), 200),
        "7400 x 10 PNG": (encode(np.zeros((10, 7400, 3), np.uint8), "PNG"), 200),
        "40000 x 1 PNG": (encode(np.zeros((1, 40000, 3), np.uint8), "PNG"), 200),
        "1 x 1 BMP": (encode(np.zeros((1, 1, 3), np.uint8), "BMP"), 200),
    }
