"""The learning-rate range test (Smith, 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3):
train a copy of the model for a few hundred mini-batches while the rate grows exponentially, and suggest the rate
where the loss falls fastest.

Used by classification training (``--find-lr``, ``--lr auto``); the loss is cross-entropy over (images [N, 3, S, S],
labels [N]) batches.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from detector.classify.models import set_train_mode
from detector.core.rng import rng_state, set_rng_state
from detector.training.trainer import backward_step


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
    try:
        lrs, losses, smoothed, stopped = _sweep(
            copy.deepcopy(model), make_optimizer, batches, device, start_lr, end_lr, steps, beta, diverge, progress
        )
    finally:
        set_rng_state(rng)
    if len(lrs) < 2:
        raise RuntimeError(
            "the learning-rate range test diverged at once; check the data and the model "
            "(the loss was not finite at the first steps)"
        )
    suggestion, method = _suggest(lrs, smoothed)
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        min_loss_lr=float(lrs[int(np.argmin(smoothed))]),
        start_lr=start_lr,
        end_lr=end_lr,
        stopped_early=stopped,
        method=method,
    )


def _sweep(trial, make_optimizer, batches, device, start_lr, end_lr, steps, beta, diverge, progress):
    """The test's training loop on ``trial`` (a copy): (lrs, losses, smoothed losses, stopped early)."""
    optimizer = make_optimizer(trial)
    top = max(g["lr"] for g in optimizer.param_groups)
    ratios = [g["lr"] / top for g in optimizer.param_groups]
    set_train_mode(trial)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    bar = tqdm(total=steps, desc="lr range test", disable=not progress, leave=False, unit="it")
    try:
        for i, (images, labels) in zip(range(steps), batches):
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
            for g, r in zip(optimizer.param_groups, ratios):
                g["lr"] = lr * r
            loss = F.cross_entropy(trial(images.to(device)).float(), labels.to(device))
            value = float(loss.detach())
            if not math.isfinite(value):
                return lrs, losses, smoothed, True
            backward_step(loss, trial, optimizer)
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (i + 1))  # the moving average, debiased
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            bar.update(1)
            bar.set_postfix({"lr": f"{lr:.2g}", "loss": f"{smooth:.3f}"}, refresh=False)
            if smooth > diverge * best:
                return lrs, losses, smoothed, True
    finally:
        bar.close()
    return lrs, losses, smoothed, False
