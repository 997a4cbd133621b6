"""Train an image classifier on class folders (``python -m detector.train --task classify``).

    python -m detector.train --task classify --data ROOT --model resnet50 --pretrained imagenet --optimizer momentum --lr 0.01 --schedule step

Data: ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg (--train-split, --val-split), or one folder of class folders
split by --val-ratio. ``python -m detector.data.synth --out VOC --classification ROOT`` writes such a dataset. Defaults:
momentum SGD, lr 0.01, momentum 0.9, weight decay 5e-4, 30 epochs with the lr divided by 10 every 10 epochs (AlexNet's
recipe, shortened); --schedule plateau divides it by 10 when validation top-1 stops improving, at most three times.
--lr auto runs the learning-rate range test first and trains with its suggestion; --find-lr runs only the test.
Writes into --out: last.pt (resumable), best.pt (best validation top-1), epoch_N.pt (periodic), metrics.jsonl,
training_curves.png, confusion_matrix.png, results.json, and lr_finder.png with the range test.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from detector.classify.engine import evaluate_classifier, lr_range_test, train_steps, tta_sizes, tta_source_transform
from detector.classify.init import ACTIVATIONS, INIT_SCHEMES
from detector.classify.models import (
    ANY_SIZE_CLASSIFIERS,
    CLASSIFIER_KIND,
    CLASSIFIERS,
    build_classifier,
    freeze_backbone,
    unfreeze_last,
)
from detector.classify.plots import plot_confusion_matrix, plot_lr_finder
from detector.core import checkpoint
from detector.core.rng import seed_everything, set_rng_state
from detector.data.augment import PRESETS, classification_transform
from detector.data.folder import ImageFolderDataset
from detector.data.sampler import GroupedBatchSampler
from detector.data.transforms import AugmentedDataset
from detector.engine import NonFiniteLossError, non_finite_exit, stoppable
from detector.optim import OPTIMIZERS, SCHEDULES, LRSchedule, OptimConfig, build_optimizer
from detector.plots import plot_training_curves
from detector.train import _StopFlag, resolve_device
from detector.tta import TTA_MODES
from detector.weights import WeightsError

FIND_LR_START, FIND_LR_END = 1e-7, 10.0
VAL_RATIO_SEED = 0  # the --val-ratio split stays the same whatever --seed, so runs are compared on the same images


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.train --task classify",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", choices=("detect", "classify"), default="classify", help="what to train")
    d = p.add_argument_group("data")
    d.add_argument(
        "--data", required=True, help="folder of <split>/<class>/ image folders (or of class folders, with --val-ratio)"
    )
    d.add_argument("--train-split", default="train", help="sub-folder to train on")
    d.add_argument("--val-split", default="val", help="sub-folder to validate on ('none' to skip)")
    d.add_argument(
        "--val-ratio",
        type=float,
        default=None,
        help="no split folders: hold out this fraction of each class for validation (a fixed, seed-0 draw)",
    )
    d.add_argument(
        "--augment", choices=PRESETS, default="basic", help="training augmentation preset (detector.data.augment)"
    )
    d.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=CLASSIFIERS, default="resnet18", help="classifier (detector.classify.models)")
    m.add_argument(
        "--pretrained",
        default="auto",
        help="'imagenet' (VGG and ResNet only), 'none', a state-dict PATH, or 'auto' (= none)",
    )
    m.add_argument("--weights-dir", default="weights", help="where 'imagenet' weights are looked up")
    m.add_argument(
        "--input-size",
        type=int,
        default=224,
        help="side of the square network input in pixels (32-64 suit the small networks)",
    )
    m.add_argument(
        "--activation", choices=ACTIVATIONS, default="relu", help="hidden activation of mlp, lenet5 and convnet"
    )
    m.add_argument(
        "--init",
        choices=INIT_SCHEMES,
        default=None,
        help="weight initialisation (default: the activation's own; torchvision's for VGG/ResNet)",
    )
    m.add_argument("--hidden-sizes", type=int, nargs="+", default=[512, 256], help="hidden layer widths of mlp")
    m.add_argument("--dropout", type=float, default=0.5, help="dropout of mlp and VGG's fc6/fc7")
    m.add_argument("--batch-norm", action="store_true", help="batch norm after each hidden layer of mlp")
    m.add_argument(
        "--channels",
        type=int,
        nargs="+",
        default=[16, 32, 64, 128],
        help="stage widths of convnet (each stage halves the input side)",
    )
    m.add_argument(
        "--freeze", choices=("none", "backbone"), default="none", help="'backbone': train only the last (K-way) layer"
    )
    m.add_argument(
        "--unfreeze",
        type=int,
        default=None,
        metavar="N",
        help="train the head and the last N backbone stages (overrides --freeze)",
    )
    m.add_argument("--lr-mult", type=float, default=0.1, help="with --unfreeze: the backbone stages' lr is lr * this")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=30, help="passes over the training images")
    o.add_argument("--iters", type=int, default=0, help="stop after this many iterations in total (0 = run all epochs)")
    o.add_argument("--batch-size", type=int, default=32, help="images per mini-batch")
    o.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="momentum",
        help="detector.optim name; 'momentum' is SGD with momentum",
    )
    o.add_argument(
        "--lr",
        type=_lr,
        default=0.01,
        help="learning rate, or 'auto': run the range test (--find-lr) and use its suggestion",
    )
    o.add_argument("--momentum", type=float, default=0.9, help="momentum of momentum, nesterov and rmsprop")
    o.add_argument("--weight-decay", type=float, default=5e-4, help="L2 penalty (decoupled for adamw)")
    o.add_argument(
        "--schedule", choices=SCHEDULES, default="step", help="'plateau' watches validation top-1 every epoch"
    )
    o.add_argument("--step-size", type=float, default=10, help="epochs between decays ('step')")
    o.add_argument("--milestones", type=float, nargs="+", default=(), help="epochs of each decay ('multistep')")
    o.add_argument("--gamma", type=float, default=0.1, help="decay factor")
    o.add_argument(
        "--plateau-patience", type=int, default=2, help="epochs without a better top-1 before a 'plateau' decay"
    )
    o.add_argument("--warmup-iters", type=int, default=0, help="linear warm-up iterations")
    o.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this value")
    o.add_argument("--amp", action="store_true", help="mixed precision (fp16 autocast + gradient scaling; CUDA only)")
    o.add_argument(
        "--find-lr",
        action="store_true",
        help=f"only run the learning-rate range test ({FIND_LR_START:g} to {FIND_LR_END:g}), write lr_finder.png and exit",
    )
    o.add_argument("--find-lr-steps", type=int, default=200, help="mini-batches of the range test")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    r.add_argument("--seed", type=int, default=0, help="seeds the initialisation, batch order and augmentation")
    r.add_argument("--out", default="runs/classifier", help="output folder")
    r.add_argument("--resume", default=None, help="a last.pt to continue from, or 'auto' for OUT/last.pt")
    r.add_argument(
        "--tta",
        choices=TTA_MODES,
        default="none",
        help="test-time augmentation of the final evaluation (views scale with --input-size)",
    )
    r.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (and after the last)")
    r.add_argument("--checkpoint-every", type=int, default=10, help="keep epoch_N.pt every N epochs (0 = never)")
    r.add_argument("--log-every", type=int, default=10, help="write a step record to metrics.jsonl every N iterations")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return p


class _ImageOnly:
    """Adapts an image transform to ``AugmentedDataset``'s ``transform(image, target)`` call."""

    def __init__(self, transform):
        self.transform = transform

    def reseed(self, seed: int) -> None:
        self.transform.reseed(seed)

    def __call__(self, image, label):
        return self.transform(image), label


