"""torchvision's COCO detector architectures with random weights made to behave like trained ones, for the offline
equivalence and fine-tuning tests: ``detector.tools.bench.torchvision_fpn.calibrated_detector`` (batch-norm statistics
calibrated on a photograph, the classifier's logits spread, the trunk's batch norm frozen for v1 and MobileNet), here
calibrated on scikit-image's astronaut at ``SIZE``."""

from __future__ import annotations

from torch import nn

from detector.tools.bench.torchvision_fpn import calibrated_detector
from tests.support.images import photo

SIZE = 512  # both models resize to this shorter side (torchvision's preset is 800; the equivalence is the same)


def torchvision_model(arch: str, seed: int = 0, spread: float = 8.0) -> nn.Module:
    return calibrated_detector(arch, photo("astronaut"), seed=seed, spread=spread, min_size=SIZE)
