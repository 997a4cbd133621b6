"""Classification training: an image classifier on class folders, through the one ``Trainer``.

    from detector.training import ClassificationTrainConfig, train_classifier
    train_classifier(ClassificationTrainConfig(data="data/synth-cls", model="convnet", input_size=48))

Data: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (``train_split``, ``val_split``), or one folder of class
folders split by ``val_ratio``. Defaults: momentum SGD, lr 0.01, momentum 0.9, weight decay 5e-4, 30 epochs with the
lr divided by 10 every 10 epochs (AlexNet's recipe, shortened); ``schedule="plateau"`` divides it by 10 when
validation top-1 stops improving. ``lr="auto"`` runs the learning-rate range test first and trains with its
suggestion; ``find_lr`` runs only the test. Writes into ``out``: last.pt (resumable), best.pt (best validation
top-1), epoch_N.pt (periodic), metrics.jsonl, training_curves.png, confusion_matrix.png, results.json, and
lr_finder.png with the range test.
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.classify.models import (
    ANY_SIZE_CLASSIFIERS,
    CLASSIFIER_KIND,
    build_classifier,
    freeze_backbone,
    set_train_mode,
    unfreeze_last,
)
from detector.core import checkpoint
from detector.core.devices import device_from_name
from detector.core.precision import Precision
from detector.core.rng import seed_everything
from detector.data.augment import classification_transform
from detector.data.folder import ImageFolderDataset
from detector.data.sampler import GroupedBatchSampler
from detector.data.transforms import AugmentedDataset
from detector.evaluation.classification import format_per_class
from detector.evaluation.plots import plot_confusion_matrix
from detector.inference.evaluate import evaluate_classifier
from detector.inference.predictor import ClassificationPredictor
from detector.inference.tta import tta_sizes
from detector.models.pretrained import WeightsError
from detector.training.config import ClassificationTrainConfig
from detector.training.distributed import Context, refuse
from detector.training.hooks import Checkpointer, Evaluation, MetricsLog, ProgressBar, TrainingCurves
from detector.training.lr_finder import lr_range_test
from detector.training.optim import LRSchedule, OptimConfig, build_optimizer
from detector.training.plots import plot_lr_finder
from detector.training.trainer import NonFiniteLossError, TrainData, Trainer, non_finite_exit, resume_checkpoint

FIND_LR_START, FIND_LR_END = 1e-7, 10.0
VAL_RATIO_SEED = 0  # the val_ratio split stays the same whatever the seed, so runs are compared on the same images


class ClassificationTask:
    """The classification step: cross-entropy of the logits [N, K] against the labels [N]."""

    def __init__(self, model_config: dict, classes: tuple[str, ...]):
        self.model_config, self.classes = model_config, classes

    def step(self, model: nn.Module, batch, device: torch.device) -> tuple[Tensor, dict[str, Any]]:
        images, labels = batch
        non_blocking = device.type == "cuda"
        images, labels = images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        correct = int((logits.detach().argmax(dim=1) == labels).sum())  # training-mode top-1 hits
        return loss, {"images": len(labels), "correct": correct}

    def train_mode(self, model: nn.Module) -> None:
        set_train_mode(model)  # a frozen backbone's batch norm keeps its statistics

    def epoch_record(self, sums: dict[str, float], steps: int, images: int) -> dict[str, float]:
        return {"loss": sums.get("loss", 0.0) / max(steps, 1), "train_top1": sums.get("correct", 0.0) / max(images, 1)}

    def payload(self, model: nn.Module, metrics: dict) -> dict[str, Any]:
        return checkpoint.model_payload(
            model, kind=CLASSIFIER_KIND, config=self.model_config, class_names=self.classes, metrics=metrics
        )


class _ImageOnly:
    """Adapts an image transform to ``AugmentedDataset``'s ``transform(image, target)`` call."""

    def __init__(self, transform):
        self.transform = transform

    def reseed(self, seed: int) -> None:
        self.transform.reseed(seed)

    def __call__(self, image, label):
        return self.transform(image), label


def model_config(cfg: ClassificationTrainConfig, num_classes: int) -> dict:
    """Everything ``build_classifier`` needs besides the weights, as stored in the checkpoint."""
    return {
        "name": cfg.model,
        "num_classes": num_classes,
        "input_size": [3, cfg.input_size, cfg.input_size],
        "activation": cfg.activation,
        "init": cfg.init,
        "hidden_sizes": list(cfg.hidden_sizes),
        "dropout": cfg.dropout,
        "batch_norm": cfg.batch_norm,
        "channels": list(cfg.channels),
    }


