"""``python -m detector.bench``: parse the options, optionally run the answer check, measure each (precision, batch)
and print (and write) the reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from detector.core.devices import device_from_name
from detector.core.precision import PRECISIONS
from detector.tools.bench.check import answer_check, format_check
from detector.tools.bench.measure import run_benchmark
from detector.tools.bench.models import BENCH_BACKBONES
from detector.tools.bench.report import format_report, summary
from detector.tools.bench.settings import Settings, check_settings


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backbone",
        choices=BENCH_BACKBONES,
        default="vgg16",
        help="trunk and RoI head shared by both models; *_fpn: torchvision's own COCO detector against ours on its "
        "(random, calibrated) weights",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        nargs="+",
        default=["fp32"],
        help="one or more; bf16: autocast (CPU or CUDA); fp16: autocast, CUDA only. "
        "With several, each is also compared with torchvision in fp32",
    )
    p.add_argument(
        "--images", type=int, default=5, help="number of fixed random images; each is timed once after the warm-up"
    )
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(375, 500), help="image height and width")


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[1],
        help="images per forward, one or more (e.g. 1 8); time is reported per image",
    )
    p.add_argument(
        "--prepare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run ours through prepare_for_inference (channels-last; bf16/fp16 weights and folded batch norm)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="first run the answer-equality check (ours vs torchvision on the same proposals; prepared vs not)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations before the timed ones")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; None keeps torch's choice")
    p.add_argument(
        "--min-size",
        type=int,
        default=None,
        help="shorter side both models resize to; None keeps the config's (600; tiny 288; *_fpn 800)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights, inputs and sampling")
    p.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure peak memory (CPU: a fresh process per model); "
        "--no-memory times the models interleaved in one process",
    )
    p.add_argument("--json", type=Path, default=None, help="write the figures and settings as JSON to this file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.bench",
        description="Time and peak memory of our Faster R-CNN against torchvision's on the same trunk, head and "
        "inputs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    modes = (
        ("inference", "time per image under torch.inference_mode"),
        ("train", "time per training step: forward, backward, SGD step, one image"),
    )
    for mode, help_text in modes:
        p = sub.add_parser(
            mode, help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        _add_input_options(p)
        if mode == "inference":
            _add_inference_options(p)
        _add_run_options(p)
    help_text = "a checkpoint exported to ONNX: onnxruntime's s/img against our eager model in fp32 and bf16"
    p = sub.add_parser(
        "onnx", help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=Path("weights/default-detector.pt"), help="a Faster R-CNN")
    p.add_argument("--images", type=int, default=4, help="number of fixed random images, each timed once per runner")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(375, 500), help="image height and width")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before the timed ones")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (onnxruntime gets as many)")
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON to this file")
    return parser


def onnx_main(args: argparse.Namespace) -> int:
    # onnxruntime is an export extra (pyproject's [export]): only this mode needs it.
    from detector.tools.bench.onnx import bench_onnx, format_onnx_report  # noqa: PLC0415

    if args.threads:
        torch.set_num_threads(args.threads)
    report = bench_onnx(args.checkpoint, images=args.images, size=tuple(args.size), warmup=args.warmup)
    print(format_onnx_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def settings_from_args(args: argparse.Namespace) -> list[Settings]:
    """One ``Settings`` per (precision, batch), checked; raises ValueError naming the option at fault."""
    combos = [(precision, batch) for precision in args.precision for batch in getattr(args, "batch", [1])]
    device = str(device_from_name(args.device))  # ValueError names the problem
    all_settings = [
        Settings(
            mode=args.mode,
            backbone=args.backbone,
            precision=precision,
            device=device,
            images=args.images,
            size=tuple(args.size),
            batch=batch,
            warmup=args.warmup,
            threads=args.threads,
            seed=args.seed,
            memory=args.memory,
            min_size=args.min_size,
            prepare=getattr(args, "prepare", False),
        )
        for precision, batch in combos
    ]
    for settings in all_settings:
        check_settings(settings)
    return all_settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "onnx":
        return onnx_main(args)
    try:
        all_settings = settings_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    check = None
    if getattr(args, "check", False):
        check = answer_check(all_settings[0], [p for p in args.precision if p != "fp32"])
        print(format_check(check) + "\n")
    reports = []
    for settings in all_settings:
        reports.append(run_benchmark(settings))
        print(format_report(reports[-1]) + "\n")
    if len(reports) > 1:
        print(summary(reports))
    if args.json is not None:
        out = reports[0] if len(reports) == 1 else {"summary": summary(reports).splitlines(), "reports": reports}
        if check is not None:
            out = {**out, "check": check}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
