"""Optimizers and learning-rate schedules by name: the one small factory both trainers use.

Optimizers are ``torch.optim`` classes. Schedules are per-iteration multiplicative factors on each parameter
group's base learning rate, composed with a linear warm-up. We depart from ``torch.optim.lr_scheduler`` for
the composition: its ``ReduceLROnPlateau`` writes learning rates directly and cannot be chained with a warm-up
or a per-group base rate, so one ``LRSchedule`` computes ``base_lr * warmup(step) * schedule(step) * plateau``
itself and stays resumable through ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")


@dataclass
class OptimConfig:
    optimizer: str = "momentum"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float | None = None  # None = the optimizer's own default
    schedule: str = "step"
    step_size: int = 50000  # iterations between decays for "step"
    milestones: tuple[int, ...] = ()  # iterations of each decay for "multistep"
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 0.001  # the learning rate starts at lr * warmup_factor and rises linearly
    total_iters: int = 0  # needed by "cosine"
    min_lr_factor: float = 0.0  # cosine ends at lr * min_lr_factor
    plateau_patience: int = 2  # evaluations without improvement before dividing by 1 / gamma
    plateau_max_decays: int = 3  # AlexNet / VGG: "divided by 10 when validation stopped improving, three times"
    plateau_mode: str = "max"  # "max" for mAP or accuracy, "min" for a loss


def build_optimizer(params: Iterable, cfg: OptimConfig) -> torch.optim.Optimizer:
    """``params``: parameters or parameter groups (a group may carry its own ``lr``)."""
    name = cfg.optimizer
    extra = {} if cfg.eps is None else {"eps": cfg.eps}
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.0, weight_decay=cfg.weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **extra)
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **extra)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass
class _PlateauState:
    best: float | None = None
    bad: int = 0
    decays: int = 0
    scale: float = 1.0


class LRSchedule:
    """Call ``step()`` once per iteration (after ``optimizer.step()``) and ``observe(metric)`` after each
    validation; ``factor(it)`` is the multiplier applied at iteration ``it``."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig):
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if cfg.schedule == "cosine" and cfg.total_iters <= 0:
            raise ValueError("the cosine schedule needs total_iters > 0")
        self.optimizer = optimizer
        self.cfg = cfg
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.iteration = 0
        self.plateau = _PlateauState()
        self._apply()

    def schedule_factor(self, it: int) -> float:
        cfg = self.cfg
        if cfg.schedule == "step":
            return cfg.gamma ** (it // cfg.step_size)
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(it >= m for m in cfg.milestones)
        if cfg.schedule == "cosine":
            t = min(it, cfg.total_iters) / cfg.total_iters
            return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0  # constant, and plateau (its factor is the plateau scale)

    def factor(self, it: int) -> float:
        cfg = self.cfg
        warm = 1.0
        if it < cfg.warmup_iters:
            alpha = it / cfg.warmup_iters
            warm = cfg.warmup_factor * (1 - alpha) + alpha
        return warm * self.schedule_factor(it) * self.plateau.scale

    def _apply(self) -> None:
        f = self.factor(self.iteration)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr * f

    def step(self) -> None:
        self.iteration += 1
        self._apply()

    def observe(self, metric: float) -> bool:
        """Feeds a validation metric to the plateau rule; returns True when it just decayed the rate."""
        if self.cfg.schedule != "plateau":
            return False
        p, cfg = self.plateau, self.cfg
        better = p.best is None or (metric > p.best if cfg.plateau_mode == "max" else metric < p.best)
        if better:
            p.best, p.bad = metric, 0
            return False
        p.bad += 1
        if p.bad > cfg.plateau_patience and p.decays < cfg.plateau_max_decays:
            p.scale *= cfg.gamma
            p.decays += 1
            p.bad = 0
            self._apply()
            return True
        return False

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        p = self.plateau
        return {
            "iteration": self.iteration,
            "base_lrs": list(self.base_lrs),
            "plateau": {"best": p.best, "bad": p.bad, "decays": p.decays, "scale": p.scale},
        }

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.base_lrs = list(state["base_lrs"])
        self.plateau = _PlateauState(**state["plateau"])
        self._apply()
