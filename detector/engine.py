"""Training and evaluation loops, kept apart from the CLI (``detector.train`` / ``detector.evaluate``).

Boxes are ``xyxy`` in continuous pixel coordinates of the original images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from tqdm import tqdm

from detector.core.precision import check_precision, precision_autocast
from detector.voc_eval import Detection, EvalResult, evaluate_detections, ground_truth_from_dataset


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stops rather than writing a corrupt checkpoint."""


def non_finite_exit(exc: NonFiniteLossError, *, epoch: int, iteration: int, last_checkpoint) -> SystemExit:
    """The trainers' one-line answer to a NaN/inf loss (``epoch``, ``iteration``: 1-based, of the failed step)."""
    return SystemExit(
        f"error: {exc} at epoch {epoch}, iteration {iteration}. Training stopped; the last good checkpoint "
        f"is {last_checkpoint} (if one was written). Try a lower --lr, --warmup-iters or --clip-grad."
    )


def stoppable(batches: Iterable, limit: int, stop) -> Iterable:
    """At most ``limit`` items of ``batches``, ending early once ``stop.requested`` is set (Ctrl-C/SIGTERM)."""
    for i, batch in enumerate(batches):
        if i >= limit or stop.requested:
            return
        yield batch


def to_device(images: list[Tensor], targets: list[dict], device: torch.device) -> tuple[list[Tensor], list[dict]]:
    non_blocking = device.type == "cuda"
    images = [img.to(device, non_blocking=non_blocking) for img in images]
    targets = [
        {k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v for k, v in t.items()}
        for t in targets
    ]
    return images, targets


def autocast(device: torch.device, amp: bool):
    """fp16 autocast on CUDA when ``amp``; a no-op otherwise (the trainers' ``--amp``)."""
    return precision_autocast(device, "fp16") if amp and device.type == "cuda" else nullcontext()


def backward_step(
    loss: Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scaler: torch.amp.GradScaler | None = None,
    max_grad_norm: float | None = None,
) -> None:
    """Zero the gradients, back-propagate ``loss`` (scaled when ``scaler``), clip the gradient norm, step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if max_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule,
    batches: Iterable[tuple[list[Tensor], list[dict]]],
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    max_grad_norm: float | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
    any_rank: Callable[[bool], bool] | None = None,
) -> None:
    """One optimizer step per batch. ``on_step`` receives the step's losses (floats), ``lr``, ``images`` (count)
    and ``image_ids`` (list).

    Raises :class:`NonFiniteLossError` before the step when a loss is NaN or infinite, so the weights stay as
    they were after the last good step. In a distributed job ``any_rank`` (flag -> flag of any rank) makes
    every rank raise when one rank's loss is not finite, instead of the others waiting for its gradients.
    """
    model.train()
    for images, targets in batches:
        images, targets = to_device(images, targets, device)
        with autocast(device, amp):
            losses = model(images, targets)
        loss = sum(losses.values())
        values = {k: float(v.detach()) for k, v in losses.items()}
        finite = math.isfinite(float(loss.detach()))
        # any_rank is a collective: every rank must call it at every step, whatever its own loss.
        if any_rank(not finite) if any_rank is not None else not finite:
            bad = ", ".join(f"{k}={v}" for k, v in values.items()) if not finite else "in another process"
            raise NonFiniteLossError(f"loss is not finite ({bad})")
        backward_step(loss, model, optimizer, scaler=scaler, max_grad_norm=max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]
        schedule.step()
        if on_step is not None:
            on_step(
                {
                    "loss": float(loss.detach()),
                    **values,
                    "lr": lr,
                    "images": len(images),
                    "image_ids": [t.get("image_id") for t in targets],
                }
            )


@torch.inference_mode()
def predict_dataset(
    model: nn.Module,
    dataset,
    *,
    device: torch.device,
    batch_size: int = 1,
    workers: int = 0,
    amp: bool = False,
    precision: str = "fp32",
    progress: bool = True,
) -> list[Detection]:
    """Runs the detector over a dataset whose items are (image tensor [3, H, W], target with ``image_id``);
    returns every detection with its 1-based label and continuous box in original-image pixels.
    ``precision``: autocast dtype ("fp32", "bf16", "fp16" on CUDA); ``amp`` (fp16 on CUDA) is the older
    spelling of ``precision="fp16"``."""
    if amp and device.type == "cuda":
        precision = "fp16"
    check_precision(precision, device)
    from detector.data.transforms import collate

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    model.eval()
    detections: list[Detection] = []
    for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False, unit="batch"):
        # External proposals (Fast R-CNN, R-CNN) come with the targets when the dataset carries them.
        extra = {"proposals": [t["proposals"].to(device) for t in targets]} if "proposals" in targets[0] else {}
        with precision_autocast(device, precision):
            outputs = model([img.to(device) for img in images], **extra)
        for out, target in zip(outputs, targets):
            boxes, labels, scores = (
                out["boxes"].float().cpu().tolist(),
                out["labels"].cpu().tolist(),
                out["scores"].float().cpu().tolist(),
            )
            detections.extend(
                Detection(target["image_id"], int(lbl), float(s), b) for b, lbl, s in zip(boxes, labels, scores)
            )
    return detections


def evaluate(
    model: nn.Module,
    dataset,
    *,
    device: torch.device,
    metric: str = "voc07",
    iou_threshold: float = 0.5,
    batch_size: int = 1,
    workers: int = 0,
    amp: bool = False,
    precision: str = "fp32",
    progress: bool = True,
) -> tuple[EvalResult, float]:
    """VOC mAP of ``model`` on ``dataset`` (built with ``keep_difficult=True``). Returns (result, seconds per image)."""
    start = time.perf_counter()
    detections = predict_dataset(
        model,
        dataset,
        device=device,
        batch_size=batch_size,
        workers=workers,
        amp=amp,
        precision=precision,
        progress=progress,
    )
    seconds = (time.perf_counter() - start) / max(len(dataset), 1)
    result = evaluate_detections(
        detections, ground_truth_from_dataset(dataset), dataset.classes, iou_threshold=iou_threshold, metric=metric
    )
    return result, seconds
