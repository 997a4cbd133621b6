"""Evaluate a classifier checkpoint on a class-folder split (``python -m detector.evaluate --task classify``).

    python -m detector.evaluate --task classify --checkpoint weights/default-classifier.pt --data data/synth-cls --split test

The images of ROOT/SPLIT/<class>/ are prepared as the checkpoint's training prepared its validation images (its
``--augment`` preset at evaluation and its ``--input-size``), or as the larger source images of the test-time views
with ``--tta``. Prints top-1, top-k and per-class accuracy; ``--json`` writes them with the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from detector.classify.engine import evaluate_classifier, tta_sizes, tta_source_transform
from detector.classify.models import ANY_SIZE_CLASSIFIERS, load_classifier
from detector.core.checkpoint import CheckpointError
from detector.data.augment import classification_transform
from detector.data.folder import ImageFolderDataset
from detector.tta import TTA_MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.evaluate --task classify",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    *,
    tta: str = "none",
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> dict:
    """Accuracy of the classifier in ``checkpoint`` on ``data/split/<class>/*``: the dict of
    ``detector.classify.engine.evaluate_classifier`` (top1, top5, topk, loss, images, tta, per_class, confusion)
    plus ``checkpoint``, ``data``, ``split``, ``classes``, ``input_size`` and ``preset``.

    The class folders must be among the checkpoint's classes (label i is its class i). Raises
    ``CheckpointError`` for a missing or non-classifier file, ``FileNotFoundError`` / ``ValueError`` for a missing
    split or an unknown class folder, ``ValueError`` for ``tta="multiscale"`` with a fixed-size model.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; choose one of {', '.join(TTA_MODES)}")
    device = torch.device(device)
    model, ckpt = load_classifier(checkpoint, device)
    name = ckpt["model_config"]["name"]
    if tta == "multiscale" and name not in ANY_SIZE_CLASSIFIERS:
        raise ValueError(
            f"--tta multiscale feeds images of several sizes; {name} takes only its input size. Use --tta 10crop or none"
        )
    size = int(ckpt["model_config"]["input_size"][-1])
    # The trainer's validation transform; a checkpoint without a training config is fed plain resized images.
    preset = (ckpt.get("train_config") or {}).get("augment", "none")
    if tta == "none":
        transform = classification_transform(preset, train=False, size=size)
    else:
        transform = tta_source_transform(preset, input_size=size)
    dataset = ImageFolderDataset(data, split, classes=list(model.class_names), transform=transform)
    result = evaluate_classifier(
        model,
        dataset,
        device=device,
        tta=tta,
        input_size=size,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
    )
    result.update(
        checkpoint=str(checkpoint),
        data=str(data),
        split=split,
        classes=list(model.class_names),
        input_size=size,
        preset=preset,
    )
    if tta != "none":
        result["tta_sizes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in tta_sizes(size).items()}
    return result


def report(result: dict, *, json_path: str | Path | None = None, plots_dir: str | Path | None = None) -> None:
    """Prints top-1 / top-k and the per-class table; optionally writes the JSON and the confusion matrix."""
    from detector.classify.train import format_per_class

    print(f"{result['checkpoint']} on {result['data']}/{result['split']} ({result['images']} images, tta {result['tta']}): "
          f"top-1 {result['top1']:.4f}, top-{result['topk']} {result['top5']:.4f}")  # fmt: skip
    print(format_per_class(result))
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results written to {json_path}")
    if plots_dir is not None:
        from detector.classify.plots import plot_confusion_matrix

        path = Path(plots_dir) / "confusion_matrix.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_confusion_matrix(
            result["confusion"],
            result["classes"],
            path,
            title=f"confusion matrix ({result['split']}, tta {result['tta']})",
        )
        print(f"confusion matrix written to {path}")


def main(argv: list[str] | None = None) -> int:
    from detector.train import resolve_device

    args = build_parser().parse_args(argv)
    try:
        result = evaluate_checkpoint(
            args.checkpoint, args.data, args.split, tta=args.tta, device=resolve_device(args.device), batch_size=args.batch_size,
            workers=args.workers, progress=not args.no_progress,
        )  # fmt: skip
        report(result, json_path=args.json, plots_dir=args.plots)
    except (OSError, ValueError, CheckpointError) as e:
        # Users' mistakes (missing files or folders, a detector checkpoint, unknown classes): one line, no traceback.
        message = str(e)
        if isinstance(e, OSError) and e.strerror and e.filename:
            message = f"{e.filename}: {e.strerror}"
        raise SystemExit(f"error: {message}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
