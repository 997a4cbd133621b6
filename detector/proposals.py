"""``python -m detector.proposals``: compute selective search proposals for a dataset split and cache them.

    python -m detector.proposals --data VOCdevkit --years 2007 --split trainval+test --workers 8
    python -m detector.proposals --image photo.jpg --mode quality

Argument parsing and printing only; the library is ``detector.data.proposals`` (the search, the cache and
``compute_proposals``), which training and evaluation call directly.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from detector.data.proposals import MODES, SelectiveSearchSettings, compute_proposals, search_image_file

__all__ = ["main"]


def _splits(s: str) -> str | tuple[str, ...]:
    parts = tuple(x for x in s.split("+") if x)
    return parts[0] if len(parts) == 1 else parts


def _parser() -> argparse.ArgumentParser:
    default = SelectiveSearchSettings()
    p = argparse.ArgumentParser(
        prog="python -m detector.proposals",
        description="Compute selective search proposals for a VOC-format split and cache them on disk "
        "(only images not yet cached, or whose file changed, are computed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", help="VOC-format folder (Annotations/, JPEGImages/, ImageSets/Main/) or VOCdevkit folder")
    p.add_argument("--split", default="trainval", help="ImageSets/Main split(s); '+' joins several, e.g. trainval+test")
    p.add_argument("--years", default=None, help="with a VOCdevkit root: comma-separated years, e.g. 2007,2012")
    p.add_argument(
        "--format", choices=("auto", "voc", "coco", "yolo"), default="auto",
        help="the dataset's format (detector.data.formats); auto: told by --data",
    )  # fmt: skip
    p.add_argument("--mode", choices=MODES, default=default.mode, help="OpenCV selective search strategy")
    p.add_argument("--max-proposals", type=int, default=default.max_proposals, help="keep the top N per image")
    p.add_argument("--scale", type=int, default=default.scale, help="longer image side while searching (0 = as stored)")
    p.add_argument(
        "--min-size", type=float, default=default.min_size, help="drop boxes under this many pixels wide or high"
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="folder for the cache instead of DATA/proposals (the settings get a subfolder)",
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (0 = search in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--image", default=None, help="instead of a split: search this one image file and print count and time"
    )
    p.add_argument("--out", default=None, help="with --image: write the boxes to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = SelectiveSearchSettings(args.mode, args.max_proposals, args.scale, args.min_size)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if args.image is not None:
        return _one_image(args.image, settings, args.out)
    if args.data is None:
        raise SystemExit("error: pass --data ROOT (and --split), or --image PATH")
    # torch (about 3 s and 600 MB) only for a split: --image does not need it, and the spawned --workers
    # re-import this module before they search.
    from detector.data.formats import open_detection  # noqa: PLC0415 (start-up time of --image and of each worker)

    years = args.years.split(",") if args.years else None
    try:
        dataset = open_detection(args.data, _splits(args.split), format=args.format, keep_difficult=True, years=years)
        compute_proposals(
            dataset, settings, cache_dir=args.cache_dir, workers=args.workers, progress=not args.no_progress
        )
    except (OSError, ValueError) as e:  # messages name the file and what to do
        raise SystemExit(f"error: {e}") from None
    return 0


def _one_image(image: str, settings: SelectiveSearchSettings, out: str | None) -> int:
    """``--image``: print the count and time of one search; with ``--out``, write the boxes as JSON."""
    try:
        found = search_image_file(image, settings)
    except OSError as e:
        raise SystemExit(f"error: {e}") from None
    print(
        f"{image}: {len(found.boxes)} proposals in {found.seconds:.2f} s ({found.width}x{found.height} px, {settings})"
    )
    if out:
        Path(out).write_text(
            json.dumps({"image": str(image), "settings": settings.to_dict(), "boxes": found.boxes.tolist()})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