def model_config_from_args(args: argparse.Namespace, num_classes: int) -> dict:
    """Everything ``build_classifier`` needs besides the weights, as stored in the checkpoint."""
    return {
        "name": args.model,
        "num_classes": num_classes,
        "input_size": [3, args.input_size, args.input_size],
        "activation": args.activation,
        "init": args.init,
        "hidden_sizes": list(args.hidden_sizes),
        "dropout": args.dropout,
        "batch_norm": args.batch_norm,
        "channels": list(args.channels),
    }


def trainable_groups(model: nn.Module, args: argparse.Namespace, lr: float) -> list[dict]:
    """Freezes what --freeze / --unfreeze leave out and returns the optimizer's parameter groups."""
    if args.unfreeze is not None:
        return unfreeze_last(model, args.unfreeze, lr=lr, lr_mult=args.lr_mult)
    if args.freeze == "backbone":
        freeze_backbone(model)
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]


def _datasets(args: argparse.Namespace) -> tuple[ImageFolderDataset, ImageFolderDataset | None]:
    folder = dict(val_ratio=args.val_ratio, seed=VAL_RATIO_SEED) if args.val_ratio is not None else {}
    train = ImageFolderDataset(args.data, args.train_split, subset="train", **folder)
    if args.val_split == "none":
        return train, None
    val_transform = classification_transform(args.augment, train=False, size=args.input_size)
    if args.val_ratio is not None:
        val = ImageFolderDataset(
            args.data, args.train_split, subset="val", classes=train.classes, transform=val_transform, **folder
        )
    else:
        val = ImageFolderDataset(args.data, args.val_split, classes=train.classes, transform=val_transform)
    return train, val


