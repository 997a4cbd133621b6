"""Mutation fuzz of the service's image decoding: which hostile files make it fail other than with an APIError.

    python -m detector.tools.fuzz_images [--cases 200000] [--seed 0] [--save DIR]

Starts from small valid images of every accepted format (JPEG with EXIF, progressive JPEG, PNG in several modes,
animated GIF, BMP, TIFF in several compressions, WebP), and mutates them: flipped bits, replaced bytes, copied or
deleted runs, truncation, and for JPEG/TIFF edits inside the EXIF / IFD area where Pillow parses tags. Each case
goes through ``api.images.decode_image`` (with a target size, as the service calls it); anything other than a
decoded image or an ``APIError`` is a finding. ``--save`` keeps one file per kind of finding (exception type and
message) and the cases that took longest. The suite's corpus (``tests/support/hostile.py``) holds what this found.
"""

from __future__ import annotations

import argparse
import collections
import io
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image

from api.errors import APIError
from api.images import decode_image, scale_to_cover

FORMATS = ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"]


def seeds() -> list[bytes]:
    """Valid small images of every format and a few modes, each with some structure to mutate."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.integers(0, 255, (24, 32, 3))).astype(np.uint8))
    out = []

    def save(im: Image.Image, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        out.append(buf.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned a quarter
    exif[0x011A] = (72, 1)  # XResolution: a RATIONAL
    save(rgb, "JPEG", exif=exif.tobytes())
    save(rgb, "JPEG", progressive=True, quality=80)
    save(rgb.convert("CMYK"), "JPEG")
    for mode in ("RGB", "RGBA", "L", "P", "I;16"):
        save(rgb.convert(mode) if mode != "I;16" else rgb.convert("L").convert("I;16"), "PNG")
    frames = [rgb.convert("P"), rgb.rotate(90).convert("P")]
    frames[0].save(buf := io.BytesIO(), format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out.append(buf.getvalue())
    save(rgb, "BMP")
    for compression in ("raw", "tiff_lzw", "packbits", "tiff_deflate"):
        save(rgb, "TIFF", compression=compression, exif=exif.tobytes())
    save(rgb, "WEBP", quality=80)
    save(rgb.convert("RGBA"), "WEBP", lossless=True)
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits of ``data``."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(6))
        i = int(rng.integers(len(b))) if b else 0
        if kind == 0 and b:  # flip one bit
            b[i] ^= 1 << int(rng.integers(8))
        elif kind == 1 and b:  # replace a byte with an interesting value
            b[i] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0xFE, 2, 3, 5]))
        elif kind == 2:  # truncate
            b = b[: max(1, i)]
        elif kind == 3 and b:  # delete a run
            del b[i : i + int(rng.integers(1, 16))]
        elif kind == 4 and b:  # duplicate a run
            b[i:i] = b[i : i + int(rng.integers(1, 32))]
        elif kind == 5 and len(b) > 40:  # edit the header area, where tags and sizes are parsed
            j = int(rng.integers(4, min(len(b), 200)))
            b[j] = int(rng.integers(256))
    return bytes(b)


def run(cases: int, seed: int, save: Path | None) -> dict:
    rng = np.random.default_rng(seed)
    originals = seeds()
    target = scale_to_cover(288, 480)
    findings: dict[str, list] = collections.defaultdict(list)
    statuses: collections.Counter = collections.Counter()
    slowest: list[tuple[float, bytes]] = []
    start = time.perf_counter()
    for k in range(cases):
        data = mutate(originals[k % len(originals)], rng)
        t = time.perf_counter()
        try:
            decode_image(data, allowed_formats=FORMATS, max_pixels=40_000_000, target=target)
            statuses["200"] += 1
        except APIError as exc:
            statuses[str(exc.status)] += 1
        except Exception as exc:  # a finding
            key = f"{type(exc).__name__}: {str(exc)[:80]}"
            findings[key].append(data)
            statuses["finding"] += 1
            if len(findings[key]) == 1:
                print(f"case {k}: {key}\n{traceback.format_exc(limit=3)}", file=sys.stderr)
        slowest.append((time.perf_counter() - t, data))
        slowest = sorted(slowest, key=lambda x: -x[0])[:5]
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for n, (key, datas) in enumerate(findings.items()):
            (save / f"finding_{n}.bin").write_bytes(datas[0])
            (save / f"finding_{n}.txt").write_text(key + "\n")
        for n, (_, data) in enumerate(slowest):
            (save / f"slow_{n}.bin").write_bytes(data)
    return {
        "cases": cases,
        "seconds": time.perf_counter() - start,
        "statuses": dict(statuses),
        "findings": {key: len(v) for key, v in findings.items()},
        "slowest_s": [round(s, 4) for s, _ in slowest],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.tools.fuzz_images", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--cases", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, default=None, help="keep one file per kind of finding, and the slowest cases")
    args = p.parse_args(argv)
    report = run(args.cases, args.seed, args.save)
    print(report)
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
