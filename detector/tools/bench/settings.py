"""What one benchmark run measures (``Settings``), the checks on what a user can get wrong, and its fixed inputs (and,
for feature-pyramid backbones, its fixed weights)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from detector.core.precision import check_precision
from detector.models.fpn import FPN_BACKBONES
from detector.tools.bench.models import BENCH_BACKBONES, NUM_CLASSES, fpn_weights


@dataclass
class Settings:
    mode: str = "inference"  # or "train"
    backbone: str = "vgg16"
    precision: str = "fp32"
    device: str = "cpu"  # resolved: "cpu" or "cuda[:i]"
    images: int = 5
    size: tuple[int, int] = (375, 500)  # (H, W) of every input image
    batch: int = 1  # images per forward (inference only; training steps take one image)
    warmup: int = 1
    threads: int | None = None  # None: torch's default
    seed: int = 0
    memory: bool = True
    min_size: int | None = None  # shorter side the models resize to; None: the config's (600, tiny 288, FPN 800)
    prepare: bool = True  # inference: run ours through prepare_for_inference (channels-last, low-precision weights)


def check_settings(settings: Settings) -> None:
    """Raises ValueError naming the option for settings a user can get wrong."""
    if settings.backbone not in BENCH_BACKBONES:
        raise ValueError(f"--backbone {settings.backbone!r}: choose one of {', '.join(BENCH_BACKBONES)}")
    if settings.mode == "train" and settings.backbone in FPN_BACKBONES:
        # torchvision's builder without weights makes every trunk layer trainable, ours the preset's (as torchvision's
        # with COCO weights): the two training steps would not do the same work.
        raise ValueError(f"--backbone {settings.backbone}: the feature-pyramid models are compared in inference only")
    check_precision(settings.precision, settings.device)
    if settings.images < 1 or settings.warmup < 0 or settings.batch < 1:
        raise ValueError("--images and --batch must be at least 1, --warmup at least 0")
    if settings.batch > settings.images:
        raise ValueError(f"--batch {settings.batch} is larger than --images {settings.images}")
    if min(settings.size) < 32 or (settings.min_size is not None and settings.min_size < 32):
        raise ValueError("--size sides and --min-size must be at least 32 px")


def make_inputs(settings: Settings) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """Fixed random images [3, H, W] in [0, 1] and targets of 1-4 boxes (xyxy pixels, >= 16 px a side)
    with labels 1..20, from a generator seeded independently of the models."""
    g = torch.Generator().manual_seed(settings.seed + 1)
    h, w = settings.size
    images, targets = [], []
    for _ in range(settings.images):
        images.append(torch.rand(3, h, w, generator=g))
        n = int(torch.randint(1, 5, (1,), generator=g))
        side = torch.tensor([w, h, w, h], dtype=torch.float32)
        lo = torch.rand(n, 2, generator=g) * (side[:2] - 16)
        hi = lo + 16 + torch.rand(n, 2, generator=g) * (side[:2] - 16 - lo)
        boxes = torch.cat([lo, hi], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, NUM_CLASSES + 1, (n,), generator=g)})
    return images, targets


@functools.cache
def _fpn_weights(backbone: str, seed: int, size: tuple[int, int], min_size: int | None) -> dict[str, Tensor] | None:
    first_image = make_inputs(Settings(mode="inference", backbone=backbone, seed=seed, size=size, images=1))[0][0]
    return fpn_weights(backbone, seed, first_image, min_size)


def run_weights(settings: Settings) -> dict[str, Tensor] | None:
    """The state dict every model of a feature-pyramid run loads (``fpn_weights``, calibrated on the first input
    image), None for the other backbones. Made once per run and handed to each model's process: calibrating runs
    the model, which in that process would raise the peak memory before the model is measured. Kept for the
    process: the answer check and each precision's report of one command load the same weights (calibrating a
    ResNet-50 takes seconds)."""
    return _fpn_weights(settings.backbone, settings.seed, tuple(settings.size), settings.min_size)