def _batch_sampler(n: int, batch_size: int, seed: int) -> GroupedBatchSampler:
    # One group: a shuffled batch sampler with set_epoch / start_batch for exact resuming. A last batch of one
    # image is dropped: batch norm cannot normalise a single sample in training.
    return GroupedBatchSampler([0] * n, batch_size, seed=seed, drop_last=n > batch_size and n % batch_size == 1)


def _loader(dataset, sampler, args, device, epoch: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        # Worker seeds from an own generator: drawing them from the global RNG would change a resumed run's dropout.
        generator=torch.Generator().manual_seed(args.seed + epoch),
    )


def find_lr(
    model: nn.Module, train_base, args: argparse.Namespace, optim_cfg: OptimConfig, device: torch.device, out: Path
) -> dict:
    """Runs the range test on a copy of ``model`` and writes lr_finder.png and lr_finder.json into ``out``."""
    data = AugmentedDataset(
        train_base, _ImageOnly(classification_transform(args.augment, train=True, size=args.input_size)), seed=args.seed
    )
    sampler = _batch_sampler(len(train_base), args.batch_size, args.seed)

    def batches():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            data.set_epoch(epoch)
            yield from _loader(data, sampler, args, device, epoch)

    def make_optimizer(trial: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(trainable_groups(trial, args, 1.0), optim_cfg)

    result = lr_range_test(
        model,
        make_optimizer,
        batches(),
        device=device,
        start_lr=FIND_LR_START,
        end_lr=FIND_LR_END,
        steps=args.find_lr_steps,
        progress=not args.no_progress,
    )
    plot_lr_finder(result, out / "lr_finder.png")
    (out / "lr_finder.json").write_text(json.dumps(result.to_dict(), indent=2))
    ended = "stopped early (loss diverged)" if result.stopped_early else "swept the whole range"
    print(
        f"lr range test: {len(result.lrs)} steps from {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}, {ended}; suggested lr {result.suggestion:.3g} "
        f"({result.method}; minimum loss at {result.min_loss_lr:.3g}); plot: {out / 'lr_finder.png'}"
    )
    return result.to_dict()


def format_per_class(evaluation: dict) -> str:
    rows = [("class", "images", "accuracy")]
    for name, v in evaluation["per_class"].items():
        rows.append((name, str(v["images"]), "-" if v["accuracy"] is None else f"{v['accuracy']:.3f}"))
    rows.append(("all", str(evaluation["images"]), f"{evaluation['top1']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows
    )


def train_classifier(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tta == "multiscale" and args.model not in ANY_SIZE_CLASSIFIERS:
        raise SystemExit(
            f"error: --tta multiscale feeds images of several sizes; {args.model} takes only --input-size. Use --tta 10crop, or a VGG/ResNet/convnet model"
        )
    try:
        train_base, val_set = _datasets(args)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    classes = train_base.classes

    resume_path = None
    if args.resume:
        resume_path = out / "last.pt" if args.resume == "auto" else Path(args.resume)
    try:
        ckpt = checkpoint.load(resume_path) if resume_path else None
    except checkpoint.CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    if ckpt is not None:
        if ckpt.get("kind") != CLASSIFIER_KIND:
            raise SystemExit(f"error: {resume_path} holds a {ckpt.get('kind')!r} model, not a classifier")
        if list(ckpt["class_names"]) != list(classes):
            raise SystemExit(
                f"error: {resume_path} was trained on classes {ckpt['class_names']}, this dataset has {list(classes)}"
            )
        model_cfg = dict(ckpt["model_config"])
        pretrained = None  # the checkpoint has every weight
    else:
        model_cfg = model_config_from_args(args, len(classes))
        pretrained = None if args.pretrained in ("auto", "none") else args.pretrained
    seed_everything(args.seed)
    build_args = {
        k: tuple(v) if isinstance(v, list) else v for k, v in model_cfg.items() if k != "name"
    }  # sizes are lists in the file
    try:
        model = build_classifier(model_cfg["name"], **build_args, pretrained=pretrained, weights_dir=args.weights_dir)
    except (ValueError, WeightsError) as exc:
        raise SystemExit(f"error: {exc}") from None
    model.to(device)

    train_set = AugmentedDataset(
        train_base, _ImageOnly(classification_transform(args.augment, train=True, size=args.input_size)), seed=args.seed
    )
    sampler = _batch_sampler(len(train_base), args.batch_size, args.seed)
    iters_per_epoch = len(sampler)
    total_iters = args.iters or args.epochs * iters_per_epoch
    optim_cfg = OptimConfig(
        optimizer=args.optimizer,
        lr=1.0,  # the groups carry the rates
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        step_size=max(1, round(args.step_size * iters_per_epoch)),
        milestones=tuple(round(m * iters_per_epoch) for m in args.milestones),
        gamma=args.gamma,
        warmup_iters=args.warmup_iters,
        total_iters=total_iters,
        plateau_patience=args.plateau_patience,
        plateau_mode="max",
    )
    train_config = dict(vars(args))
    train_config["iters_per_epoch"] = iters_per_epoch
    lr_finder = None
    if args.find_lr or (args.lr == "auto" and ckpt is None):
        try:
            trainable_groups(model, args, 1.0)  # the test trains what training would
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        lr_finder = find_lr(model, train_base, args, optim_cfg, device, out)
        if args.find_lr:
            return {"lr_finder": lr_finder, "out": str(out)}
    if ckpt is not None:
        lr = ckpt["train_config"]["lr_used"]
    else:
        lr = lr_finder["suggestion"] if lr_finder else args.lr
    train_config["lr_used"] = lr
    try:
        groups = trainable_groups(model, args, lr)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    optim_cfg.lr = lr
    optimizer = build_optimizer(groups, optim_cfg)
    schedule = LRSchedule(optimizer, optim_cfg)
    if args.schedule == "plateau" and val_set is None:
        print(
            "warning: --schedule plateau watches validation top-1, and --val-split none leaves none: the lr stays constant",
            file=sys.stderr,
        )
    amp = bool(args.amp and device.type == "cuda")
    if args.amp and not amp:
        print("warning: --amp needs CUDA; training in fp32 on the CPU", file=sys.stderr)
    scaler = torch.amp.GradScaler("cuda") if amp else None

    epoch, step_in_epoch, iteration, best_top1, best_epoch = 0, 0, 0, -1.0, None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        epoch, step_in_epoch, iteration = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["iteration"]
        best_top1, best_epoch = ckpt.get("best_top1", -1.0), ckpt.get("best_epoch")
        set_rng_state(ckpt["rng"])
        print(f"resumed from {resume_path}: epoch {epoch + 1}, iteration {iteration}")
        del ckpt

    metrics_file = open(out / "metrics.jsonl", "a")
    last_eval: dict = {}

    def log(record: dict) -> None:
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()

    def save(path: Path, *, resumable: bool = True) -> None:
        payload = checkpoint.model_payload(
            model,
            kind=CLASSIFIER_KIND,
            config=model_cfg,
            class_names=classes,
            train_config=train_config,
            metrics=last_eval,
        )
        if resumable:
            payload.update(
                checkpoint.training_state(
                    optimizer,
                    schedule,
                    scaler,
                    epoch=epoch,
                    step_in_epoch=step_in_epoch,
                    iteration=iteration,
                    best_top1=best_top1,
                    best_epoch=best_epoch,
                )
            )
        checkpoint.save(path, payload)

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"training {args.model} ({trainable:,} trainable parameters) on {len(train_base)} images of {len(classes)} classes, "
        f"{iters_per_epoch} iterations per epoch, lr {lr:.3g}, device {device}"
    )
    stop = _StopFlag()
    with stop:
        while epoch < args.epochs and iteration < total_iters and not stop.requested:
            sampler.set_epoch(epoch, start_batch=step_in_epoch)
            train_set.set_epoch(epoch)
            loader = _loader(train_set, sampler, args, device, epoch)
            remaining = min(len(sampler), total_iters - iteration)
            loss_sum, count, correct, images_seen = 0.0, 0, 0, 0
            t0 = time.perf_counter()
            bar = tqdm(
                total=iters_per_epoch,
                initial=step_in_epoch,
                desc=f"epoch {epoch + 1}/{args.epochs}",
                disable=args.no_progress,
                unit="it",
                dynamic_ncols=True,
            )

            def on_step(values: dict) -> None:
                nonlocal iteration, step_in_epoch, count, loss_sum, correct, images_seen
                iteration += 1
                step_in_epoch += 1
                count += 1
                loss_sum += values["loss"]
                correct += values["correct"]
                images_seen += values["images"]
                speed = images_seen / (time.perf_counter() - t0)
                bar.set_postfix(
                    {"loss": f"{loss_sum / count:.3f}", "img/s": f"{speed:.1f}", "lr": f"{values['lr']:.2g}"},
                    refresh=False,
                )
                bar.update(1)
                if iteration % args.log_every == 0:
                    log(
                        {
                            "type": "step",
                            "epoch": epoch + 1,
                            "iteration": iteration,
                            "loss": values["loss"],
                            "lr": values["lr"],
                            "images_per_s": speed,
                        }
                    )

            try:
                batches = stoppable(loader, remaining, stop)
                train_steps(
                    model,
                    optimizer,
                    schedule,
                    batches,
                    device=device,
                    scaler=scaler,
                    amp=amp,
                    max_grad_norm=args.clip_grad,
                    on_step=on_step,
                )
            except NonFiniteLossError as exc:
                bar.close()
                metrics_file.close()
                raise non_finite_exit(
                    exc, epoch=epoch + 1, iteration=iteration + 1, last_checkpoint=out / "last.pt"
                ) from None
            bar.close()
            if step_in_epoch < iters_per_epoch:  # stopped mid-epoch (--iters or a signal): keep the position
                save(out / "last.pt")
                break
            epoch, step_in_epoch = epoch + 1, 0
            record = {
                "type": "epoch", "epoch": epoch, "iteration": iteration, "loss": loss_sum / max(count, 1),
                "train_top1": correct / max(images_seen, 1), "lr": schedule.get_last_lr()[-1], "seconds": time.perf_counter() - t0,
            }  # fmt: skip
            if val_set is not None and (
                epoch % args.eval_every == 0 or epoch == args.epochs or iteration >= total_iters
            ):
                ev = evaluate_classifier(
                    model,
                    val_set,
                    device=device,
                    batch_size=2 * args.batch_size,
                    workers=min(args.workers, 2),
                    amp=amp,
                    progress=not args.no_progress,
                )
                last_eval = {
                    "split": args.val_split if args.val_ratio is None else f"val_ratio={args.val_ratio}",
                    "epoch": epoch,
                    **{k: ev[k] for k in ("top1", "top5", "topk", "loss")},
                }
                record.update(val_loss=ev["loss"], top1=ev["top1"], top5=ev["top5"])
                print(
                    f"epoch {epoch}: train loss {record['loss']:.4f}, val loss {ev['loss']:.4f}, top-1 {ev['top1']:.4f}, top-{ev['topk']} {ev['top5']:.4f}"
                )
                if schedule.observe(ev["top1"]):
                    print(
                        f"validation top-1 stopped improving: lr divided by {1 / args.gamma:g}, now {schedule.get_last_lr()[-1]:.3g}"
                    )
                if ev["top1"] > best_top1:
                    best_top1, best_epoch = ev["top1"], epoch
                    save(out / "best.pt", resumable=False)
            log(record)
            save(out / "last.pt")
            if args.checkpoint_every and epoch % args.checkpoint_every == 0:
                save(out / f"epoch_{epoch}.pt", resumable=False)
    metrics_file.close()
    try:
        plot_training_curves(out / "metrics.jsonl", out / "training_curves.png", metric_key="top1")
    except Exception as exc:  # a plot must never lose a finished training run
        print(f"warning: could not draw training curves: {exc}", file=sys.stderr)

    final = None
    if val_set is not None and not stop.requested and best_epoch is not None:
        final = final_evaluation(
            model, val_set, args, device=device, amp=amp, out=out, classes=classes, best_epoch=best_epoch
        )
    results = {
        "epoch": epoch,
        "iteration": iteration,
        "lr": lr,
        "best_top1": best_top1 if best_top1 >= 0 else None,
        "best_epoch": best_epoch,
        "last_eval": last_eval,
        "final_eval": final,
        "lr_finder": {k: lr_finder[k] for k in ("suggestion", "min_loss_lr", "method")} if lr_finder else None,
        "class_names": list(classes),
        "out": str(out),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def final_evaluation(
    model: nn.Module, val_set: ImageFolderDataset, args, *, device, amp: bool, out: Path, classes, best_epoch: int
) -> dict:
    """Evaluates best.pt's weights (with --tta), prints the per-class table, draws confusion_matrix.png."""
    model.load_state_dict(checkpoint.load(out / "best.pt", map_location=device)["model"])
    dataset = val_set
    if args.tta != "none":
        dataset = copy.copy(val_set)  # the same images, made at the larger size the views are cut from
        dataset.transform = tta_source_transform(args.augment, input_size=args.input_size)
    ev = evaluate_classifier(
        model, dataset, device=device, tta=args.tta, input_size=args.input_size, batch_size=2 * args.batch_size, workers=min(args.workers, 2), amp=amp,
        progress=not args.no_progress,
    )  # fmt: skip
    ev["weights"] = f"best.pt (epoch {best_epoch})"
    if args.tta != "none":
        ev["tta_sizes"] = {k: list(v) if isinstance(v, tuple) else v for k, v in tta_sizes(args.input_size).items()}
    print(
        f"final evaluation of best.pt (epoch {best_epoch}), tta {args.tta}: top-1 {ev['top1']:.4f}, top-{ev['topk']} {ev['top5']:.4f}"
    )
    print(format_per_class(ev))
    try:
        plot_confusion_matrix(
            ev["confusion"],
            classes,
            out / "confusion_matrix.png",
            title=f"confusion matrix (best.pt, epoch {best_epoch}, tta {args.tta})",
        )
    except Exception as exc:
        print(f"warning: could not draw the confusion matrix: {exc}", file=sys.stderr)
    return ev


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    train_classifier(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
