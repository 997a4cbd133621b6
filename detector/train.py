"""Train a detector on PASCAL VOC or any VOC-format dataset (an image classifier with --task classify).

    python -m detector.train --data ROOT --model faster_rcnn --backbone vgg16 --out runs/vgg16
    python -m detector.train --data ROOT --model fast_rcnn --backbone vgg16 --out runs/fast-vgg16
    python -m detector.train --task classify --help

Defaults are the papers' VGG16 recipes: shorter side 600, longer at most 1000, horizontal flip, momentum SGD
lr 0.001, momentum 0.9, weight decay 5e-4, and the lr divided by 10 after 10 of 14 epochs at 1 image per batch
for Faster R-CNN (the reference implementations' 50k of 70k iterations on VOC2007 trainval), after 12 of 16
epochs at 2 images per batch for Fast R-CNN (its 30k of 40k iterations) and, with the same schedule, for
R-CNN's fine-tuning. Fast R-CNN and R-CNN read selective-search proposals from the cache of
``python -m detector.proposals``, computing whatever is missing first. Writes into --out:
``last.pt`` (resumable), ``best.pt`` (best validation mAP), ``epoch_N.pt`` (periodic), ``metrics.jsonl``,
``training_curves.png`` and ``results.json``.

Under ``torchrun --nproc_per_node=N -m detector.train ...`` it trains with DistributedDataParallel: --batch-size
is per process, the lr is scaled with the global batch (--lr-scaling), and only rank 0 writes; see
``detector.training.distributed`` and the README's "Distributed training".

This module only parses the command line into a ``DetectionTrainConfig`` or ``ClassificationTrainConfig`` and
calls ``detector.training``; the options' defaults are those configs' defaults.
"""

from __future__ import annotations

import argparse
import sys

from detector.classify.init import ACTIVATIONS, INIT_SCHEMES
from detector.classify.models import CLASSIFIERS
from detector.cli import task_of
from detector.data.augment import PRESETS
from detector.data.formats import FORMATS
from detector.inference.tta import TTA_MODES
from detector.models.backbones import BACKBONES, BOX_HEADS, NORMS
from detector.models.factory import DETECTOR_KINDS
from detector.models.fpn import FPN_BACKBONES
from detector.training import ClassificationTrainConfig, DetectionTrainConfig, train_classifier, train_detector
from detector.training.classification import FIND_LR_END, FIND_LR_START
from detector.training.detection import FREEZE
from detector.training.optim import OPTIMIZERS, SCHEDULES

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter
CLASSIFY_DESCRIPTION = """Train an image classifier on class folders.

    python -m detector.train --task classify --data ROOT --model resnet50 --pretrained imagenet --lr 0.01

Data: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (--train-split, --val-split), or one folder of class
folders split by --val-ratio. ``python -m detector.data.synth --out VOC --classification ROOT`` writes such a
dataset. Defaults: momentum SGD, lr 0.01, momentum 0.9, weight decay 5e-4, 30 epochs with the lr divided by 10
every 10 epochs (AlexNet's recipe, shortened); --schedule plateau divides it by 10 when validation top-1 stops
improving. --lr auto runs the learning-rate range test first and trains with its suggestion; --find-lr runs only
the test. Writes into --out: last.pt (resumable), best.pt (best validation top-1), epoch_N.pt (periodic),
metrics.jsonl, training_curves.png, confusion_matrix.png, results.json, and lr_finder.png with the range test.
"""
_TUPLES = ("set", "min_size", "anchor_sizes", "milestones", "hidden_sizes", "channels")


