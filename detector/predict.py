"""Run a detector checkpoint on images and draw what it finds.

    python -m detector.predict --checkpoint weights/default-detector.pt IMAGE... [--out DIR]

Writes ``DIR/<image name>.png`` with boxes, labels and scores drawn, and ``DIR/detections.json``; prints the
detections. The score threshold defaults to the model's display preset (higher than evaluation's 0.05).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector.core.checkpoint import CheckpointError
from detector.core.images import open_image
from detector.core.precision import CHOICES, precision_autocast, resolve_precision
from detector.models.factory import EXTERNAL_PROPOSAL_KINDS, load_detector, set_max_proposals
from detector.models.inference import prepare_for_inference
from detector.train import resolve_device
from detector.visualize import draw_detections


def load_image(path: str | Path) -> Image.Image:
    """An RGB image with its EXIF orientation applied (phone photos), or a clear error naming the file."""
    try:
        return open_image(path, exif_transpose=True)  # as the user sees the photo, as the service does
    except FileNotFoundError:
        raise SystemExit(f"error: image {path} does not exist") from None
    except OSError as exc:
        raise SystemExit(f"error: {path} is not a readable image ({exc})") from None


@torch.inference_mode()
def detect(
    model: torch.nn.Module,
    images: list[Image.Image],
    device: torch.device,
    score_threshold: float,
    *,
    precision: str = "fp32",
) -> list[dict]:
    """Per image: {"boxes": [[x0, y0, x1, y1], ...] continuous pixels, "labels": [name, ...], "scores": [...]}.
    ``precision``: autocast dtype, "fp32", "bf16" (CPU or CUDA) or "fp16" (CUDA)."""
    tensors = [torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255).to(device) for im in images]
    results = []
    with precision_autocast(device, precision):
        outputs = model(tensors)
    for out in outputs:
        out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
        keep = out["scores"] >= score_threshold
        results.append(
            {
                "boxes": out["boxes"][keep].cpu().tolist(),
                "labels": [model.class_names[i - 1] for i in out["labels"][keep].cpu().tolist()],
                "scores": out["scores"][keep].cpu().tolist(),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m detector.predict", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("images", nargs="+", type=Path, help="image files")
    p.add_argument("--checkpoint", required=True, type=Path, help="a detector checkpoint")
    p.add_argument(
        "--out", type=Path, default=Path("runs/predict"), help="folder for the drawn images and detections.json"
    )
    p.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="minimum score drawn (default: the checkpoint's display threshold)",
    )
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
    p.add_argument(
        "--max-proposals",
        type=int,
        default=None,
        help="score at most N proposals per image (default: the checkpoint's)",
    )
    p.add_argument(
        "--precision", choices=CHOICES, default="fp32",
        help="autocast dtype: bf16 on CPU or CUDA, fp16 on CUDA only; auto: bf16 on a GPU with bf16 or a CPU with AMX, else fp32",
    )  # fmt: skip
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    try:
        precision = resolve_precision(args.precision, device)
    except ValueError as exc:
        p.error(str(exc))
    if args.precision == "auto":
        print(f"precision: {precision}")
    try:
        model, ckpt = load_detector(args.checkpoint, device)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.max_proposals is not None:
        set_max_proposals(model, args.max_proposals)
    if model.kind in EXTERNAL_PROPOSAL_KINDS:  # the model runs selective search on each new image itself
        print(
            f"{model.kind}: selective search ({model.config.proposals['mode']} mode) on each image, top {model.config.max_proposals} proposals scored"
        )
    prepare_for_inference(model, precision.name)
    threshold = args.score_threshold if args.score_threshold is not None else model.config.display_score_threshold
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for path in args.images:
        image = load_image(path)
        (result,) = detect(model, [image], device, threshold, precision=precision.name)
        drawn = draw_detections(
            image, result["boxes"], result["labels"], result["scores"], class_names=model.class_names
        )
        out_path = args.out / f"{path.stem}.png"
        drawn.save(out_path)
        print(f"{path}: {len(result['labels'])} detections -> {out_path}")
        for box, label, score in zip(result["boxes"], result["labels"], result["scores"]):
            print(f"  {label:15s} {score:.3f}  [{box[0]:.1f}, {box[1]:.1f}, {box[2]:.1f}, {box[3]:.1f}]")
        records.append({"image": str(path), "width": image.width, "height": image.height, **result})
    (args.out / "detections.json").write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
