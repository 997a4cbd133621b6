"""Classification training and evaluation loops, kept apart from the CLI (``detector.classify.train``).

Shape shorthand: N images in a batch, K classes, S the input size (``--input-size``), V test-time views.
Images are float tensors [3, S, S] as ``detector.data.augment.classification_transform`` makes them; labels
are ints in 0..K-1.

Test-time augmentation sizes scale with S the way the augmentation presets do (224 -> S): the evaluation
images are made at ``round(256 S / 224)`` (``tta_source_transform``); ``10crop`` takes the four corner and the
centre S x S crops of them and their mirrors, ``multiscale`` resizes them to shorter sides
``round(k S / 224)`` for k in 224, 256, 288, 320 and needs a model that accepts any input size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import albumentations as A
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from detector.core.rng import rng_state, set_rng_state
from detector.data.augment import ClassificationTransform
from detector.engine import NonFiniteLossError, autocast, backward_step
from detector.tta import TTA_MODES, classify_tta

__all__ = [
    "set_train_mode",
    "train_steps",
    "tta_sizes",
    "tta_source_transform",
    "evaluate_classifier",
    "LRFinderResult",
    "lr_range_test",
]


def set_train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, except batch-norm layers whose parameters are all frozen: they stay in eval mode, so a
    frozen backbone keeps its running statistics as well as its weights."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
    return model


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    max_grad_norm: float | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
) -> None:
    """One optimizer step per batch of (images [N, 3, S, S], labels [N]) with the cross-entropy loss.

    ``on_step`` receives ``loss``, ``lr``, ``images`` (N) and ``correct`` (training-mode top-1 hits in the batch).
    Raises :class:`~detector.engine.NonFiniteLossError` before the step when the loss is NaN or infinite.
    """
    set_train_mode(model)
    non_blocking = device.type == "cuda"
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)
        with autocast(device, amp):
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss is not finite (loss={value})")
        backward_step(loss, model, optimizer, scaler=scaler, max_grad_norm=max_grad_norm)
        lr = optimizer.param_groups[-1]["lr"]  # the head's group: the rate --lr names
        schedule.step()
        if on_step is not None:
            correct = int((logits.detach().argmax(dim=1) == labels).sum())
            on_step({"loss": value, "lr": lr, "images": len(labels), "correct": correct})


# --------------------------------------------------------------------------------------------
# Evaluation


def tta_sizes(input_size: int) -> dict:
    """Sizes of the test-time views for a model trained at ``input_size`` S: ``resize`` = round(256 S / 224),
    the side of the images the views are taken from; ``crop`` = S; ``scales`` = round(k S / 224) for
    k = 224, 256, 288, 320."""
    return {
        "resize": round(256 * input_size / 224),
        "crop": input_size,
        "scales": tuple(round(k * input_size / 224) for k in (224, 256, 288, 320)),
    }


def tta_source_transform(preset: str, *, input_size: int) -> ClassificationTransform:
    """The evaluation transform for TTA: uint8 [H, W, 3] -> normalised [3, R, R], R = ``tta_sizes(S)["resize"]``.

    ``alexnet`` and ``vgg`` keep the aspect ratio (shorter side R, centre R x R square, as their papers' test
    images); the other presets train on whole images squashed to a square, so their source is squashed too.
    """
    side = tta_sizes(input_size)["resize"]
    if preset in ("alexnet", "vgg"):
        return ClassificationTransform([A.SmallestMaxSize(max_size=side), A.CenterCrop(side, side)])
    return ClassificationTransform([A.Resize(side, side)])


@torch.inference_mode()
def evaluate_classifier(
    model: nn.Module,
    dataset,
    *,
    device: torch.device,
    tta: str = "none",
    input_size: int | None = None,
    batch_size: int = 64,
    workers: int = 0,
    amp: bool = False,
    progress: bool = False,
) -> dict:
    """Accuracy of ``model`` on ``dataset`` (items: image [3, H, W], label), in eval mode.

    ``tta="none"`` feeds the images as given, in batches. ``"10crop"`` and ``"multiscale"`` average the softmax of
    the views of ``detector.tta.classify_tta``, one image at a time; the dataset should then yield the larger
    source images of ``tta_source_transform`` and ``input_size`` (S) is the model's input size (default:
    round(224 / 256 * the images' shorter side)). See the module docstring for the view sizes.

    Returns ``{"top1", "top5", "topk" (the k of "top5": min(5, K)), "loss" (mean cross-entropy of the averaged
    probabilities), "images", "per_class": {class: {"accuracy", "correct", "images"}}, "confusion"}`` where
    ``confusion[i][j]`` counts images of class i predicted as j. Classes are named by ``dataset.classes``.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {tta!r}; choose one of {', '.join(TTA_MODES)}")
    classes = list(getattr(dataset, "classes", []))
    model.eval()
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size if tta == "none" else 1, shuffle=False, num_workers=workers
    )
    probs_all, labels_all = [], []
    for images, labels in tqdm(
        loader, desc=f"eval ({tta})" if tta != "none" else "eval", disable=not progress, leave=False, unit="batch"
    ):
        images = images.to(device)
        with autocast(device, amp):
            if tta == "none":
                probs = model(images).float().softmax(dim=1)
            else:
                crop = input_size or round(224 / 256 * min(images.shape[-2:]))
                sizes = tta_sizes(crop)
                probs = torch.stack([
                    classify_tta(model, image, tta, resize=min(image.shape[-2:]), crop=crop, scales=sizes["scales"]).float() for image in images
                ])  # fmt: skip
        probs_all.append(probs.cpu())
        labels_all.append(labels)
    probs = torch.cat(probs_all)  # [M, K]
    labels = torch.cat(labels_all)
    num_classes = probs.shape[1]
    if not classes:
        classes = [str(i) for i in range(num_classes)]
    k = min(5, num_classes)
    topk = probs.topk(k, dim=1).indices
    pred = topk[:, 0]
    loss = float(-probs.gather(1, labels[:, None]).clamp_min(1e-12).log().mean())
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = {}
    for i, name in enumerate(classes):
        n = int(confusion[i].sum())
        hits = int(confusion[i, i])
        per_class[name] = {"accuracy": hits / n if n else None, "correct": hits, "images": n}
    return {
        "top1": float((pred == labels).float().mean()),
        "top5": float((topk == labels[:, None]).any(dim=1).float().mean()),
        "topk": k,
        "loss": loss,
        "images": len(labels),
        "tta": tta,
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


# --------------------------------------------------------------------------------------------
# Learning-rate range test


@dataclass
class LRFinderResult:
    """The sweep: ``lrs[i]`` was used for step i, whose loss was ``losses[i]`` (``smoothed[i]`` after the
    debiased exponential moving average). ``suggestion`` is the rate at the steepest descent of the smoothed
    loss (against log lr, fitted over a decade) before its minimum, ``method`` "steepest"; or, with less than a
    decade before the minimum, the min-loss rate / 10, ``method`` "min_loss/10". ``min_loss_lr`` is the rate of
    the minimum itself. Either way the suggestion is one of the swept rates."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_loss_lr: float
    start_lr: float
    end_lr: float
    stopped_early: bool = False
    method: str = "steepest"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "suggestion",
                "min_loss_lr",
                "method",
                "start_lr",
                "end_lr",
                "stopped_early",
                "lrs",
                "losses",
                "smoothed",
            )
        }


def _suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, str]:
    """Steepest descent of the smoothed loss against log10(lr) before its minimum: the slope is a least-squares
    line over one decade of rates (a point-to-point gradient follows batch noise, which dominates at tiny rates
    where the loss barely moves), and the suggestion is the rate at the centre of the steepest window. When less
    than a decade lies before the minimum, the suggestion is the min-loss rate / 10, kept inside the sweep."""
    log_lr, y = np.log10(np.asarray(lrs)), np.asarray(smoothed)
    best = int(np.argmin(y))
    window = max(3, round(1.0 / (log_lr[1] - log_lr[0])))  # points per decade
    if best + 1 >= window:
        slopes = [np.polyfit(log_lr[i : i + window], y[i : i + window], 1)[0] for i in range(best + 2 - window)]
        return float(lrs[int(np.argmin(slopes)) + window // 2]), "steepest"
    return float(max(lrs[best] / 10, lrs[0])), "min_loss/10"


def lr_range_test(
    model: nn.Module,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    batches: Iterator[tuple[Tensor, Tensor]],
    *,
    device: torch.device,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    beta: float = 0.98,
    diverge: float = 4.0,
    progress: bool = False,
) -> LRFinderResult:
    """Smith's learning-rate range test (2017): train a copy of ``model`` for up to ``steps`` mini-batches while
    the rate grows exponentially from ``start_lr`` to ``end_lr``, recording the loss.

    ``make_optimizer(copy)`` builds the optimizer (any rates: their ratios are kept, so layers fine-tuned with a
    multiplier stay that much slower; the swept rate is that of the fastest group, normally the head). The sweep
    stops early once the smoothed loss exceeds ``diverge`` times its minimum or a loss is not finite. ``model``
    itself is not touched, and the global RNG states are restored afterwards, so training that follows is the
    same as without the test. Runs in fp32.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"the sweep needs 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if steps < 2:
        raise ValueError(f"the sweep needs at least 2 steps, got {steps}")
    rng = rng_state()
    trial = copy.deepcopy(model)
    optimizer = make_optimizer(trial)
    top = max(g["lr"] for g in optimizer.param_groups)
    ratios = [g["lr"] / top for g in optimizer.param_groups]
    set_train_mode(trial)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    stopped = False
    bar = tqdm(total=steps, desc="lr range test", disable=not progress, leave=False, unit="it")
    try:
        for i, (images, labels) in zip(range(steps), batches):
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
            for g, r in zip(optimizer.param_groups, ratios):
                g["lr"] = lr * r
            images, labels = images.to(device), labels.to(device)
            loss = F.cross_entropy(trial(images).float(), labels)
            value = float(loss.detach())
            if not math.isfinite(value):
                stopped = True
                break
            backward_step(loss, trial, optimizer)
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            bar.update(1)
            bar.set_postfix({"lr": f"{lr:.2g}", "loss": f"{smooth:.3f}"}, refresh=False)
            if smooth > diverge * best:
                stopped = True
                break
    finally:
        bar.close()
        del trial, optimizer
        set_rng_state(rng)
    if len(lrs) < 2:
        raise RuntimeError(
            "the learning-rate range test diverged at once; check the data and the model (the loss was not finite at the first steps)"
        )
    suggestion, method = _suggest(lrs, smoothed)
    return LRFinderResult(
        lrs=lrs, losses=losses, smoothed=smoothed, suggestion=suggestion, min_loss_lr=float(lrs[int(np.argmin(smoothed))]),
        start_lr=start_lr, end_lr=end_lr, stopped_early=stopped, method=method,
    )  # fmt: skip
