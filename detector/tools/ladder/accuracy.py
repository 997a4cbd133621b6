"""The accuracy ladder: R-CNN, Fast R-CNN, Faster R-CNN and Faster R-CNN with RoIAlign trained on the generated
dataset under one budget (same images, epochs, batch size, schedule, seed; the tiny backbone, from scratch),
evaluated with VOC07 mAP on its test split, and written up as ``ladder.md`` (with the speed ladder's table when
``speed.json`` is there) and ``ladder.png``."""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from detector.data.proposals import ProposalCache
from detector.data.synth import generate
from detector.data.voc import VOCDetection
from detector.inference.evaluate import evaluate_detector_checkpoint
from detector.models.factory import load_detector
from detector.models.fast_rcnn import selective_search_settings
from detector.tools.ladder.speed import format_speed
from detector.tools.timing import machine_line
from detector.training import DetectionTrainConfig, train_detector

# (name, --model, --pooler): the four rows of the equal-budget table.
ACCURACY_RUNS = (
    ("R-CNN", "rcnn", None),
    ("Fast R-CNN", "fast_rcnn", "roi_pool"),
    ("Faster R-CNN", "faster_rcnn", "roi_pool"),
    ("Faster R-CNN + RoIAlign", "faster_rcnn", "roi_align"),
)


def ensure_dataset(root: Path, train: int, test: int, seed: int) -> None:
    if (root / "labels.txt").exists():
        return
    generate(root, train=train, val=0, test=test, seed=seed, progress=True)


def _train(args: argparse.Namespace, data: Path, run_dir: Path, kind: str, pooler: str | None) -> None:
    """Trains one row's model under the shared budget; a finished run is reused and a stopped one resumed, so the
    command can be re-run after a stop. Records the wall time in ``train_seconds.txt``."""
    if (run_dir / "results.json").exists():
        return
    config = DetectionTrainConfig(
        data=str(data), train_split="train", val_split="none", backbone="tiny", model=kind, pooler=pooler,
        workers=args.workers, checkpoint_every=0, out=str(run_dir), no_progress=args.no_progress,
        epochs=args.epochs, batch_size=2, optimizer=args.optimizer, lr=args.lr, weight_decay=1e-4, warmup_iters=50,
        schedule="cosine", seed=args.seed, resume="auto" if (run_dir / "last.pt").exists() else None,
    )  # fmt: skip
    start = time.perf_counter()
    train_detector(config)
    (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")


def _evaluate(data: Path, run_dir: Path, workers: int) -> dict:
    """The trained model's evaluation on the test split (``test.json``, reused when there)."""
    eval_json = run_dir / "test.json"
    if not eval_json.exists():
        result, run = evaluate_detector_checkpoint(run_dir / "last.pt", data, "test", workers=workers)
        eval_json.write_text(json.dumps({**result.to_json(), "model": run}, indent=2) + "\n")
    return json.loads(eval_json.read_text())


def _row(name: str, kind: str, data: Path, run_dir: Path, result: dict, num_train: int) -> dict:
    """One row of the table: mAP and test speed from the evaluation, training speed from the run's metrics."""
    model, _ = load_detector(run_dir / "last.pt")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [m for m in metrics if m["type"] == "epoch"]
    test_ids = [line.strip() for line in (data / "ImageSets" / "Main" / "test.txt").read_text().split()]
    train_seconds = run_dir / "train_seconds.txt"
    return {
        "name": name,
        "mean_proposals": _mean_proposals(data, model, test_ids),
        "kind": kind,
        "pooler": model.config.roi_heads.pooler if kind != "rcnn" else "warp",
        "map": result["map"],
        "ap": result["ap"],
        "test_seconds_per_image": result["model"]["seconds_per_image"],
        "proposals_per_image": result["model"]["proposals"]["per_image"],
        "train_seconds": float(train_seconds.read_text()) if train_seconds.exists() else None,
        "train_images_per_s": num_train / float(np.mean([e["seconds"] for e in epochs])),
    }


def run_accuracy(args: argparse.Namespace) -> dict:
    data, out = Path(args.data), Path(args.out)
    ensure_dataset(data, args.train_images, args.test_images, args.seed)
    num_train = len(VOCDetection(data, "train"))
    rows = []
    for name, kind, pooler in ACCURACY_RUNS:
        run_dir = out / name.lower().replace(" + ", "-").replace(" ", "-")
        _train(args, data, run_dir, kind, pooler)
        result = _evaluate(data, run_dir, args.workers)
        rows.append(_row(name, kind, data, run_dir, result, num_train))
        print(f"{name}: VOC07 mAP {result['map']:.4f}", flush=True)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_line(torch.device("cpu")),
        "data": str(data),
        "budget": {
            "epochs": args.epochs,
            "batch_size": 2,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "schedule": "cosine",
            "seed": args.seed,
            "backbone": "tiny",
        },
        "rows": rows,
    }
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_accuracy(report, docs / "ladder.png")
    (docs / "ladder.md").write_text(format_accuracy(report, speed=_read_speed(out)) + "\n")
    print(f"wrote {docs / 'ladder.md'} and {docs / 'ladder.png'}")
    return report


