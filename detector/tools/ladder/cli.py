"""The R-CNN -> Fast R-CNN -> Faster R-CNN ladder: test-time speed on one backbone, and accuracy at one budget.

    python -m detector.ladder speed [--backbone vgg16] [--images 2] [--json OUT]
    python -m detector.ladder accuracy [--data data/synth-ladder] [--epochs 6] [--out runs/ladder] [--docs docs]

``speed``: the same real photographs (scikit-image's astronaut, cat and coffee, resized to VOC's 500 px longer
side), the same VGG16 (random weights: timing does not depend on them), the same machine, one run: seconds per
image for selective search, R-CNN (every proposal warped and through the whole CNN), Fast R-CNN with and without
selective search, and Faster R-CNN; printed next to the papers' GPU figures with both sets of ratios.

``accuracy``: the three models plus Faster R-CNN with RoIAlign, trained on the generated dataset under one
budget (same images, epochs, batch size, schedule, seed; the tiny backbone, from scratch) and evaluated with VOC07
mAP on its test split; writes ``ladder.md`` (the table) and ``ladder.png`` (a bar chart) into ``--docs``.

Both are benchmark scripts that print figures, not tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def _add_speed_parser(sub) -> None:
    s = sub.add_parser(
        "speed", help="test time per image of the three models", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    s.add_argument("--backbone", default="vgg16", help="one backbone for all three")
    s.add_argument("--images", type=int, default=2, choices=(1, 2, 3), help="how many of the three photos")
    s.add_argument("--max-proposals", type=int, default=2000, help="selective-search proposals scored per image")
    s.add_argument("--proposal-mode", choices=("fast", "quality"), default="fast")
    s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    s.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    s.add_argument(
        "--json",
        type=Path,
        default=Path("runs/ladder/speed.json"),
        help="where the figures go (the accuracy report reads them from here)",
    )


def _add_accuracy_parser(sub) -> None:
    a = sub.add_parser(
        "accuracy",
        help="VOC07 mAP of the three (and RoIAlign) at one training budget",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a.add_argument(
        "--data",
        default="data/synth-ladder",
        help="a VOC-format root with train and test splits; generated there if missing",
    )
    a.add_argument("--train-images", type=int, default=200, help="training images when the dataset is generated")
    a.add_argument("--test-images", type=int, default=100, help="test images when the dataset is generated")
    a.add_argument("--epochs", type=int, default=5)
    a.add_argument("--optimizer", default="adam")
    a.add_argument("--lr", type=float, default=0.001)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--out", type=Path, default=Path("runs/ladder"), help="training runs and accuracy.json")
    a.add_argument("--docs", type=Path, default=Path("docs"), help="where ladder.md and ladder.png are written")
    a.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.ladder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    _add_speed_parser(sub)
    _add_accuracy_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Each part is imported when it runs: --help stays at torch's import time (about 3 s instead of 7 s on a busy
    # 2-core machine), and ``speed`` does not load the training and evaluation stack that ``accuracy`` needs.
    args = build_parser().parse_args(argv)
    if args.part == "speed":
        from detector.tools.ladder.speed import format_speed, run_speed  # noqa: PLC0415 (start-up time, see above)

        report = run_speed(args)
        print(format_speed(report))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    else:
        from detector.tools.ladder.accuracy import run_accuracy  # noqa: PLC0415 (start-up time, see above)

        run_accuracy(args)
    return 0
