"""What the three detector kinds share: a base config and a base class, so code that serves, evaluates or trains
any of them asks the model what it is instead of testing its kind's name.

- ``proposal_source``: ``"rpn"`` (Faster R-CNN proposes its own regions) or ``"selective_search"`` (Fast R-CNN and
  R-CNN score regions found outside the network: cached for datasets, computed on the spot for a new image);
- ``max_proposals``: the most proposals scored per image at test time, settable (``--max-proposals``);
- ``class_names`` (set when loaded from a checkpoint) and ``display_score_threshold`` (drawings and the service;
  evaluation keeps every detection above ``roi_heads.score_threshold``, 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from torch import nn

from detector.models.config import DictConfig

ProposalSource = Literal["rpn", "selective_search"]


@dataclass
class DetectorConfig(DictConfig):
    """The fields every detector kind has; each kind's config adds its own."""

    proposal_source: ClassVar[ProposalSource]

    backbone: str = "vgg16"
    num_classes: int = 20
    # How the backbone is built (``detector.models.backbones``); the defaults are the papers' for ImageNet weights,
    # training from scratch sets norm="gn", frozen_stages=0, box_head="mlp" (``detector.training.detection``).
    norm: str = "frozen_bn"
    frozen_stages: int = 2
    box_head: str = "trunk"
    display_score_threshold: float = 0.7  # for drawings and the service; evaluation uses roi_heads.score_threshold

    @property
    def backbone_options(self) -> dict:
        """``build_backbone``'s keyword arguments from this config."""
        return {"norm": self.norm, "frozen_stages": self.frozen_stages, "box_head": self.box_head}

    @property
    def external_proposals(self) -> bool:
        """True when the model reads proposals from outside (selective search), so datasets must carry them."""
        return self.proposal_source == "selective_search"

    def override(self, **settings) -> list[str]:
        """Applies the command line's model settings that were given (not None). Returns the names of those this
        kind has no such setting for (the caller warns that they are ignored). Subclasses handle their fields."""
        return [name for name, value in settings.items() if value is not None]


class Detector(nn.Module):
    """Base class of ``FasterRCNN``, ``FastRCNN`` and ``RCNN``: ``forward(images, targets=None, ...)`` returns named
    losses with targets, else per image ``{"boxes": [D, 4], "labels": [D], "scores": [D]}`` in original-image
    pixels."""

    kind: ClassVar[str]
    config_class: ClassVar[type[DetectorConfig]]
    config: DetectorConfig
    class_names: tuple[str, ...] = ()

    def __init__(self, config: DetectorConfig, *, pretrained: str | Path | None = None, weights_dir="weights"):
        super().__init__()
        self.config = config

    @staticmethod
    def tiny_config(num_classes: int) -> DetectorConfig:
        """The small CPU configuration of this kind (tests, the generated dataset, the default checkpoint)."""
        raise NotImplementedError

    @property
    def proposal_source(self) -> ProposalSource:
        return self.config.proposal_source

    @property
    def max_proposals(self) -> int:
        """The most proposals per image scored at test time."""
        raise NotImplementedError

    @max_proposals.setter
    def max_proposals(self, n: int) -> None:
        raise NotImplementedError

    def set_max_proposals(self, n: int) -> None:
        """Score at most ``n`` proposals per image at test time (``--max-proposals``)."""
        if n < 1:
            raise ValueError(f"the number of proposals must be at least 1, got {n}")
        self.max_proposals = n

    @property
    def display_score_threshold(self) -> float:
        return self.config.display_score_threshold

    @property
    def input_size(self) -> tuple[int, int]:
        """(shorter side, cap on the longer side) the model resizes an image to at test time: an upload larger than
        that can be decoded smaller without changing what the model sees."""
        return self.config.min_size[-1], self.config.max_size