def trainable_groups(model: nn.Module, cfg: ClassificationTrainConfig, lr: float) -> list[dict]:
    """Freezes what ``freeze`` / ``unfreeze`` leave out and returns the optimizer's parameter groups."""
    if cfg.unfreeze is not None:
        return unfreeze_last(model, cfg.unfreeze, lr=lr, lr_mult=cfg.lr_mult)
    if cfg.freeze == "backbone":
        freeze_backbone(model)
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]


def _datasets(cfg: ClassificationTrainConfig) -> tuple[ImageFolderDataset, ImageFolderDataset | None]:
    folder = dict(val_ratio=cfg.val_ratio, seed=VAL_RATIO_SEED) if cfg.val_ratio is not None else {}
    train = ImageFolderDataset(cfg.data, cfg.train_split, subset="train", **folder)
    if cfg.val_split == "none":
        return train, None
    transform = classification_transform(cfg.augment, train=False, size=cfg.input_size)
    if cfg.val_ratio is not None:
        val = ImageFolderDataset(
            cfg.data, cfg.train_split, subset="val", classes=train.classes, transform=transform, **folder
        )
    else:
        val = ImageFolderDataset(cfg.data, cfg.val_split, classes=train.classes, transform=transform)
    return train, val


def _batch_sampler(n: int, batch_size: int, seed: int) -> GroupedBatchSampler:
    # One group: a shuffled batch sampler with set_epoch / start_batch for exact resuming. A last batch of one
    # image is dropped: batch norm cannot normalise a single sample in training.
    return GroupedBatchSampler([0] * n, batch_size, seed=seed, drop_last=n > batch_size and n % batch_size == 1)


def _optim_config(cfg: ClassificationTrainConfig, iters_per_epoch: int) -> OptimConfig:
    return OptimConfig(
        optimizer=cfg.optimizer,
        lr=1.0,  # the groups carry the rates
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        schedule=cfg.schedule,
        step_size=max(1, round(cfg.step_size * iters_per_epoch)),
        milestones=tuple(round(m * iters_per_epoch) for m in cfg.milestones),
        gamma=cfg.gamma,
        warmup_iters=cfg.warmup_iters,
        total_iters=cfg.iters or cfg.epochs * iters_per_epoch,
        plateau_patience=cfg.plateau_patience,
        plateau_mode="max",
    )


