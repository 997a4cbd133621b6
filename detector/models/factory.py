"""Build a detector from its kind and config, or rebuild one from a self-describing checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detector import checkpoint
from detector.models.faster_rcnn import FasterRCNN, FasterRCNNConfig

DETECTOR_KINDS = ("faster_rcnn",)


def build_detector(kind: str, config: FasterRCNNConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights") -> nn.Module:
    if kind == "faster_rcnn":
        return FasterRCNN(config, pretrained=pretrained, weights_dir=weights_dir)
    raise ValueError(f"unknown detector kind {kind!r}; choose one of {', '.join(DETECTOR_KINDS)}")


def config_from_dict(kind: str, d: dict) -> FasterRCNNConfig:
    if kind == "faster_rcnn":
        return FasterRCNNConfig.from_dict(d)
    raise ValueError(f"unknown detector kind {kind!r}; choose one of {', '.join(DETECTOR_KINDS)}")


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuilds the model from the checkpoint alone (no ImageNet file needed: the weights are in it).
    Returns (model in eval mode on ``device``, the checkpoint dict without the weights)."""
    return detector_from_checkpoint(checkpoint.load(path), device, source=path)


def detector_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu", *, source: str | Path = "the checkpoint") -> tuple[nn.Module, dict]:
    """``load_detector`` for a checkpoint dict already read (``checkpoint.load``); ``source`` names it in errors.
    Takes the weights out of ``ckpt``."""
    kind = ckpt.get("kind")
    if kind not in DETECTOR_KINDS:
        raise checkpoint.CheckpointError(f"{source} holds a {kind!r} model, not a detector ({', '.join(DETECTOR_KINDS)})")
    model = build_detector(kind, config_from_dict(kind, ckpt["model_config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()}
    model.load_state_dict(state)
    model.class_names = tuple(ckpt["class_names"])
    return model.to(device).eval(), ckpt
