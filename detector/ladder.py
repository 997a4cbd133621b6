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
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from detector.core.devices import cpu_info

# Test-time seconds per image on a GPU reported by the papers (VGG16, PASCAL VOC 2007). The Fast R-CNN paper's
# table 4 gives R-CNN 47.0 s and Fast R-CNN 0.32 s, both without proposal time; selective search takes about 2 s
# per image on a CPU (Faster R-CNN paper, introduction), hence R-CNN about 49 s and Fast R-CNN about 2.3 s in
# all; Faster R-CNN 0.198 s including its RPN (Faster R-CNN paper, table 5).
PAPER_SECONDS = {"rcnn": 49.0, "fast_rcnn_with_ss": 2.3, "fast_rcnn": 0.32, "faster_rcnn": 0.198}
LADDER_NAMES = {
    "selective_search": "selective search alone",
    "rcnn": "R-CNN (incl. selective search)",
    "fast_rcnn_with_ss": "Fast R-CNN (incl. selective search)",
    "fast_rcnn": "Fast R-CNN (proposals given)",
    "faster_rcnn": "Faster R-CNN",
}


# --- speed --------------------------------------------------------------------------------------------
def photos(longer_side: int = 500) -> list[tuple[str, np.ndarray]]:
    """Real photographs shipped with scikit-image, resized so the longer side is ``longer_side`` (VOC's size)."""
    from PIL import Image
    from skimage import data

    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        scale = longer_side / max(image.size)
        out.append(
            (name, np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)))
        )
    return out


def run_speed(args: argparse.Namespace) -> dict:
    from detector.bench import timed
    from detector.models.factory import build_detector, default_config
    from detector.proposals import SelectiveSearchSettings, selective_search

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    ss_settings = SelectiveSearchSettings(mode=args.proposal_mode, max_proposals=args.max_proposals, scale=500)
    models = {}
    for kind in ("rcnn", "fast_rcnn", "faster_rcnn"):
        torch.manual_seed(0)
        cfg = default_config(kind, args.backbone, 20)
        if hasattr(cfg, "max_proposals"):
            cfg.max_proposals = args.max_proposals
        models[kind] = build_detector(kind, cfg).to(device).eval()
    images = photos()[: args.images]
    rows = []
    with torch.inference_mode():
        # One untimed pass of each network on a small image: first-call allocations and kernel selection.
        warm = torch.rand(3, 200, 300, device=device)
        boxes = torch.tensor([[10.0, 10.0, 100.0, 100.0]], device=device)
        for kind, model in models.items():
            model([warm], proposals=[boxes]) if kind != "faster_rcnn" else model([warm])
        for name, array in images:
            image = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).to(device)
            proposals, t_ss = timed(lambda: selective_search(array, ss_settings), device)
            props = torch.from_numpy(proposals).to(device)
            _, t_fast = timed(lambda: models["fast_rcnn"]([image], proposals=[props]), device)
            _, t_faster = timed(lambda: models["faster_rcnn"]([image]), device)
            _, t_rcnn = timed(lambda: models["rcnn"]([image], proposals=[props]), device)
            row = {
                "image": name,
                "size": list(array.shape[:2]),
                "proposals": len(proposals),
                "selective_search": t_ss,
                "rcnn": t_rcnn + t_ss,
                "rcnn_network": t_rcnn,
                "fast_rcnn_with_ss": t_fast + t_ss,
                "fast_rcnn": t_fast,
                "faster_rcnn": t_faster,
            }
            rows.append(row)
            print(f"{name} {array.shape[1]}x{array.shape[0]}, {len(proposals)} proposals: selective search {t_ss:.2f} s, "
                  f"R-CNN network {t_rcnn:.1f} s, Fast R-CNN {t_fast:.2f} s, Faster R-CNN {t_faster:.2f} s", flush=True)  # fmt: skip
    mean = {
        k: float(np.mean([r[k] for r in rows]))
        for k in ("selective_search", "rcnn", "fast_rcnn_with_ss", "fast_rcnn", "faster_rcnn", "proposals")
    }
    return {
        "date": datetime.date.today().isoformat(),
        "machine": _machine(device),
        "backbone": args.backbone,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "selective_search": ss_settings.to_dict(),
        "images": rows,
        "mean_seconds": mean,
        "paper_seconds": PAPER_SECONDS,
    }


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_info().line()}, {torch.get_num_threads()} threads"