def find_lr(
    model: nn.Module, train_base, cfg: ClassificationTrainConfig, optim_cfg: OptimConfig, device, out: Path
) -> dict:
    """Runs the range test on a copy of ``model`` and writes lr_finder.png and lr_finder.json into ``out``."""
    transform = _ImageOnly(classification_transform(cfg.augment, train=True, size=cfg.input_size))
    data = AugmentedDataset(train_base, transform, seed=cfg.seed)
    sampler = _batch_sampler(len(train_base), cfg.batch_size, cfg.seed)

    def batches():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            data.set_epoch(epoch)
            generator = torch.Generator().manual_seed(cfg.seed + epoch)
            yield from torch.utils.data.DataLoader(
                data, batch_sampler=sampler, num_workers=cfg.workers, generator=generator
            )

    def make_optimizer(trial: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(trainable_groups(trial, cfg, 1.0), optim_cfg)

    result = lr_range_test(
        model, make_optimizer, batches(), device=device, start_lr=FIND_LR_START, end_lr=FIND_LR_END,
        steps=cfg.find_lr_steps, progress=not cfg.no_progress,
    )  # fmt: skip
    plot_lr_finder(result, out / "lr_finder.png")
    (out / "lr_finder.json").write_text(json.dumps(result.to_dict(), indent=2))
    ended = "stopped early (loss diverged)" if result.stopped_early else "swept the whole range"
    print(
        f"lr range test: {len(result.lrs)} steps from {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}, {ended}; "
        f"suggested lr {result.suggestion:.3g} ({result.method}; minimum loss at {result.min_loss_lr:.3g}); "
        f"plot: {out / 'lr_finder.png'}"
    )
    return result.to_dict()


def _predictor(cfg: ClassificationTrainConfig, model: nn.Module, device, amp: bool) -> ClassificationPredictor:
    precision = Precision("fp16", "--amp") if amp else Precision("fp32", "training")
    return ClassificationPredictor(
        model, preset=cfg.augment, input_size=cfg.input_size, name=cfg.model, device=device, precision=precision
    )


def _validation(cfg: ClassificationTrainConfig, val_set, amp: bool):
    """The evaluation hook's function: top-1 on the validation images."""
    split = cfg.val_split if cfg.val_ratio is None else f"val_ratio={cfg.val_ratio}"

    def evaluate(t: Trainer):
        predictor = _predictor(cfg, t.model, t.device, amp)
        ev = evaluate_classifier(
            predictor, val_set, batch_size=2 * cfg.batch_size, workers=min(cfg.workers, 2), progress=not cfg.no_progress
        )
        metrics = {"split": split, "epoch": t.state.epoch, **{k: ev[k] for k in ("top1", "top5", "topk", "loss")}}
        train_loss = t.state.sums.get("loss", 0.0) / max(t.state.steps, 1)
        line = (
            f"epoch {t.state.epoch}: train loss {train_loss:.4f}, val loss {ev['loss']:.4f}, "
            f"top-1 {ev['top1']:.4f}, top-{ev['topk']} {ev['top5']:.4f}"
        )
        return {"val_loss": ev["loss"], "top1": ev["top1"], "top5": ev["top5"]}, metrics, ev["top1"], line

    return evaluate


def _hooks(cfg: ClassificationTrainConfig, out: Path, val_set, amp: bool) -> list:
    """In the order they run at an epoch's end: evaluation before the log that records it, last.pt after both."""
    hooks = [ProgressBar(not cfg.no_progress)]
    if val_set is not None:
        plateau = f"validation top-1 stopped improving: lr divided by {1 / cfg.gamma:g}, now {{lr:.3g}}"
        hooks.append(Evaluation(_validation(cfg, val_set, amp), every=cfg.eval_every, on_plateau=plateau))
    return [
        *hooks,
        MetricsLog(out / "metrics.jsonl", every=cfg.log_every),
        Checkpointer(every_epochs=cfg.checkpoint_every),
        TrainingCurves(out / "metrics.jsonl", out / "training_curves.png", metric_key="top1"),
    ]


def train_classifier(cfg: ClassificationTrainConfig) -> dict:
    """Trains (or resumes) a classifier as ``cfg`` says; returns results.json's content. Raises SystemExit with a
    one-line message for a user's mistake. Single process only: under torchrun it refuses to start."""
    refuse("classify")
    try:
        device = device_from_name(cfg.device)
    except ValueError as exc:
        raise SystemExit(f"error: --device {exc}") from None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.tta == "multiscale" and cfg.model not in ANY_SIZE_CLASSIFIERS:
        raise SystemExit(
            f"error: --tta multiscale feeds images of several sizes; {cfg.model} takes only --input-size. "
            "Use --tta 10crop, or a VGG/ResNet/convnet model"
        )
    try:
        train_base, val_set = _datasets(cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    ckpt, resume_path = _resume_checkpoint(cfg, out, train_base.classes)
    model_cfg = dict(ckpt["model_config"]) if ckpt is not None else model_config(cfg, len(train_base.classes))
    pretrained = None if ckpt is not None or cfg.pretrained in ("auto", "none") else cfg.pretrained
    seed_everything(cfg.seed)
    build_args = {k: tuple(v) if isinstance(v, list) else v for k, v in model_cfg.items() if k != "name"}
    try:
        model = build_classifier(model_cfg["name"], **build_args, pretrained=pretrained, weights_dir=cfg.weights_dir)
    except (ValueError, WeightsError) as exc:
        raise SystemExit(f"error: {exc}") from None
    model.to(device)
    return _train(cfg, model, model_cfg, train_base, val_set, ckpt, resume_path, device, out)


def _resume_checkpoint(cfg: ClassificationTrainConfig, out: Path, classes) -> tuple[dict | None, Path | None]:
    ckpt, path = resume_checkpoint(cfg.resume, out)
    if ckpt is None:
        return None, None
    if ckpt.get("kind") != CLASSIFIER_KIND:
        raise SystemExit(f"error: {path} holds a {ckpt.get('kind')!r} model, not a classifier")
    if list(ckpt["class_names"]) != list(classes):
        raise SystemExit(
            f"error: {path} was trained on classes {ckpt['class_names']}, this dataset has {list(classes)}"
        )
    return ckpt, path


def _learning_rate(cfg, model, train_base, optim_cfg, ckpt, device, out) -> tuple[float | None, dict | None]:
    """(the lr to train with, the range test's result): the resumed run's, the test's suggestion, or ``cfg.lr``;
    (None, result) when only the test was asked for."""
    lr_finder = None
    if cfg.find_lr or (cfg.lr == "auto" and ckpt is None):
        try:
            trainable_groups(model, cfg, 1.0)  # the test trains what training would
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        lr_finder = find_lr(model, train_base, cfg, optim_cfg, device, out)
        if cfg.find_lr:
            return None, lr_finder
    if ckpt is not None:
        return ckpt["train_config"]["lr_used"], None
    return (lr_finder["suggestion"] if lr_finder else cfg.lr), lr_finder


def _train(cfg, model, model_cfg, train_base, val_set, ckpt, resume_path, device, out) -> dict:
    classes = train_base.classes
    transform = _ImageOnly(classification_transform(cfg.augment, train=True, size=cfg.input_size))
    train_set = AugmentedDataset(train_base, transform, seed=cfg.seed)
    sampler = _batch_sampler(len(train_base), cfg.batch_size, cfg.seed)
    optim_cfg = _optim_config(cfg, len(sampler))
    lr, lr_finder = _learning_rate(cfg, model, train_base, optim_cfg, ckpt, device, out)
    if lr is None:
        return {"lr_finder": lr_finder, "out": str(out)}
    try:
        groups = trainable_groups(model, cfg, lr)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    optim_cfg.lr = lr
    optimizer = build_optimizer(groups, optim_cfg)
    schedule = LRSchedule(optimizer, optim_cfg)
    if cfg.schedule == "plateau" and val_set is None:
        print(
            "warning: --schedule plateau watches validation top-1, and --val-split none leaves none: the lr stays "
            "constant",
            file=sys.stderr,
        )
    amp = bool(cfg.amp and device.type == "cuda")
    if cfg.amp and not amp:
        print("warning: --amp needs CUDA; training in fp32 on the CPU", file=sys.stderr)
    trainer = Trainer(
        ClassificationTask(model_cfg, classes),
        model,
        optimizer,
        schedule,
        TrainData(train_set, sampler, workers=cfg.workers),
        epochs=cfg.epochs,
        total_iters=cfg.iters or cfg.epochs * len(sampler),
        out=out,
        ctx=Context(device=device),
        seed=cfg.seed,
        amp=cfg.amp,
        max_grad_norm=cfg.clip_grad,
        train_config={**cfg.to_dict(), "iters_per_epoch": len(sampler), "lr_used": lr},
        hooks=_hooks(cfg, out, val_set, amp),
    )
    if ckpt is not None:
        trainer.restore(ckpt, legacy_best="best_top1")
        print(f"resumed from {resume_path}: epoch {trainer.state.epoch + 1}, iteration {trainer.state.iteration}")
        del ckpt
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"training {cfg.model} ({trainable:,} trainable parameters) on {len(train_base)} images of {len(classes)} "
        f"classes, {len(sampler)} iterations per epoch, lr {lr:.3g}, device {device}"
    )
    try:
        state = trainer.train()
    except NonFiniteLossError as exc:
        raise non_finite_exit(exc, trainer) from None
    final = None
    if val_set is not None and not trainer.stop.signalled and state.best_epoch is not None:
        final = final_evaluation(model, val_set, cfg, device=device, amp=amp, out=out, best_epoch=state.best_epoch)
    results = {
        "epoch": state.epoch,
        "iteration": state.iteration,
        "lr": lr,
        "best_top1": state.best_metric,
        "best_epoch": state.best_epoch,
        "last_eval": state.last_eval,
        "final_eval": final,
        "lr_finder": {k: lr_finder[k] for k in ("suggestion", "min_loss_lr", "method")} if lr_finder else None,
        "class_names": list(classes),
        "out": str(out),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def final_evaluation(
    model: nn.Module, val_set, cfg: ClassificationTrainConfig, *, device, amp: bool, out: Path, best_epoch: int
) -> dict:
    """Evaluates best.pt's weights (with ``tta``), prints the per-class table, draws confusion_matrix.png."""
    model.load_state_dict(checkpoint.load(out / "best.pt", map_location=device)["model"])
    predictor = _predictor(cfg, model, device, amp)
    dataset = val_set
    if cfg.tta != "none":
        dataset = copy.copy(val_set)  # the same images, made at the larger size the views are cut from
        dataset.transform = predictor.transforms[cfg.tta]
    ev = evaluate_classifier(
        predictor, dataset, tta=cfg.tta, batch_size=2 * cfg.batch_size, workers=min(cfg.workers, 2),
        progress=not cfg.no_progress,
    )  # fmt: skip
    ev["weights"] = f"best.pt (epoch {best_epoch})"
    if cfg.tta != "none":
        ev["tta_sizes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in tta_sizes(cfg.input_size).items()}
    print(
        f"final evaluation of best.pt (epoch {best_epoch}), tta {cfg.tta}: top-1 {ev['top1']:.4f}, top-{ev['topk']} "
        f"{ev['top5']:.4f}"
    )
    print(format_per_class(ev))
    title = f"confusion matrix (best.pt, epoch {best_epoch}, tta {cfg.tta})"
    try:
        plot_confusion_matrix(ev["confusion"], list(val_set.classes), out / "confusion_matrix.png", title=title)
    except Exception as exc:  # a plot must never lose a finished training run
        print(f"warning: could not draw the confusion matrix: {exc}", file=sys.stderr)
    return ev
