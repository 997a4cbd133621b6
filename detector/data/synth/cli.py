"""The command line of the generated dataset: ``python -m detector.data.synth --out DIR [...]``.

Argument parsing and printing only; the work is ``generate`` and ``write_classification_crops``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.data.synth.crops import write_classification_crops
from detector.data.synth.shapes import CLASSES
from detector.data.synth.writer import format_summary, generate

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
