"""A benchmark on real photographs: DeepForest's tree crowns (see ``dataset``), ours against torchvision's.

    python -m detector.tools.realdata prepare [--wheel deepforest-2.1.0-py3-none-any.whl] [--out data/trees]
    python -m detector.tools.realdata run [--data data/trees] [--out runs/realdata] [--epochs 12] [--only NAME ...]

``run`` trains each configuration at one budget (ResNet-18 from scratch with --pretrained none's defaults, RoIAlign,
600/1000, SGD momentum 0.01 with 100 warm-up iterations and decays at 2/3 and 11/12 of the epochs, batch 2, seed 0,
the same 25% validation draw) and scores it on the validation tiles with VOC07 mAP and COCO AP@[.5:.95] (pycocotools):

    ours-default     the from-scratch model with the papers' anchors (128, 256, 512)
    ours-32-128      the same with the torchvision reference's anchors (32, 64, 128)
    ours-auto        anchors fitted to the boxes (--anchor-sizes auto --aspect-ratios auto)
    ours-auto-PRESET the same with an augmentation preset (strong, d4) instead of the flip alone
    torchvision      torchvision's FasterRCNN on the same trunk with anchors 32, 64, 128 (``baseline``)

Ours run through ``python -m detector.train`` and ``python -m detector.evaluate``, as a user would run them (the
commands are printed and stored). Each run's result goes to ``OUT/NAME.json``; all of them, to ``OUT/results.json``
and, as a table with the machine's CPU, to ``--docs``/realdata.md. Each run takes minutes on a CPU, so this is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from detector.core.devices import cpu_info
from detector.data.augment import detection_transform
from detector.data.formats import open_detection
from detector.data.transforms import AugmentedDataset, keep_numpy
from detector.tools.realdata.baseline import BaselineRecipe, evaluate_baseline, train_baseline
from detector.tools.realdata.dataset import find_wheel, prepare

VAL_RATIO, SPLIT_SEED = 0.25, 0
SCRATCH = [
    "--backbone", "resnet18", "--pretrained", "none", "--pooler", "roi_align", "--min-size", "600",
    "--max-size", "1000", "--optimizer", "momentum", "--lr", "0.01", "--weight-decay", "1e-4", "--warmup-iters", "100",
    "--batch-size", "2", "--schedule", "multistep",
]  # fmt: skip
RUNS = {
    "ours-default": [],
    "ours-32-128": ["--anchor-sizes", "32", "64", "128"],
    "ours-auto": ["--anchor-sizes", "auto", "--aspect-ratios", "auto"],
    **{f"ours-auto-{p}": ["--anchor-sizes", "auto", "--aspect-ratios", "auto", "--augment", p]
       for p in ("strong", "d4")},
    "torchvision": None,
}  # fmt: skip


def _data_args(data: Path) -> list[str]:
    return ["--data", str(data), "--val-ratio", str(VAL_RATIO), "--split-seed", str(SPLIT_SEED)]


def _run_ours(name: str, extra: list[str], args: argparse.Namespace) -> dict:
    out = args.out / name
    milestones = [str(round(args.epochs * 2 / 3)), str(round(args.epochs * 11 / 12))]
    train = [sys.executable, "-m", "detector.train", *_data_args(args.data), *SCRATCH, "--milestones", *milestones,
             "--epochs", str(args.epochs), "--eval-every", str(args.epochs), "--checkpoint-every", "0",
             "--workers", "1", "--no-progress", "--seed", str(args.seed), "--out", str(out), *extra]  # fmt: skip
    evaluate = [sys.executable, "-m", "detector.evaluate", "--checkpoint", str(out / "last.pt"), *_data_args(args.data),
                "--split", "val", "--metric", "all", "--json", str(out / "eval.json")]  # fmt: skip
    for cmd in (train, evaluate):
        print("$", shlex.join(cmd[2:]), flush=True)
        with open(args.out / f"{name}.log", "a") as log:
            if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"error: {name} failed; see {args.out / f'{name}.log'}")
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [s["images_per_s"] for s in steps if s.get("type") == "step" and "images_per_s" in s]
    metrics = json.loads((out / "eval.json").read_text())
    return {
        "voc07": metrics["map"], "coco": metrics["coco"]["map"], "coco50": metrics["coco"]["map50"],
        "train_images_per_s": sum(speeds) / max(len(speeds), 1), "command": shlex.join(["python", *train[1:]]),
    }  # fmt: skip


def _run_torchvision(args: argparse.Namespace) -> dict:
    common = dict(val_ratio=VAL_RATIO, split_seed=SPLIT_SEED)
    train = open_detection(args.data, "train", transforms=keep_numpy, **common)
    val = open_detection(args.data, "val", classes=train.classes, keep_difficult=True, **common)
    epochs = args.epochs
    recipe = BaselineRecipe(epochs=epochs, milestones=(round(epochs * 2 / 3), round(epochs * 11 / 12)), seed=args.seed)
    torch.manual_seed(args.seed)
    model, timing = train_baseline(recipe, AugmentedDataset(train, detection_transform(True), seed=args.seed))
    metrics = evaluate_baseline(model, val)
    return {
        "voc07": metrics.voc.map, "coco": metrics.coco.map, "coco50": metrics.coco.to_json()["map50"],
        "train_images_per_s": timing["train_images_per_s"], "recipe": recipe.__dict__,
    }  # fmt: skip


def _table(results: dict, epochs: int) -> str:
    cpu = cpu_info()
    best = max((r["voc07"] for n, r in results.items() if n != "torchvision"), default=None)
    tv = results.get("torchvision", {}).get("voc07")
    lines = [
        f"# Real data: DeepForest tree crowns, {epochs} epochs from scratch (ResNet-18)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu.line()}, `python -m detector.tools.realdata run --epochs "
        f"{epochs}`; validation: the 25% draw (`--val-ratio 0.25 --split-seed 0`) of the tiles.",
        "",
        "| run | VOC07 mAP | COCO AP | COCO AP50 | train images/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['voc07']:.3f} | {r['coco']:.3f} | {r['coco50']:.3f} | {r['train_images_per_s']:.2f} |"
        )
    if best is not None and tv:
        lines += ["", f"Best of ours / torchvision (VOC07): {best / tv:.2f}x."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.tools.realdata", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="tile DeepForest's labelled photographs into a VOC folder")
    prep.add_argument("--wheel", help="the deepforest wheel (default: pip download it into --cache)")
    prep.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "detector" / "deepforest")
    prep.add_argument("--out", type=Path, default=Path("data/trees"))
    prep.add_argument("--tile", type=int, default=400, help="largest tile side in pixels")
    run = sub.add_parser("run", help="train and score every configuration")
    run.add_argument("--data", type=Path, default=Path("data/trees"))
    run.add_argument("--out", type=Path, default=Path("runs/realdata"))
    run.add_argument("--epochs", type=int, default=12)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--only", nargs="+", choices=list(RUNS), help="run only these (default: all)")
    run.add_argument("--docs", type=Path, default=Path("docs"), help="where realdata.md is written")
    args = p.parse_args(argv)
    if args.command == "prepare":
        counts = prepare(find_wheel(args.wheel, args.cache), args.out, tile=args.tile)
        print(f"{args.out}: {counts['images']} tiles, {counts['boxes']} boxes ({counts['difficult']} difficult)")
        return 0
    if not (args.data / "Annotations").is_dir():
        raise SystemExit(f"error: {args.data} has no Annotations/; run `python -m detector.tools.realdata prepare`")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or RUNS:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        result = _run_torchvision(args) if RUNS[name] is None else _run_ours(name, RUNS[name], args)
        result.update(seconds=time.perf_counter() - start, epochs=args.epochs, cpu=cpu_info().line())
        print(json.dumps({name: {k: v for k, v in result.items() if k != "command"}}), flush=True)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    # Every result in OUT, also those of other `run --only` processes (two at once use both cores of a small box).
    results = {n: json.loads((args.out / f"{n}.json").read_text()) for n in RUNS if (args.out / f"{n}.json").exists()}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "realdata.md").write_text(_table(results, args.epochs))
    print(_table(results, args.epochs))
    return 0
