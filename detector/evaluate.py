"""Command line: evaluate detections on a VOC-format split with the PASCAL VOC devkit rules and/or COCO's metrics.

    python -m detector.evaluate --detections DETS.json --data ROOT --split test [--json OUT] [--plots DIR]
    python -m detector.evaluate --checkpoint PATH --data ROOT --split test [--json OUT] [--plots DIR]
    python -m detector.evaluate --task classify --checkpoint PATH --data ROOT --split test   (a classifier: top-1)

DETS.json is a list of {"image_id", "label", "score", "box"} objects with the box in the annotation files'
1-based pixel convention. This module parses the command line; the work is in ``detector.inference.evaluate``
(running a checkpoint over the split) and ``detector.evaluation`` (the metrics and their reports).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from detector.cli import task_of, user_errors
from detector.core.precision import CHOICES
from detector.data.formats import FORMATS
from detector.evaluation.detection import METRICS
from detector.evaluation.report import report_classification, report_detection
from detector.inference.evaluate import (
    evaluate_classifier_checkpoint,
    evaluate_detector_checkpoint,
    evaluate_saved_detections,
)
from detector.inference.tta import TTA_MODES

CLASSIFY_DESCRIPTION = """Evaluate a classifier checkpoint on a class-folder split.

    python -m detector.evaluate --task classify --checkpoint weights/default-classifier.pt \
        --data data/synth-cls --split test

The images of ROOT/SPLIT/<class>/ are prepared as the checkpoint's training prepared its validation images (its
``--augment`` preset at evaluation and its ``--input-size``), or as the larger source images of the test-time views
with ``--tta``. Prints top-1, top-k and per-class accuracy; ``--json`` writes them with the confusion matrix.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.evaluate",
        description="Detection evaluation: PASCAL VOC (per-class AP and mAP, devkit rules) and COCO (pycocotools).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--task", choices=("detect", "classify"), default="detect",
        help="what to evaluate; '--task classify --help' lists the classification options",
    )  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--detections", type=Path,
        help='JSON list of {"image_id", "label", "score", "box": [xmin, ymin, xmax, ymax]} with 1-based pixel boxes, '
        "as in the annotation files",
    )  # fmt: skip
    source.add_argument("--checkpoint", type=Path, help="a detector checkpoint: run it over the split, then evaluate")
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the dataset: VOC folder, COCO JSON or folder, YOLO data.yaml or folder",
    )
    parser.add_argument(
        "--split", default="test",
        help="split to evaluate on (VOC: ImageSets/Main/SPLIT.txt; COCO: instances_SPLIT.json; YOLO: a yaml key)",
    )  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, default="auto", help="the dataset's format; auto: told by --data")
    parser.add_argument(
        "--val-ratio", type=float, default=None,
        help="a dataset without splits: --split train or val is the draw detector.train --val-ratio made",
    )  # fmt: skip
    parser.add_argument("--split-seed", type=int, default=0, help="the --val-ratio draw's seed (as in training)")
    parser.add_argument("--images", default=None, help="a single COCO JSON file: its image folder")
    parser.add_argument(
        "--metric", choices=METRICS, default="voc07",
        help="voc07: 11-point AP; voc12: all-point AP (VOC2010+); coco: AP@[.5:.95], AP50, AP75, AP by size and "
        "AR@100 by pycocotools; all: voc07 and coco",
    )  # fmt: skip
    parser.add_argument("--iou", type=float, default=0.5, help="IoU a detection needs to match a box")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    parser.add_argument("--plots", type=Path, default=None, help="write precision-recall PNGs into this folder")
    model = parser.add_argument_group("with --checkpoint")
    model.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    model.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    model.add_argument(
        "--precision", choices=CHOICES, default="fp32",
        help="autocast dtype: bf16 on CPU or CUDA, fp16 on CUDA only; auto: bf16 on a GPU with bf16 or a CPU with "
            "AMX, else fp32",
    )  # fmt: skip
    model.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    model.add_argument(
        "--save-detections",
        type=Path,
        default=None,
        help="also write the model's detections as DETS.json (1-based boxes); with --metric coco or all, also "
        "DETS.coco.json and DETS.coco_gt.json, the results and ground truth pycocotools scored",
    )
    model.add_argument(
        "--max-proposals", type=int, default=None,
        help="fast_rcnn / rcnn: score only the top N selective-search proposals per image (faster, usually less "
            "accurate; "
        "the report says how many were used); default: the checkpoint's",
    )  # fmt: skip
    model.add_argument(
        "--proposal-cache", type=Path, default=None, metavar="DIR",
        help="fast_rcnn / rcnn: the proposal cache (default: DATA/proposals/<settings>/)",
    )  # fmt: skip
    return parser


def classification_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.evaluate --task classify", description=CLASSIFY_DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    p.add_argument("--task", choices=("detect", "classify"), default="classify", help="what to evaluate")
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a classifier checkpoint (python -m detector.train --task classify)",
    )
    p.add_argument("--data", type=Path, required=True, help="folder of <split>/<class>/ image folders")
    p.add_argument("--split", default="test", help="sub-folder to evaluate on")
    p.add_argument(
        "--tta",
        choices=TTA_MODES,
        default="none",
        help="test-time augmentation (views scale with the checkpoint's input size)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this file")
    p.add_argument("--plots", type=Path, default=None, help="write confusion_matrix.png into this folder")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    p.add_argument(
        "--batch-size", type=int, default=64, help="images per forward pass (one image at a time with --tta)"
    )
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _classify(argv: list[str]) -> int:
    args = classification_parser().parse_args(argv)
    with user_errors():
        result = evaluate_classifier_checkpoint(
            args.checkpoint, args.data, args.split, tta=args.tta, device=args.device, batch_size=args.batch_size,
            workers=args.workers, progress=not args.no_progress,
        )  # fmt: skip
        report_classification(result, json_path=args.json, plots_dir=args.plots)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if task_of(argv) == "classify":  # its own parser: a classifier is scored on class folders, not boxes
        return _classify(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 < args.iou <= 1.0:
        parser.error(f"--iou must be in (0, 1], got {args.iou}")
    data_options = dict(format=args.format, val_ratio=args.val_ratio, split_seed=args.split_seed, images=args.images)
    with user_errors():
        if args.detections is not None:
            result, run = (
                evaluate_saved_detections(
                    args.detections,
                    args.data,
                    args.split,
                    metric=args.metric,
                    iou_threshold=args.iou,
                    data_options=data_options,
                ),
                None,
            )
        else:
            result, run = evaluate_detector_checkpoint(
                args.checkpoint,
                args.data,
                args.split,
                device=args.device,
                precision=args.precision,
                metric=args.metric,
                iou_threshold=args.iou,
                batch_size=args.batch_size,
                workers=args.workers,
                max_proposals=args.max_proposals,
                proposal_cache=args.proposal_cache,
                save_detections=args.save_detections,
                data_options=data_options,
            )
        report_detection(result, json_path=args.json, plots_dir=args.plots, run=run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