def _mean_proposals(data: Path, model, image_ids: list[str]) -> float | None:
    """Selective-search proposals per test image actually scored (the cache's counts, capped at the model's
    maximum); None for Faster R-CNN, whose RPN always hands over its fixed count (fewer only after NMS)."""
    if not model.config.external_proposals:
        return None
    entries = ProposalCache(data, selective_search_settings(model.config)).entries
    return float(np.mean([min(entries[i]["boxes"], model.config.max_proposals) for i in image_ids]))


def _read_speed(out: Path) -> dict | None:
    path = out / "speed.json"
    return json.loads(path.read_text()) if path.exists() else None


def format_accuracy(report: dict, speed: dict | None = None) -> str:
    b = report["budget"]
    lines = [
        "# The R-CNN ladder, measured",
        "",
        "Regenerate with `make ladder` (both parts) or `python -m detector.ladder accuracy` / `speed`.",
        "",
        "## Accuracy at one training budget",
        "",
        f"{report['date']}, {report['machine']}. Generated dataset `{report['data']}` "
        "(train split to train, test split to evaluate), every model on the tiny backbone from scratch, "
        f"{b['epochs']} epochs, batch {b['batch_size']}, "
        f"{b['optimizer']} lr {b['lr']} {b['schedule']}, seed {b['seed']}; VOC07 11-point mAP.",
        "",
        "| model | proposals | RoI features | VOC07 mAP | test s / image | train images / s |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        if r.get("mean_proposals") is not None:
            source = f"selective search, {r['mean_proposals']:.0f} on average (at most {r['proposals_per_image']})"
        else:
            source = f"RPN, at most {r['proposals_per_image']}"
        lines.append(
            f"| {r['name']} | {source} | {r['pooler']} | {100 * r['map']:.1f} | "
            f"{r['test_seconds_per_image']:.3f} | {r['train_images_per_s']:.1f} |"
        )
    lines += [
        "",
        "Test time excludes selective search (the proposals come from the cache); see the speed ladder.",
        "",
        "![mAP by model](ladder.png)",
    ]
    if speed is not None:
        lines += [
            "",
            "## Test-time speed",
            "",
            f"{speed['date']}: `python -m detector.ladder speed --backbone {speed['backbone']}`",
            "",
            format_speed(speed),
        ]
    return "\n".join(lines)


def plot_accuracy(report: dict, path: Path) -> None:
    """A bar chart of mAP by model, drawn on an Agg canvas (no pyplot state)."""
    rows = report["rows"]
    fig = Figure(figsize=(7, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = [r["name"] for r in rows]
    values = [100 * r["map"] for r in rows]
    bars = ax.bar(names, values, color=["#8c8c8c", "#4c72b0", "#dd8452", "#c44e52"][: len(rows)])
    ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], padding=2)
    ax.set_ylabel("VOC07 mAP (%)")
    ax.set_ylim(0, max(values + [1]) * 1.2)
    ax.set_title(
        f"Equal budget: {report['budget']['epochs']} epochs on the generated dataset (tiny backbone)", fontsize=10
    )
    ax.tick_params(axis="x", labelsize=9)
    fig.tight_layout()
    fig.savefig(path)