def _lr(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None
    if lr <= 0:
        raise argparse.ArgumentTypeError(f"the learning rate must be positive, got {value}")
    return lr


def _optimisation(p: argparse.ArgumentParser, d: dict, *, epochs: str, batch: str, step: str, lr: str, lr_type=float):
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=d["epochs"], help=epochs)
    o.add_argument(
        "--iters", type=int, default=d["iters"], help="stop after this many iterations in total (0 = run all epochs)"
    )
    o.add_argument("--batch-size", type=int, default=d["batch_size"], help=batch)
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=d["optimizer"], help="'momentum' is SGD with momentum")
    o.add_argument("--lr", type=lr_type, default=d["lr"], help=lr)
    o.add_argument("--momentum", type=float, default=d["momentum"], help="momentum of momentum, nesterov and rmsprop")
    o.add_argument("--weight-decay", type=float, default=d["weight_decay"], help="L2 penalty (decoupled for adamw)")
    o.add_argument("--schedule", choices=SCHEDULES, default=d["schedule"])
    o.add_argument("--step-size", type=float, default=d["step_size"], help=step)
    o.add_argument(
        "--milestones", type=float, nargs="+", default=d["milestones"], help="epochs of each decay ('multistep')"
    )
    o.add_argument("--gamma", type=float, default=d["gamma"], help="decay factor")
    o.add_argument("--warmup-iters", type=int, default=d["warmup_iters"], help="linear warm-up iterations")
    o.add_argument("--clip-grad", type=float, default=d["clip_grad"], help="clip the gradient norm to this value")
    o.add_argument("--amp", action="store_true", help="mixed precision (fp16 autocast + gradient scaling; CUDA only)")
    return o


