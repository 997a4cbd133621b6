"""Run a detector checkpoint on images, folders, globs and videos, and draw what it finds.

    python -m detector.predict --checkpoint weights/default-detector.pt INPUT... [--out DIR] [--batch-size N]
        [--save-txt voc|yolo|coco] [--nms IOU] [--score-threshold S]

INPUT is an image, a folder (searched recursively), a glob (quoted: "photos/**/*.jpg") or a video (.mp4, .avi,
.mov, .mkv). Writes ``DIR/<image name>.png`` with boxes, labels and scores drawn, and ``DIR/detections.json``;
prints the detections. A video gives ``DIR/<name>.mp4`` (drawn) and ``DIR/<name>.jsonl`` (a line per frame).
``--save-txt`` also writes the detections as annotation files under ``DIR/labels/``. The score threshold defaults
to the model's display preset (higher than evaluation's 0.05).
This module parses the command line; the work is ``detector.inference.files.predict_files``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from detector.cli import user_errors
from detector.core.precision import CHOICES
from detector.inference.files import SAVE_TXT, predict_files
from detector.inference.predictor import DetectionPredictor


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.predict", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or videos")
    p.add_argument("--checkpoint", required=True, type=Path, help="a detector checkpoint")
    p.add_argument(
        "--out", type=Path, default=Path("runs/predict"), help="folder for the drawn images and detections.json"
    )
    p.add_argument(
        "--score-threshold", type=float, default=None,
        help="minimum score drawn (default: the checkpoint's display threshold)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    p.add_argument("--batch-size", type=int, default=1, help="images (or video frames) per forward pass")
    p.add_argument(
        "--save-txt", choices=SAVE_TXT, default=None,
        help="also write the detections as annotation files in DIR/labels/: VOC XML, YOLO txt or one COCO JSON",
    )  # fmt: skip
    p.add_argument("--nms", type=float, default=None, help="NMS IoU threshold (default: the checkpoint's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar for videos")
    p.add_argument(
        "--max-proposals",
        type=int,
        default=None,
        help="score at most N proposals per image (default: the checkpoint's)",
    )
    p.add_argument(
        "--precision", choices=CHOICES, default="fp32",
        help="autocast dtype: bf16 on CPU or CUDA, fp16 on CUDA only; auto: bf16 on a GPU with bf16 or a CPU with "
            "AMX, else fp32",
    )  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with user_errors():
        predictor = DetectionPredictor.from_checkpoint(
            args.checkpoint, device=args.device, precision=args.precision, max_proposals=args.max_proposals
        )
        if args.precision == "auto":
            print(f"precision: {predictor.precision}")
        model = predictor.model
        if model.config.external_proposals:  # the model runs selective search on each new image itself
            mode = model.config.proposals["mode"]
            print(
                f"{model.kind}: selective search ({mode} mode) on each image, top {model.max_proposals} proposals "
                "scored"
            )
        if args.nms is not None:
            if not 0.0 < args.nms <= 1.0:
                raise ValueError(f"--nms must be an IoU in (0, 1], got {args.nms}")
            heads = model.roi_heads
            heads.config = dataclasses.replace(heads.config, nms_threshold=args.nms)
        predict_files(
            predictor, args.inputs, args.out, score_threshold=args.score_threshold, batch_size=args.batch_size,
            save_txt=args.save_txt, progress=not args.no_progress,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
