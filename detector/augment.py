"""Draw what an augmentation preset does: a grid of samples, each as the original and a few augmented versions.

    python -m detector.augment --preset strong --data data/synth --out grid.png
    python -m detector.augment --preset alexnet --task classify --data data/flowers --out grid.png

``--task detect`` reads a VOC-format dataset (``ROOT/Annotations``, ``JPEGImages``, ``ImageSets/Main``) and draws
the boxes after augmentation. ``--task classify`` reads an image-folder layout ``ROOT/<split>/<class>/*.jpg``, or,
when ``ROOT/<split>`` does not exist, the objects of a VOC-format ``ROOT`` cropped out of their images; its
augmented views are the network's input (normalisation undone for display). One row per sample, the original first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.data.augment import PRESETS
from detector.data.preview import TASKS, DataError, augmentation_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m detector.augment", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--preset", required=True, choices=PRESETS, help="augmentation preset")
    p.add_argument(
        "--data", required=True, type=Path, help="dataset root (VOC format, or ROOT/<split>/<class>/ images)"
    )
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--task", choices=TASKS, default="detect", help="which pipeline to show")
    p.add_argument("--split", default="train", help="dataset split")
    p.add_argument("--n", type=int, default=16, help="number of samples (rows)")
    p.add_argument("--views", type=int, default=3, help="augmented versions per sample")
    p.add_argument("--seed", type=int, default=0, help="picks the samples and their augmentations")
    p.add_argument("--size", type=int, default=224, help="classification input size")
    p.add_argument("--cell", type=int, default=160, help="tile height in the grid, pixels")
    args = p.parse_args(argv)
    for name in ("n", "views", "size", "cell"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.data.is_dir():
        raise SystemExit(f"error: dataset folder {args.data} does not exist; pass --data ROOT")
    try:
        grid = augmentation_grid(
            args.data,
            task=args.task,
            preset=args.preset,
            split=args.split,
            n=args.n,
            views=args.views,
            seed=args.seed,
            size=args.size,
            cell=args.cell,
        )
    except (DataError, FileNotFoundError, ValueError) as exc:  # AnnotationError is a ValueError
        raise SystemExit(f"error: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.image.save(args.out)
    print(f"{grid.samples} samples x (original + {args.views} '{args.preset}' views) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