def _run(p: argparse.ArgumentParser, d: dict):
    r = p.add_argument_group("run")
    r.add_argument("--device", default=d["device"], help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    r.add_argument("--seed", type=int, default=d["seed"], help="seeds the initialisation, batch order and augmentation")
    r.add_argument("--out", default=d["out"], help="output folder")
    r.add_argument("--resume", default=d["resume"], help="a last.pt to continue from, or 'auto' for OUT/last.pt")
    r.add_argument(
        "--eval-every", type=int, default=d["eval_every"], help="validate every N epochs (and after the last)"
    )
    r.add_argument(
        "--checkpoint-every", type=int, default=d["checkpoint_every"], help="keep epoch_N.pt every N epochs (0 = never)"
    )
    r.add_argument(
        "--log-every", type=int, default=d["log_every"], help="write a step record to metrics.jsonl every N iterations"
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return r


def _detection_model(p: argparse.ArgumentParser, d: dict) -> None:
    """The model and selective-search options of detection training."""
    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=DETECTOR_KINDS,
        default=d["model"],
        help="faster_rcnn (RPN proposals), fast_rcnn or rcnn (selective-search proposals)",
    )
    m.add_argument(
        "--backbone", choices=BACKBONES + FPN_BACKBONES, default=d["backbone"],
        help="the papers' single-map trunks, or a feature pyramid (faster_rcnn; start it from a COCO detector)",
    )  # fmt: skip
    m.add_argument(
        "--pretrained",
        default=d["pretrained"],
        help="PATH (ImageNet state dict, or a detector checkpoint: then as --init), a COCO detector fetched by "
        "python -m detector.weights fetch (e.g. coco-frcnn-r50-fpn-v2), 'imagenet', 'none', or 'auto' (imagenet "
        "except for the tiny backbone)",
    )
    m.add_argument(
        "--init", default=d["init"], metavar="CKPT",
        help="start from a trained detector checkpoint's weights with a fresh optimizer and schedule (fine-tuning, "
        "unlike --resume): same architecture, input sizes may differ; with other classes every weight that fits is "
        "kept and only the new classes' outputs are re-initialised",
    )  # fmt: skip
    m.add_argument(
        "--freeze", choices=FREEZE, default=d["freeze"],
        help="train without updating the trunk, or the trunk and the RPN (small datasets); default none",
    )  # fmt: skip
    m.add_argument("--weights-dir", default=d["weights_dir"], help="where 'imagenet' weights are looked up")
    m.add_argument(
        "--min-size",
        type=int,
        nargs="+",
        default=d["min_size"],
        help="shorter side(s) in training (one picked per batch); default: 600, or 288 for tiny",
    )
    m.add_argument(
        "--max-size", type=int, default=d["max_size"], help="cap on the longer side; default: 1000, or 480 for tiny"
    )
    m.add_argument(
        "--anchor-sizes", type=_auto_or_number, nargs="+", default=d["anchor_sizes"],
        help="anchor sizes in pixels, or 'auto': fitted to the training boxes (k-means, 1 - IoU), printed with the "
        "coverage before and after; default: 128 256 512 (16 .. 256 for tiny)",
    )  # fmt: skip
    m.add_argument(
        "--aspect-ratios", type=_auto_or_number, nargs="+", default=d["aspect_ratios"],
        help="anchor aspect ratios (height / width), or 'auto' (fitted with the sizes); default: 0.5 1 2",
    )  # fmt: skip
    m.add_argument(
        "--pooler",
        choices=("roi_pool", "roi_align"),
        default=d["pooler"],
        help="RoI pooling (faster_rcnn, fast_rcnn); default: roi_pool, or roi_align for tiny",
    )
    m.add_argument(
        "--norm", choices=NORMS, default=d["norm"],
        help="the ResNets' normalisation: frozen_bn (the papers', with ImageNet weights), bn (batch statistics) or "
        "gn (GroupNorm, from scratch); default: frozen_bn, or gn with --pretrained none",
    )  # fmt: skip
    m.add_argument(
        "--box-head", choices=BOX_HEADS, default=d["box_head"],
        help="the RoI head: trunk (VGG16's fc6/fc7, ResNet's res5 on 14x14 RoIs: the papers') or mlp (two 1024-d "
        "layers on 7x7 RoIs, torchvision's); default: trunk, or mlp with --pretrained none",
    )  # fmt: skip
    m.add_argument(
        "--set", nargs="+", default=list(d["set"]), metavar="KEY=VALUE",
        help="any other model setting, stored in the checkpoint: e.g. rpn.allowed_border=1e4 "
        "roi_heads.batch_size_per_image=512 rpn.min_size=0 (the names are the model config's, see "
        "detector/models/rpn.py and roi_heads.py)",
    )  # fmt: skip
    s = p.add_argument_group("selective-search proposals (fast_rcnn, rcnn)")
    s.add_argument(
        "--proposal-mode",
        choices=("fast", "quality"),
        default=d["proposal_mode"],
        help="selective search mode; default: fast",
    )
    s.add_argument(
        "--max-proposals",
        type=int,
        default=d["max_proposals"],
        help="proposals per image (the top of selective search's ranking); default: 2000",
    )
    s.add_argument(
        "--proposal-cache",
        default=d["proposal_cache"],
        metavar="DIR",
        help="where the proposals are cached; default: DATA/proposals/<settings>/",
    )


def detection_parser() -> argparse.ArgumentParser:
    d = DetectionTrainConfig.defaults()
    p = argparse.ArgumentParser(prog="python -m detector.train", description=__doc__, formatter_class=_FORMATTER)
    p.add_argument(
        "--task", choices=("detect", "classify"), default="detect",
        help="what to train; '--task classify --help' lists the classification options (classify: single process only)",
    )  # fmt: skip
    g = p.add_argument_group("data")
    g.add_argument(
        "--data", required=True,
        help="the dataset: a VOC folder or VOCdevkit, a folder of XML files, a COCO JSON file or folder with "
        "annotations/, a YOLO data.yaml or folder with images/ and labels/",
    )  # fmt: skip
    g.add_argument("--format", choices=FORMATS, default=d["format"], help="the dataset's format; auto: told by --data")
    g.add_argument(
        "--train-split", default=d["train_split"],
        help="split(s) to train on ('+' joins several): VOC's ImageSets/Main name, COCO's instances_SPLIT.json, "
        "YOLO's yaml key",
    )  # fmt: skip
    g.add_argument("--val-split", default=d["val_split"], help="split for validation mAP ('none' to skip)")
    g.add_argument(
        "--val-ratio", type=float, default=d["val_ratio"],
        help="a dataset without train/val splits: draw val as this share of its images, train the rest (then the "
        "splits default to train and val)",
    )  # fmt: skip
    g.add_argument("--split-seed", type=int, default=d["split_seed"], help="seed of the --val-ratio draw")
    g.add_argument("--images", default=d["images"], help="a single COCO JSON file: its image folder (default: its own)")
    g.add_argument("--years", default=d["years"], help="with a VOCdevkit root: comma-separated years, e.g. 2007,2012")
    g.add_argument(
        "--keep-difficult", action="store_true", help="train on boxes marked difficult too (the papers leave them out)"
    )
    g.add_argument(
        "--val-limit", type=int, default=d["val_limit"], help="evaluate on the first N validation images only (0 = all)"
    )
    g.add_argument(
        "--val-metric", choices=("voc07", "coco"), default=d["val_metric"],
        help="the validation metric best.pt, the plateau schedule and --patience follow: VOC07 mAP or COCO "
        "AP@[.5:.95] (pycocotools)",
    )  # fmt: skip
    g.add_argument(
        "--patience", type=int, default=d["patience"],
        help="early stopping: stop after N evaluations without a better validation value (best.pt kept); 0: never",
    )  # fmt: skip
    g.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log to OUT/tb/ (losses, lr, images/s, metrics, a few validation images with their boxes)",
    )
    g.add_argument("--hflip", type=float, default=d["hflip"], help="horizontal-flip probability")
    g.add_argument(
        "--augment", choices=PRESETS, default=d["augment"],
        help="a detection augmentation preset (python -m detector.augment --preset P draws it) instead of the "
        "papers' flip alone (--hflip); stored in the checkpoint, and a --resume without it goes on with it",
    )  # fmt: skip
    g.add_argument("--workers", type=int, default=d["workers"], help="data-loading worker processes")
    _detection_model(p, d)
    o = _optimisation(
        p, d, epochs="default: 14 (faster_rcnn), 16 (fast_rcnn, rcnn)",
        batch="images per batch (aspect-ratio grouped), per process under torchrun; default: 1 (faster_rcnn), 2 "
            "(fast_rcnn, rcnn)",
        step="epochs between decays ('step'); default: 10 (faster_rcnn), 12 (fast_rcnn, rcnn)",
        lr="learning rate for --lr-base-batch images per step",
    )  # fmt: skip
    o.add_argument(
        "--lr-scaling", choices=("linear", "none"), default=d["lr_scaling"],
        help="'linear': the lr used is --lr x global batch / --lr-base-batch (global batch = --batch-size x "
            "processes); 'none': --lr as given",
    )  # fmt: skip
    o.add_argument(
        "--lr-base-batch",
        type=int,
        default=d["lr_base_batch"],
        help="batch size --lr was tuned for (0 = --batch-size: a single process uses --lr unchanged)",
    )
    r = _run(p, d)
    r.add_argument(
        "--save-every-iters",
        type=int,
        default=d["save_every_iters"],
        help="also refresh last.pt every N iterations (0 = epoch ends only)",
    )
    r.add_argument(
        "--log-image-ids",
        action="store_true",
        help="record in each epoch record of metrics.jsonl the image ids every process trained on",
    )
    return p


