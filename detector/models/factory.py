"""Build a detector from its kind and config, or rebuild one from a self-describing checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from detector.core import checkpoint
from detector.models.base import Detector, DetectorConfig
from detector.models.fast_rcnn import FastRCNN
from detector.models.faster_rcnn import FasterRCNN, fpn_config
from detector.models.fpn import FPN_BACKBONES
from detector.models.rcnn import RCNN

# The checkpoint's "kind" -> the class that rebuilds it (its ``config_class`` reads "model_config").
DETECTORS: dict[str, type[Detector]] = {cls.kind: cls for cls in (FasterRCNN, FastRCNN, RCNN)}
DETECTOR_KINDS = tuple(DETECTORS)


def detector_class(kind: str) -> type[Detector]:
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector kind {kind!r}; choose one of {', '.join(DETECTOR_KINDS)}")
    return DETECTORS[kind]


def default_config(kind: str, backbone: str, num_classes: int) -> DetectorConfig:
    """The paper's configuration of ``kind`` on ``backbone``, or the tiny CPU one for the tiny backbone."""
    cls = detector_class(kind)
    if backbone in FPN_BACKBONES:
        if kind != "faster_rcnn":
            raise ValueError(f"the feature-pyramid backbones are Faster R-CNN's only, not {kind}'s")
        return fpn_config(backbone, num_classes)
    return (
        cls.tiny_config(num_classes)
        if backbone == "tiny"
        else cls.config_class(backbone=backbone, num_classes=num_classes)
    )


def build_detector(
    kind: str, config: DetectorConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights"
) -> Detector:
    return detector_class(kind)(config, pretrained=pretrained, weights_dir=weights_dir)


def config_from_dict(kind: str, d: dict) -> DetectorConfig:
    return detector_class(kind).config_class.from_dict(d)


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[Detector, dict]:
    """Rebuilds the model from the checkpoint alone (no ImageNet file needed: the weights are in it).
    Returns (model in eval mode on ``device``, the checkpoint dict without the weights)."""
    return detector_from_checkpoint(checkpoint.load(path), device, source=path)


def detector_from_checkpoint(
    ckpt: dict, device: str | torch.device = "cpu", *, source: str | Path = "the checkpoint"
) -> tuple[Detector, dict]:
    """``load_detector`` for a checkpoint dict already read (``checkpoint.load``); ``source`` names it in errors.
    Takes the weights out of ``ckpt``."""
    kind = ckpt.get("kind")
    if kind not in DETECTORS:
        raise checkpoint.CheckpointError(
            f"{source} holds a {kind!r} model, not a detector ({', '.join(DETECTOR_KINDS)})"
        )
    model = build_detector(kind, config_from_dict(kind, ckpt["model_config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()}
    model.load_state_dict(state)
    model.class_names = tuple(ckpt["class_names"])
    return model.to(device).eval(), ckpt
