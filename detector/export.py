"""Export a Faster R-CNN checkpoint to ONNX or TorchScript, for onnxruntime, Triton, TensorRT or TorchServe.

    python -m detector.export --checkpoint weights/default-detector.pt --format onnx --out detector.onnx --dynamic
    python -m detector.export --checkpoint CKPT --format torchscript --out detector.pt

The graph takes one float32 image [1, 3, H, W], RGB in [0, 1], unnormalised, and answers ``boxes`` (xyxy pixels of
that image), ``labels`` (1..K) and ``scores``, best first, above the checkpoint's evaluation threshold; the class
names are in the file's metadata. ONNX input sizes are fixed (``--size``, default: a 4:3 image at the model's test
size) unless ``--dynamic``; TorchScript takes any size. The file is checked against the checkpoint's model on two
images before the command succeeds. Fast R-CNN and R-CNN (selective search) cannot be exported.
This module parses the command line; the work is ``detector.inference.export``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.cli import user_errors
from detector.inference.export import DEFAULT_OPSET, FORMATS, ExportError, export_checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a Faster R-CNN checkpoint")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx or torchscript")
    p.add_argument("--out", required=True, type=Path, help="the file to write (e.g. detector.onnx)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--dynamic", action="store_true", help="ONNX: any input height and width (TorchScript always)")
    p.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), default=None,
        help="the example image's size, and the fixed ONNX input size without --dynamic (default: 4:3 at the "
        "model's test size)",
    )  # fmt: skip
    p.add_argument(
        "--check-images", nargs="+", type=Path, default=[], metavar="IMAGE",
        help="photographs to check the file on (default: two random images, on which a trained model may find "
        "nothing)",
    )  # fmt: skip
    p.add_argument("--no-verify", action="store_true", help="skip the check of the file against the checkpoint")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.format == "torchscript" and args.opset != DEFAULT_OPSET:
        print("note: --opset applies to ONNX only", file=sys.stderr)
    with user_errors():
        try:
            report = export_checkpoint(
                args.checkpoint, args.out, args.format, opset=args.opset, dynamic=args.dynamic,
                size=tuple(args.size) if args.size else None, verify=not args.no_verify,
                check_images=args.check_images,
            )  # fmt: skip
        except ExportError as exc:
            raise SystemExit(f"error: {exc}") from None
    size = report["input_size"]
    print(f"{report['out']}: {args.format}, input [1, 3, {size[0]}, {size[1]}]" if size else
          f"{report['out']}: {args.format}, input [1, 3, H, W] (any size)")  # fmt: skip
    if args.format == "torchscript":
        print("load it with: import torch, torchvision; torch.jit.load(PATH)  (torchvision registers its ops)")
    check = report.get("check")
    if check and check["reference_detections"] == 0:
        print("note: no detections on the check images, so no box was compared; pass photos with --check-images")
    elif check:
        print(
            f"checked against the checkpoint's model on {check['images']} image(s): {check['reference_detections']} "
            f"detections, all matched; largest differences {check['max_box_diff_px']:.2g} px, score "
            f"{check['max_score_diff']:.2g}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