def _classification_model(p: argparse.ArgumentParser, d: dict) -> None:
    """The model options of classification training."""
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=CLASSIFIERS, default=d["model"], help="classifier (detector.classify.models)")
    m.add_argument(
        "--pretrained",
        default=d["pretrained"],
        help="'imagenet' (VGG and ResNet only), 'none', a state-dict PATH, or 'auto' (= none)",
    )
    m.add_argument("--weights-dir", default=d["weights_dir"], help="where 'imagenet' weights are looked up")
    m.add_argument(
        "--input-size",
        type=int,
        default=d["input_size"],
        help="side of the square network input in pixels (32-64 suit the small networks)",
    )
    m.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default=d["activation"],
        help="hidden activation of mlp, lenet5 and convnet",
    )
    m.add_argument(
        "--init",
        choices=INIT_SCHEMES,
        default=d["init"],
        help="weight initialisation (default: the activation's own; torchvision's for VGG/ResNet)",
    )
    m.add_argument("--hidden-sizes", type=int, nargs="+", default=d["hidden_sizes"], help="hidden layer widths of mlp")
    m.add_argument("--dropout", type=float, default=d["dropout"], help="dropout of mlp and VGG's fc6/fc7")
    m.add_argument("--batch-norm", action="store_true", help="batch norm after each hidden layer of mlp")
    m.add_argument(
        "--channels",
        type=int,
        nargs="+",
        default=d["channels"],
        help="stage widths of convnet (each stage halves the input side)",
    )
    m.add_argument(
        "--freeze",
        choices=("none", "backbone"),
        default=d["freeze"],
        help="'backbone': train only the last (K-way) layer",
    )
    m.add_argument(
        "--unfreeze",
        type=int,
        default=d["unfreeze"],
        metavar="N",
        help="train the head and the last N backbone stages (overrides --freeze)",
    )
    m.add_argument(
        "--lr-mult", type=float, default=d["lr_mult"], help="with --unfreeze: the backbone stages' lr is lr * this"
    )


