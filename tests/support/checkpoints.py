"""Checkpoints as the trainers write them, built without training: untrained tiny detectors of each kind, an untrained
LeNet-5, and a hand-set classifier whose every answer is known (the brightest colour channel)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detector.classify.models import CLASSIFIER_KIND, build_classifier
from detector.core import checkpoint
from detector.data.synth import CLASSES
from detector.models.factory import build_detector, default_config
from detector.models.faster_rcnn import tiny_config

KINDS = ("faster_rcnn", "fast_rcnn", "rcnn")

# The channel classifier: label i is colour channel i, on 8 x 8 inputs.
CHANNEL_CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (220, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 220)}
CHANNEL_SIZE = 8


def save_detector(path: Path, model: nn.Module, class_names, **extra) -> Path:
    """``model`` (a ``Detector``) saved with its kind, config and ``class_names``, plus ``extra`` entries."""
    payload = checkpoint.model_payload(
        model, kind=model.kind, config=model.config.to_dict(), class_names=class_names, **extra
    )
    return checkpoint.save(path, payload)


def save_classifier(path: Path, model: nn.Module, config: dict, class_names, **extra) -> Path:
    payload = checkpoint.model_payload(model, kind=CLASSIFIER_KIND, config=config, class_names=class_names, **extra)
    return checkpoint.save(path, payload)


def tiny_detector(path: Path, classes) -> Path:
    """An untrained tiny Faster R-CNN for ``classes`` at small inputs (shorter side 128, longer at most 192)."""
    torch.manual_seed(0)
    cfg = tiny_config(len(classes))
    cfg.min_size, cfg.max_size = (128,), 192
    return save_detector(path, build_detector("faster_rcnn", cfg), classes)


def kind_detectors(folder: Path) -> dict[str, Path]:
    """An untrained tiny checkpoint of each kind (small inputs) for the generated shape classes."""
    paths = {}
    for kind in KINDS:
        cfg = default_config(kind, "tiny", len(CLASSES))
        if hasattr(cfg, "min_size"):
            cfg.min_size, cfg.max_size = (128,), 192
        torch.manual_seed(0)
        paths[kind] = save_detector(folder / f"{kind}.pt", build_detector(kind, cfg), list(CLASSES), metrics={})
    return paths


def tiny_classifier(path: Path) -> Path:
    """An untrained LeNet-5 classifier checkpoint (32 px input, the six generated shape classes): enough to exercise
    serving without training anything."""
    config = {"name": "lenet5", "num_classes": len(CLASSES), "input_size": [3, 32, 32], "activation": "relu",
              "init": None, "hidden_sizes": [120, 84], "dropout": 0.0, "batch_norm": False}  # fmt: skip
    torch.manual_seed(0)
    model = build_classifier(
        "lenet5", num_classes=len(CLASSES), input_size=(3, 32, 32), hidden_sizes=(120, 84), dropout=0.0
    )
    return save_classifier(path, model, config, list(CLASSES), train_config={"augment": "none"}, metrics={"top1": 0.0})


def channel_classifier(path: Path) -> Path:
    """Softmax regression on 8 x 8 inputs whose logit k is the sum of channel k: it answers the dominant colour."""
    size = CHANNEL_SIZE
    model = build_classifier("softmax", num_classes=3, input_size=(3, size, size))
    with torch.no_grad():
        # Flattened [3, 8, 8] input: channel k occupies features k*64 .. k*64+63.
        model.head.weight.copy_(torch.eye(3).repeat_interleave(size * size, dim=1))
        model.head.bias.zero_()
    config = {"name": "softmax", "num_classes": 3, "input_size": [3, size, size], "activation": "relu", "init": None,
              "hidden_sizes": [], "dropout": 0.0, "batch_norm": False}  # fmt: skip
    return save_classifier(path, model, config, CHANNEL_CLASSES, train_config={"augment": "none"})
