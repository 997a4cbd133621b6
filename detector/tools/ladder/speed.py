"""The speed ladder: the same real photographs, the same backbone (random weights: timing does not depend on them),
the same machine, one run: seconds per image for selective search, R-CNN, Fast R-CNN with and without selective
search, and Faster R-CNN, next to the papers' GPU figures. Boxes are xyxy pixels of the photograph."""

from __future__ import annotations

import argparse
import datetime

import numpy as np
import torch
from PIL import Image
from torch import nn

from detector.data.proposals import SelectiveSearchSettings, selective_search
from detector.models.factory import build_detector, default_config
from detector.tools.timing import machine_line, timed

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


def photos(longer_side: int = 500) -> list[tuple[str, np.ndarray]]:
    """Real photographs shipped with scikit-image, resized so the longer side is ``longer_side`` (VOC's size)."""
    from skimage import data  # noqa: PLC0415 (optional dependency: scikit-image, in the dev extra)

    out = []
    for name in ("astronaut", "chelsea", "coffee"):
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        scale = longer_side / max(image.size)
        out.append(
            (name, np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)))
        )
    return out


def _build_models(backbone: str, max_proposals: int, device: torch.device) -> dict[str, nn.Module]:
    """The three detectors on ``backbone`` with seeded random weights, in eval mode on ``device``."""
    models = {}
    for kind in ("rcnn", "fast_rcnn", "faster_rcnn"):
        torch.manual_seed(0)
        cfg = default_config(kind, backbone, 20)
        if hasattr(cfg, "max_proposals"):
            cfg.max_proposals = max_proposals
        models[kind] = build_detector(kind, cfg).to(device).eval()
    return models


def _warm_up(models: dict[str, nn.Module], device: torch.device) -> None:
    """One untimed pass of each network on a small image: first-call allocations and kernel selection."""
    warm = torch.rand(3, 200, 300, device=device)
    boxes = torch.tensor([[10.0, 10.0, 100.0, 100.0]], device=device)
    for kind, model in models.items():
        model([warm], proposals=[boxes]) if kind != "faster_rcnn" else model([warm])


def _time_photo(
    models: dict[str, nn.Module], name: str, array: np.ndarray, ss_settings: SelectiveSearchSettings, device
) -> dict:
    """Seconds for one photograph: selective search, then each network (R-CNN and Fast R-CNN on its proposals)."""
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255).to(device)
    proposals, t_ss = timed(lambda: selective_search(array, ss_settings), device)
    props = torch.from_numpy(proposals).to(device)
    _, t_fast = timed(lambda: models["fast_rcnn"]([image], proposals=[props]), device)
    _, t_faster = timed(lambda: models["faster_rcnn"]([image]), device)
    _, t_rcnn = timed(lambda: models["rcnn"]([image], proposals=[props]), device)
    print(
        f"{name} {array.shape[1]}x{array.shape[0]}, {len(proposals)} proposals: selective search {t_ss:.2f} s, "
        f"R-CNN network {t_rcnn:.1f} s, Fast R-CNN {t_fast:.2f} s, Faster R-CNN {t_faster:.2f} s",
        flush=True,
    )
    return {
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


def run_speed(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    ss_settings = SelectiveSearchSettings(mode=args.proposal_mode, max_proposals=args.max_proposals, scale=500)
    models = _build_models(args.backbone, args.max_proposals, device)
    images = photos()[: args.images]
    with torch.inference_mode():
        _warm_up(models, device)
        rows = [_time_photo(models, name, array, ss_settings, device) for name, array in images]
    mean = {
        k: float(np.mean([r[k] for r in rows]))
        for k in ("selective_search", "rcnn", "fast_rcnn_with_ss", "fast_rcnn", "faster_rcnn", "proposals")
    }
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_line(device),
        "backbone": args.backbone,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "selective_search": ss_settings.to_dict(),
        "images": rows,
        "mean_seconds": mean,
        "paper_seconds": PAPER_SECONDS,
    }


def format_speed(report: dict) -> str:
    mean = report["mean_seconds"]
    ours_base, paper_base = mean["faster_rcnn"], PAPER_SECONDS["faster_rcnn"]
    lines = [
        f"{report['backbone']} on {report['device']} ({report['machine']}), {len(report['images'])} images, "
        f"{mean['proposals']:.0f} selective-search proposals per image on average "
        f"({report['selective_search']['mode']} mode)",
        "",
        "| model | ours: s / image | ours: x Faster R-CNN | papers (GPU): s / image | papers: x Faster R-CNN |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("rcnn", "fast_rcnn_with_ss", "fast_rcnn", "faster_rcnn"):
        paper = PAPER_SECONDS[key]
        lines.append(
            f"| {LADDER_NAMES[key]} | {mean[key]:.2f} | {mean[key] / ours_base:.1f} | "
            f"{paper:.2f} | {paper / paper_base:.1f} |"
        )
    search = mean["selective_search"]
    lines.append(f"| {LADDER_NAMES['selective_search']} | {search:.2f} | {search / ours_base:.1f} | | |")
    return "\n".join(lines)