def classification_parser() -> argparse.ArgumentParser:
    d = ClassificationTrainConfig.defaults()
    p = argparse.ArgumentParser(
        prog="python -m detector.train --task classify", description=CLASSIFY_DESCRIPTION, formatter_class=_FORMATTER
    )
    p.add_argument("--task", choices=("detect", "classify"), default="classify", help="what to train")
    g = p.add_argument_group("data")
    g.add_argument(
        "--data", required=True, help="folder of <split>/<class>/ image folders (or of class folders, with --val-ratio)"
    )
    g.add_argument("--train-split", default=d["train_split"], help="sub-folder to train on")
    g.add_argument("--val-split", default=d["val_split"], help="sub-folder to validate on ('none' to skip)")
    g.add_argument(
        "--val-ratio",
        type=float,
        default=d["val_ratio"],
        help="no split folders: hold out this fraction of each class for validation (a fixed, seed-0 draw)",
    )
    g.add_argument(
        "--augment", choices=PRESETS, default=d["augment"], help="training augmentation preset (detector.data.augment)"
    )
    g.add_argument("--workers", type=int, default=d["workers"], help="data-loading worker processes")
    _classification_model(p, d)
    o = _optimisation(
        p, d, epochs="passes over the training images", batch="images per mini-batch", step="epochs between decays "
            "('step')",
        lr="learning rate, or 'auto': run the range test (--find-lr) and use its suggestion", lr_type=_lr,
    )  # fmt: skip
    o.add_argument(
        "--plateau-patience",
        type=int,
        default=d["plateau_patience"],
        help="epochs without a better top-1 before a 'plateau' decay",
    )
    o.add_argument(
        "--find-lr",
        action="store_true",
        help=f"only run the learning-rate range test ({FIND_LR_START:g} to {FIND_LR_END:g}), write lr_finder.png and "
        "exit",
    )
    o.add_argument("--find-lr-steps", type=int, default=d["find_lr_steps"], help="mini-batches of the range test")
    r = _run(p, d)
    r.add_argument(
        "--tta",
        choices=TTA_MODES,
        default=d["tta"],
        help="test-time augmentation of the final evaluation (views scale with --input-size)",
    )
    return p


def _config(cls, args: argparse.Namespace):
    values = {k: tuple(v) if k in _TUPLES and v is not None else v for k, v in vars(args).items() if k != "task"}
    return cls(**values)


def _auto_or_number(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if task_of(argv) == "classify":
        train_classifier(_config(ClassificationTrainConfig, classification_parser().parse_args(argv)))
    else:
        train_detector(_config(DetectionTrainConfig, detection_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