def format_speed(report: dict) -> str:
    mean = report["mean_seconds"]
    ours_base, paper_base = mean["faster_rcnn"], PAPER_SECONDS["faster_rcnn"]
    lines = [
        f"{report['backbone']} on {report['device']} ({report['machine']}), {len(report['images'])} images, "
        f"{mean['proposals']:.0f} selective-search proposals per image on average ({report['selective_search']['mode']} mode)",
        "",
        "| model | ours: s / image | ours: x Faster R-CNN | papers (GPU): s / image | papers: x Faster R-CNN |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("rcnn", "fast_rcnn_with_ss", "fast_rcnn", "faster_rcnn"):
        paper = PAPER_SECONDS[key]
        lines.append(
            f"| {LADDER_NAMES[key]} | {mean[key]:.2f} | {mean[key] / ours_base:.1f} | {paper:.2f} | {paper / paper_base:.1f} |"
        )
    lines.append(
        f"| {LADDER_NAMES['selective_search']} | {mean['selective_search']:.2f} | {mean['selective_search'] / ours_base:.1f} | | |"
    )
    return "\n".join(lines)


# --- accuracy -----------------------------------------------------------------------------------------
# (name, --model, extra train options): the four rows of the equal-budget table.
ACCURACY_RUNS = (
    ("R-CNN", "rcnn", []),
    ("Fast R-CNN", "fast_rcnn", ["--pooler", "roi_pool"]),
    ("Faster R-CNN", "faster_rcnn", ["--pooler", "roi_pool"]),
    ("Faster R-CNN + RoIAlign", "faster_rcnn", ["--pooler", "roi_align"]),
)


def ensure_dataset(root: Path, train: int, test: int, seed: int) -> None:
    if (root / "labels.txt").exists():
        return
    from detector.data.synth import generate

    generate(root, train=train, val=0, test=test, seed=seed, progress=True)


def run_accuracy(args: argparse.Namespace) -> dict:
    from detector.data.voc import VOCDetection
    from detector.evaluate import main as evaluate_main
    from detector.models.factory import load_detector
    from detector.train import main as train_main

    data, out = Path(args.data), Path(args.out)
    ensure_dataset(data, args.train_images, args.test_images, args.seed)
    budget = [
        "--epochs", str(args.epochs), "--batch-size", "2", "--optimizer", args.optimizer, "--lr", str(args.lr),
        "--weight-decay", "1e-4", "--warmup-iters", "50", "--schedule", "cosine", "--seed", str(args.seed),
    ]  # fmt: skip
    num_train = len(VOCDetection(data, "train"))
    rows = []
    for name, kind, extra in ACCURACY_RUNS:
        run_dir = out / name.lower().replace(" + ", "-").replace(" ", "-")
        train_args = [
            "--data", str(data), "--train-split", "train", "--val-split", "none", "--backbone", "tiny", "--model", kind,
            "--workers", str(args.workers), "--checkpoint-every", "0", "--out", str(run_dir), *budget, *extra,
        ]  # fmt: skip
        if args.no_progress:
            train_args.append("--no-progress")
        if not (run_dir / "results.json").exists():  # finished runs are reused: the command can be re-run after a stop
            start = time.perf_counter()
            train_main([*train_args, *(["--resume", "auto"] if (run_dir / "last.pt").exists() else [])])
            (run_dir / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
        eval_json = run_dir / "test.json"
        if not eval_json.exists():
            evaluate_main(
                [
                    "--checkpoint",
                    str(run_dir / "last.pt"),
                    "--data",
                    str(data),
                    "--split",
                    "test",
                    "--workers",
                    str(args.workers),
                    "--json",
                    str(eval_json),
                ]
            )
        result = json.loads(eval_json.read_text())
        model, ckpt = load_detector(run_dir / "last.pt")
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        epochs = [m for m in metrics if m["type"] == "epoch"]
        test_ids = [line.strip() for line in (data / "ImageSets" / "Main" / "test.txt").read_text().split()]
        rows.append({
            "name": name,
            "mean_proposals": _mean_proposals(data, model, test_ids),
            "kind": kind,
            "pooler": model.config.roi_heads.pooler if kind != "rcnn" else "warp",
            "map": result["map"],
            "ap": result["ap"],
            "test_seconds_per_image": result["model"]["seconds_per_image"],
            "proposals_per_image": result["model"]["proposals"]["per_image"],
            "train_seconds": float((run_dir / "train_seconds.txt").read_text()) if (run_dir / "train_seconds.txt").exists() else None,
            "train_images_per_s": num_train / float(np.mean([e["seconds"] for e in epochs])),
        })  # fmt: skip
        print(f"{name}: VOC07 mAP {result['map']:.4f}", flush=True)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": _machine(torch.device("cpu")),
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
    from detector.models.factory import EXTERNAL_PROPOSAL_KINDS
    from detector.models.fast_rcnn import selective_search_settings
    from detector.proposals import ProposalCache

    if model.kind not in EXTERNAL_PROPOSAL_KINDS:
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
        f"{report['date']}, {report['machine']}. Generated dataset `{report['data']}` (train split to train, test split to "
        f"evaluate), every model on the tiny backbone from scratch, {b['epochs']} epochs, batch {b['batch_size']}, "
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
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
    plt.close(fig)


# --- CLI ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.ladder", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.part == "speed":
        report = run_speed(args)
        print(format_speed(report))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    else:
        run_accuracy(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
