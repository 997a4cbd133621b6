"""Typed training configurations: what ``python -m detector.train`` builds from its flags, and what code and tests
build directly. One field per command-line option, same name with ``_`` for ``-``, same default; the whole config
is stored in each checkpoint's ``train_config``.

    from detector.training import DetectionTrainConfig, train_detector
    train_detector(DetectionTrainConfig(data="data/synth", backbone="tiny", epochs=2, out="runs/try"))
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import Any, ClassVar


@dataclass
class TrainConfig:
    """The options every task shares: data loading, optimisation, schedule and the run itself."""

    task: ClassVar[str]

    data: str
    train_split: str = "trainval"
    val_split: str = "test"  # "none": no validation
    workers: int = 2
    pretrained: str = "auto"
    weights_dir: str = "weights"
    epochs: int | None = None
    iters: int = 0  # stop after this many iterations in all (0: run every epoch)
    batch_size: int | None = None
    optimizer: str = "momentum"
    lr: Any = 0.001  # classification also takes "auto" (the range test's suggestion)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    step_size: float | None = None  # epochs between decays ("step")
    milestones: tuple[float, ...] = ()  # epochs of each decay ("multistep")
    gamma: float = 0.1
    warmup_iters: int = 0
    clip_grad: float | None = None
    amp: bool = False  # fp16 autocast with gradient scaling, CUDA only
    device: str = "auto"
    seed: int = 0
    out: str = "runs/detector"
    resume: str | None = None  # a last.pt, or "auto" for OUT/last.pt
    eval_every: int = 1
    checkpoint_every: int = 5
    log_every: int = 10
    no_progress: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's ``train_config`` (plain data: tuples as lists), with the task."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {"task": self.task, **values}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's default, for the command line's ``--help``."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


# The papers' schedules per detector kind (epochs, images per batch, epochs between lr decays), used for the options
# left unset: Faster R-CNN's 50k of 70k iterations at 1 image on VOC2007 trainval; Fast R-CNN's 30k of 40k at 2
# images, and the same for R-CNN's fine-tuning.
PAPER_SCHEDULES = {
    "faster_rcnn": {"epochs": 14, "batch_size": 1, "step_size": 10},
    "fast_rcnn": {"epochs": 16, "batch_size": 2, "step_size": 12},
    "rcnn": {"epochs": 16, "batch_size": 2, "step_size": 12},
}


@dataclass
class DetectionTrainConfig(TrainConfig):
    """Detection training (``python -m detector.train``). Unset schedule options take the paper's values for the
    ``model`` kind (``with_paper_schedule``)."""

    task = "detect"

    format: str = "auto"  # voc, coco, yolo (detector.data.formats), or told by what data points at
    images: str | None = None  # a single COCO JSON file's image folder (default: beside it)
    val_ratio: float | None = None  # a dataset without train/val splits: draw val as this share of its images
    split_seed: int = 0  # the draw's seed
    years: str | None = None  # with a VOCdevkit root: "2007,2012"
    keep_difficult: bool = False
    val_limit: int = 0
    val_metric: str = "voc07"  # voc07 or coco (AP@[.5:.95]): what best.pt, the plateau schedule and --patience follow
    patience: int = 0  # stop after this many evaluations without a better value (0: never)
    tensorboard: bool = False  # also log to OUT/tb/ (torch.utils.tensorboard)
    hflip: float = 0.5
    augment: str | None = None  # a detection preset of detector.data.augment instead of the plain --hflip
    model: str = "faster_rcnn"
    backbone: str = "vgg16"
    init: str | None = None  # a trained detector checkpoint to fine-tune from (other classes too)
    freeze: str | None = None  # none, trunk, trunk+rpn (unset: none, or the resumed checkpoint's)
    min_size: tuple[int, ...] | None = None
    max_size: int | None = None
    anchor_sizes: tuple[float, ...] | tuple[str] | None = None  # ("auto",): fitted to the training boxes
    aspect_ratios: tuple[float, ...] | tuple[str] | None = None  # ("auto",): fitted too
    pooler: str | None = None
    norm: str | None = None  # the ResNets' normalisation (unset: frozen_bn with ImageNet weights, gn from scratch)
    box_head: str | None = None  # trunk (res5 / fc6-fc7) or mlp (torchvision's TwoMLPHead); unset: trunk, or mlp
    # from scratch
    set: tuple[str, ...] = ()  # KEY=VALUE model settings (DictConfig.set_option), stored in the model's config
    proposal_mode: str | None = None
    max_proposals: int | None = None
    proposal_cache: str | None = None
    lr_scaling: str = "linear"
    lr_base_batch: int = 0
    save_every_iters: int = 0
    log_image_ids: bool = False

    def with_paper_schedule(self) -> DetectionTrainConfig:
        """A copy with ``epochs``, ``batch_size`` and ``step_size`` set from PAPER_SCHEDULES where they are None."""
        unset = {k: v for k, v in PAPER_SCHEDULES[self.model].items() if getattr(self, k) is None}
        return replace(self, **unset)


@dataclass
class ClassificationTrainConfig(TrainConfig):
    """Classification training (``python -m detector.train --task classify``): AlexNet's recipe, shortened."""

    task = "classify"

    train_split: str = "train"
    val_split: str = "val"
    val_ratio: float | None = None  # no split folders: hold out this fraction of each class (a fixed draw)
    augment: str = "basic"
    model: str = "resnet18"
    input_size: int = 224
    activation: str = "relu"
    init: str | None = None  # weight initialisation scheme
    hidden_sizes: tuple[int, ...] = (512, 256)
    dropout: float = 0.5
    batch_norm: bool = False
    channels: tuple[int, ...] = (16, 32, 64, 128)
    freeze: str = "none"
    unfreeze: int | None = None
    lr_mult: float = 0.1
    epochs: int = 30
    batch_size: int = 32
    lr: Any = 0.01
    step_size: float = 10
    plateau_patience: int = 2
    find_lr: bool = False
    find_lr_steps: int = 200
    out: str = "runs/classifier"
    tta: str = "none"
    checkpoint_every: int = 10
