"""Build a detector from its kind and config, or rebuild one from a self-describing checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detector.core import checkpoint
from detector.models.fast_rcnn import FastRCNN, FastRCNNConfig, tiny_fast_rcnn_config
from detector.models.faster_rcnn import FasterRCNN, FasterRCNNConfig, tiny_config
from detector.models.rcnn import RCNN, RCNNConfig, tiny_rcnn_config

# kind -> (model class, config class, the tiny CPU config for ``num_classes``)
_KINDS = {
    "faster_rcnn": (FasterRCNN, FasterRCNNConfig, tiny_config),
    "fast_rcnn": (FastRCNN, FastRCNNConfig, tiny_fast_rcnn_config),
    "rcnn": (RCNN, RCNNConfig, tiny_rcnn_config),
}
DETECTOR_KINDS = tuple(_KINDS)
# The kinds that read external (selective-search) proposals rather than proposing their own.
EXTERNAL_PROPOSAL_KINDS = ("fast_rcnn", "rcnn")
DetectorConfig = FasterRCNNConfig | FastRCNNConfig | RCNNConfig


def _entry(kind: str):
    if kind not in _KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; choose one of {', '.join(DETECTOR_KINDS)}")
    return _KINDS[kind]


def default_config(kind: str, backbone: str, num_classes: int) -> DetectorConfig:
    """The paper's configuration of ``kind`` on ``backbone``, or the tiny CPU one for the tiny backbone."""
    model_cls, config_cls, tiny = _entry(kind)
    return tiny(num_classes) if backbone == "tiny" else config_cls(backbone=backbone, num_classes=num_classes)


def build_detector(
    kind: str, config: DetectorConfig, *, pretrained: str | Path | None = None, weights_dir: str | Path = "weights"
) -> nn.Module:
    return _entry(kind)[0](config, pretrained=pretrained, weights_dir=weights_dir)


def config_from_dict(kind: str, d: dict) -> DetectorConfig:
    return _entry(kind)[1].from_dict(d)


def set_max_proposals(model: nn.Module, n: int) -> None:
    """Score at most ``n`` proposals per image at test time: the top ``n`` of selective search's ranking
    (fast_rcnn, rcnn) or of the RPN's after NMS (faster_rcnn)."""
    if n < 1:
        raise ValueError(f"the number of proposals must be at least 1, got {n}")
    if model.kind in EXTERNAL_PROPOSAL_KINDS:
        model.config.max_proposals = n
    else:
        model.rpn.config.post_nms_top_n_test = n


def proposals_per_image(model: nn.Module) -> int:
    """The most proposals per image ``model`` scores at test time."""
    return model.config.max_proposals if model.kind in EXTERNAL_PROPOSAL_KINDS else model.rpn.config.post_nms_top_n_test


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuilds the model from the checkpoint alone (no ImageNet file needed: the weights are in it).
    Returns (model in eval mode on ``device``, the checkpoint dict without the weights)."""
    return detector_from_checkpoint(checkpoint.load(path), device, source=path)


def detector_from_checkpoint(
    ckpt: dict, device: str | torch.device = "cpu", *, source: str | Path = "the checkpoint"
) -> tuple[nn.Module, dict]:
    """``load_detector`` for a checkpoint dict already read (``checkpoint.load``); ``source`` names it in errors.
    Takes the weights out of ``ckpt``."""
    kind = ckpt.get("kind")
    if kind not in DETECTOR_KINDS:
        raise checkpoint.CheckpointError(
            f"{source} holds a {kind!r} model, not a detector ({', '.join(DETECTOR_KINDS)})"
        )
    model = build_detector(kind, config_from_dict(kind, ckpt["model_config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()}
    model.load_state_dict(state)
    model.class_names = tuple(ckpt["class_names"])
    return model.to(device).eval(), ckpt
