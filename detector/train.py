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
``detector.distributed`` and the README's "Distributed training".
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from detector import distributed as ddp
from detector.core import checkpoint
from detector.core.devices import device_from_name
from detector.core.rng import rng_state, seed_everything, set_rng_state
from detector.data.sampler import aspect_ratio_groups
from detector.data.transforms import AugmentedDataset, collate, detection_transform, keep_numpy
from detector.data.voc import VOCDetection
from detector.engine import NonFiniteLossError, non_finite_exit, stoppable, train_steps
from detector.models.backbones import BACKBONES
from detector.models.factory import (
    DETECTOR_KINDS,
    EXTERNAL_PROPOSAL_KINDS,
    DetectorConfig,
    build_detector,
    config_from_dict,
    default_config,
)
from detector.optim import OPTIMIZERS, SCHEDULES, LRSchedule, OptimConfig, build_optimizer
from detector.plots import plot_training_curves


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m detector.train", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--task",
        choices=("detect", "classify"),
        default="detect",
        help="what to train; '--task classify --help' lists the classification options (classify: single process only, not under torchrun)",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help="VOC-format root (or a VOCdevkit folder)")
    d.add_argument("--train-split", default="trainval", help="ImageSets/Main split(s) to train on; '+' joins several")
    d.add_argument("--val-split", default="test", help="split for validation mAP ('none' to skip)")
    d.add_argument("--years", default=None, help="with a VOCdevkit root: comma-separated years, e.g. 2007,2012")
    d.add_argument(
        "--keep-difficult", action="store_true", help="train on boxes marked difficult too (the papers leave them out)"
    )
    d.add_argument("--val-limit", type=int, default=0, help="evaluate on the first N validation images only (0 = all)")
    d.add_argument("--hflip", type=float, default=0.5, help="horizontal-flip probability")
    d.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=DETECTOR_KINDS,
        default="faster_rcnn",
        help="faster_rcnn (RPN proposals), fast_rcnn or rcnn (selective-search proposals)",
    )
    m.add_argument("--backbone", choices=BACKBONES, default="vgg16")
    m.add_argument(
        "--pretrained",
        default="auto",
        help="PATH, 'imagenet', 'none', or 'auto' (imagenet except for the tiny backbone)",
    )
    m.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="start from a trained detector checkpoint's weights (same classes and architecture; input sizes may "
        "differ) with a fresh optimizer and schedule: fine-tuning, unlike --resume",
    )
    m.add_argument("--weights-dir", default="weights", help="where 'imagenet' weights are looked up")
    m.add_argument(
        "--min-size",
        type=int,
        nargs="+",
        default=None,
        help="shorter side(s) in training (one picked per batch); default: 600, or 288 for tiny",
    )
    m.add_argument("--max-size", type=int, default=None, help="cap on the longer side; default: 1000, or 480 for tiny")
    m.add_argument(
        "--anchor-sizes", type=float, nargs="+", default=None, help="anchor sizes in pixels; default: 128 256 512"
    )
    m.add_argument(
        "--pooler",
        choices=("roi_pool", "roi_align"),
        default=None,
        help="RoI pooling (faster_rcnn, fast_rcnn); default: roi_pool, or roi_align for tiny",
    )
    sp = p.add_argument_group("selective-search proposals (fast_rcnn, rcnn)")
    sp.add_argument(
        "--proposal-mode", choices=("fast", "quality"), default=None, help="selective search mode; default: fast"
    )
    sp.add_argument(
        "--max-proposals",
        type=int,
        default=None,
        help="proposals per image (the top of selective search's ranking); default: 2000",
    )
    sp.add_argument(
        "--proposal-cache",
        default=None,
        metavar="DIR",
        help="where the proposals are cached; default: DATA/proposals/<settings>/",
    )
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=None, help="default: 14 (faster_rcnn), 16 (fast_rcnn, rcnn)")
    o.add_argument("--iters", type=int, default=0, help="stop after this many iterations in total (0 = run all epochs)")
    o.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per batch (aspect-ratio grouped), per process under torchrun; default: 1 (faster_rcnn), 2 (fast_rcnn, rcnn)",
    )
    o.add_argument("--optimizer", choices=OPTIMIZERS, default="momentum")
    o.add_argument("--lr", type=float, default=0.001, help="learning rate for --lr-base-batch images per step")
    o.add_argument(
        "--lr-scaling",
        choices=("linear", "none"),
        default="linear",
        help="'linear': the lr used is --lr x global batch / --lr-base-batch (global batch = --batch-size x processes); "
        "'none': --lr as given",
    )
    o.add_argument(
        "--lr-base-batch",
        type=int,
        default=0,
        help="batch size --lr was tuned for (0 = --batch-size: a single process uses --lr unchanged)",
    )
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--weight-decay", type=float, default=5e-4)
    o.add_argument("--schedule", choices=SCHEDULES, default="step")
    o.add_argument(
        "--step-size",
        type=float,
        default=None,
        help="epochs between decays ('step'); default: 10 (faster_rcnn), 12 (fast_rcnn, rcnn)",
    )
    o.add_argument("--milestones", type=float, nargs="+", default=(), help="epochs of each decay ('multistep')")
    o.add_argument("--gamma", type=float, default=0.1, help="decay factor")
    o.add_argument("--warmup-iters", type=int, default=0, help="linear warm-up iterations")
    o.add_argument("--clip-grad", type=float, default=None, help="clip the gradient norm to this value")
    o.add_argument("--amp", action="store_true", help="mixed precision (fp16 autocast + gradient scaling; CUDA only)")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="runs/detector", help="output folder")
    r.add_argument("--resume", default=None, help="a last.pt to continue from, or 'auto' for OUT/last.pt")
    r.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (and after the last)")
    r.add_argument("--checkpoint-every", type=int, default=5, help="keep epoch_N.pt every N epochs (0 = never)")
    r.add_argument(
        "--save-every-iters", type=int, default=0, help="also refresh last.pt every N iterations (0 = epoch ends only)"
    )
    r.add_argument("--log-every", type=int, default=10, help="write a step record to metrics.jsonl every N iterations")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    r.add_argument(
        "--log-image-ids",
        action="store_true",
        help="record in each epoch record of metrics.jsonl the image ids every process trained on",
    )
    return p


def resolve_device(name: str) -> torch.device:
    try:
        return device_from_name(name)
    except ValueError as exc:
        raise SystemExit(f"error: --device {exc}") from None


# The papers' schedules per model kind (epochs, images per batch, epochs between lr decays), used for the options
# left unset.
PAPER_SCHEDULES = {
    "faster_rcnn": {"epochs": 14, "batch_size": 1, "step_size": 10},
    "fast_rcnn": {"epochs": 16, "batch_size": 2, "step_size": 12},
    "rcnn": {"epochs": 16, "batch_size": 2, "step_size": 12},
}


def apply_schedule_defaults(args: argparse.Namespace) -> None:
    for name, value in PAPER_SCHEDULES[args.model].items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def model_config_from_args(args: argparse.Namespace, num_classes: int) -> DetectorConfig:
    cfg = default_config(args.model, args.backbone, num_classes)
    ignored = []
    for flag, value, attribute in (
        ("--min-size", args.min_size, "min_size"),
        ("--max-size", args.max_size, "max_size"),
    ):
        if value and hasattr(cfg, attribute):
            setattr(cfg, attribute, tuple(value) if isinstance(value, list) else value)
        elif value:
            ignored.append(flag)
    if args.anchor_sizes and hasattr(cfg, "rpn"):
        cfg.rpn.anchor_sizes = tuple(args.anchor_sizes)
    elif args.anchor_sizes:
        ignored.append("--anchor-sizes")
    if args.pooler and args.model != "rcnn":
        cfg.roi_heads.pooler = args.pooler
    elif args.pooler:
        ignored.append("--pooler")
    if hasattr(cfg, "proposals"):
        if args.proposal_mode:
            cfg.proposals = {**cfg.proposals, "mode": args.proposal_mode}
        if args.max_proposals:
            cfg.proposals = {**cfg.proposals, "max_proposals": args.max_proposals}
            cfg.max_proposals = args.max_proposals
    elif args.proposal_mode or args.max_proposals:
        ignored.append("--proposal-mode/--max-proposals")
    if ignored:
        print(f"warning: {', '.join(ignored)} mean(s) nothing for --model {args.model}; ignored", file=sys.stderr)
    return cfg


def init_from_checkpoint(model: torch.nn.Module, path: Path, classes: list[str], say=print) -> None:
    """Copy a trained detector's weights into ``model`` (--init). The classes and every weight's shape must match;
    settings that own no weights (input sizes, proposal counts, thresholds) come from the command line."""
    init = checkpoint.load(path)
    if list(init["class_names"]) != list(classes):
        raise SystemExit(
            f"error: --init {path} was trained on classes {init['class_names']}, this dataset has {list(classes)}"
        )
    own = model.state_dict()
    mismatched = [k for k, v in init["model"].items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = sorted(set(own) - set(init["model"]))
    unexpected = sorted(set(init["model"]) - set(own))
    if mismatched or missing or unexpected:
        raise SystemExit(
            f"error: --init {path} does not fit this model (backbone/anchors/head must match): "
            f"shape mismatch {mismatched[:5]}, missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in init["model"].items()})
    say(f"initialised from {path}")


def _splits(s: str) -> str | tuple[str, ...]:
    parts = tuple(x for x in s.split("+") if x)
    return parts[0] if len(parts) == 1 else parts


class _StopFlag:
    """SIGINT/SIGTERM ask training to stop between two steps, so last.pt is always a consistent state.

    In a distributed job ``requested`` is agreed between the ranks (true everywhere once one rank got the
    signal; an all-reduce per read), so all stop after the same step: a rank that stopped alone would leave the
    others blocked in the gradient all-reduce. Every rank reads it at the same points of the loop.
    """

    def __init__(self, ctx: ddp.Context | None = None):
        self.signalled = False
        self.ctx = ctx or ddp.Context()
        self._previous = {}

    @property
    def requested(self) -> bool:
        return ddp.any_rank(self.ctx, self.signalled)

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signalled:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signalled = True
        if self.ctx.is_main:
            print(
                "\nstopping after this step; last.pt will hold the position (press Ctrl-C again to abort)",
                file=sys.stderr,
            )

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train_detector(args: argparse.Namespace) -> dict:
    ctx = ddp.setup(resolve_device(args.device))
    try:
        return _train_detector(args, ctx)
    finally:
        ddp.teardown(ctx)


def _train_detector(args: argparse.Namespace, ctx: ddp.Context) -> dict:
    device = ctx.device
    say = print if ctx.is_main else (lambda *a, **k: None)  # rank 0 speaks for the job
    out = Path(args.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    years = args.years.split(",") if args.years else None
    train_base = VOCDetection(
        args.data, _splits(args.train_split), keep_difficult=args.keep_difficult, years=years, transforms=keep_numpy
    )
    classes = train_base.classes
    val_set = None
    if args.val_split != "none":
        val_set = VOCDetection(args.data, _splits(args.val_split), classes=classes, keep_difficult=True, years=years)
        if args.val_limit:
            val_set = val_set.first(args.val_limit)

    resume_path = None
    if args.resume:
        resume_path = out / "last.pt" if args.resume == "auto" else Path(args.resume)
    ckpt = checkpoint.load(resume_path) if resume_path else None
    if ckpt is not None:
        if list(ckpt["class_names"]) != list(classes):
            raise SystemExit(
                f"error: {resume_path} was trained on classes {ckpt['class_names']}, this dataset has {list(classes)}"
            )
        if ckpt["kind"] != args.model:
            raise SystemExit(
                f"error: {resume_path} holds a {ckpt['kind']} model; resume it with --model {ckpt['kind']}"
            )
        model_cfg = config_from_dict(ckpt["kind"], ckpt["model_config"])
        pretrained = None  # the checkpoint has every weight
    else:
        model_cfg = model_config_from_args(args, len(classes))
        pretrained = args.pretrained
        if pretrained == "auto":
            pretrained = "none" if args.backbone == "tiny" else "imagenet"
    if args.init and ckpt is None:
        pretrained = None  # every weight comes from the --init checkpoint
    if args.model in EXTERNAL_PROPOSAL_KINDS:
        from detector.data.with_proposals import with_cached_proposals

        # Computed once per dataset and settings, then read from disk (a no-op for a complete cache). Under torchrun
        # rank 0 fills the cache while the others wait, then they only read it.
        for rank_turn in ("main", "others"):
            if ctx.is_main == (rank_turn == "main"):
                progress = ctx.is_main and not args.no_progress
                options = {
                    "cache_dir": args.proposal_cache,
                    "workers": args.workers,
                    "progress": progress,
                    "quiet": not ctx.is_main,
                }
                train_base = with_cached_proposals(train_base, model_cfg, **options)
                if val_set is not None:
                    val_set = with_cached_proposals(val_set, model_cfg, **options)
            ddp.barrier(ctx)
    seed_everything(args.seed)
    model = build_detector(args.model, model_cfg, pretrained=pretrained, weights_dir=args.weights_dir).to(device)
    if args.init and ckpt is None:
        init_from_checkpoint(model, Path(args.init), classes, say=say)
    ddp.seed_rank(args.seed, ctx.rank)
    train_model = ddp.wrap(ctx, model)  # what steps; `model` (unwrapped) is what is saved and evaluated

    train_set = AugmentedDataset(train_base, detection_transform(True, hflip=args.hflip), seed=args.seed)
    groups = aspect_ratio_groups([train_base.image_size(i) for i in range(len(train_base))])
    sampler = ddp.batch_sampler(ctx, groups, args.batch_size, seed=args.seed)
    iters_per_epoch = len(sampler)
    total_iters = args.iters or args.epochs * iters_per_epoch
    global_batch = args.batch_size * ctx.world
    lr = ddp.effective_lr(
        args.lr, global_batch=global_batch, base_batch=args.lr_base_batch or args.batch_size, rule=args.lr_scaling
    )
    optim_cfg = OptimConfig(
        optimizer=args.optimizer,
        lr=lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        step_size=max(1, round(args.step_size * iters_per_epoch)),
        milestones=tuple(round(m * iters_per_epoch) for m in args.milestones),
        gamma=args.gamma,
        warmup_iters=args.warmup_iters,
        total_iters=total_iters,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, optim_cfg)
    schedule = LRSchedule(optimizer, optim_cfg)
    amp = bool(args.amp and device.type == "cuda")
    if args.amp and not amp and ctx.is_main:
        print("warning: --amp needs CUDA; training in fp32 on the CPU", file=sys.stderr)
    scaler = torch.amp.GradScaler("cuda") if amp else None

    epoch, step_in_epoch, iteration, best_map = 0, 0, 0, -1.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        epoch, step_in_epoch, iteration = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["iteration"]
        best_map = ckpt.get("best_map", -1.0)
        # Each rank continues its own random stream when the checkpoint has one per rank for this world size
        # (then a resumed job draws what an uninterrupted one would); otherwise rank 0 takes the saved stream
        # (exact for a single process, as before) and the other ranks a fresh one.
        rng_ranks = ckpt.get("rng_ranks") or []
        if len(rng_ranks) == ctx.world:
            set_rng_state(rng_ranks[ctx.rank])
        elif ctx.is_main:
            set_rng_state(ckpt["rng"])
        else:
            ddp.seed_rank(args.seed * 7919 + iteration, ctx.rank)
        say(f"resumed from {resume_path}: epoch {epoch + 1}, iteration {iteration}")
        before = ckpt.get("train_config") or {}
        saved_batch = before.get("global_batch_size", before.get("batch_size", global_batch))
        if saved_batch != global_batch and ctx.is_main:
            print(
                f"warning: {resume_path} was trained with a global batch of {saved_batch} images, this run uses {global_batch} "
                "(--batch-size x processes): the position in the epoch is counted in the new batches, so part of this "
                "epoch's images may be skipped or repeated, and the lr follows the new global batch",
                file=sys.stderr,
            )
        del ckpt

    train_config = {k: v for k, v in vars(args).items()}
    train_config.update(
        iters_per_epoch=iters_per_epoch, world_size=ctx.world, global_batch_size=global_batch, effective_lr=lr
    )
    metrics_file = open(out / "metrics.jsonl", "a") if ctx.is_main else None
    last_eval: dict = {}
    epoch_ids: list[str] = []

    def log(record: dict) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()

    def save(path: Path, *, resumable: bool = True, metrics: dict | None = None) -> None:
        # Called by every rank at the same point: the random states of all ranks are gathered for exact resume.
        rng_ranks = ddp.all_gather_state(ctx, rng_state()) if resumable and ctx.distributed else None
        if not ctx.is_main:
            return
        payload = checkpoint.model_payload(
            model,
            kind=args.model,
            config=model_cfg.to_dict(),
            class_names=classes,
            train_config=train_config,
            metrics=metrics or last_eval,
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
                    best_map=best_map,
                )
            )
            if rng_ranks is not None:
                payload["rng_ranks"] = rng_ranks
        checkpoint.save(path, payload)

    say(
        f"training {args.model}/{model_cfg.backbone} on {len(train_base)} images of {len(classes)} classes, {iters_per_epoch} iterations per epoch, device {device}"
    )
    if ctx.distributed:
        say(
            f"distributed: {ctx.world} processes ({torch.distributed.get_backend()}), global batch {global_batch} images, lr {lr:g} (--lr {args.lr:g}, --lr-scaling {args.lr_scaling})"
        )
    stop = _StopFlag(ctx)
    with stop:
        while epoch < args.epochs and iteration < total_iters and not stop.requested:
            sampler.set_epoch(epoch, start_batch=step_in_epoch)
            train_set.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(
                train_set,
                batch_sampler=sampler,
                num_workers=args.workers,
                collate_fn=collate,
                pin_memory=device.type == "cuda",
                # An own generator for worker seeds: drawing them from the global RNG would make a resumed run's
                # RPN/RoI sampling differ from an uninterrupted one.
                generator=torch.Generator().manual_seed(args.seed + epoch),
            )
            remaining = min(len(sampler), total_iters - iteration)
            sums: dict[str, float] = {}
            count = 0
            t0 = time.perf_counter()
            images_seen = 0
            bar = tqdm(
                total=iters_per_epoch,
                initial=step_in_epoch,
                desc=f"epoch {epoch + 1}/{args.epochs}",
                disable=args.no_progress or not ctx.is_main,
                unit="it",
                dynamic_ncols=True,
            )

            def on_step(values: dict) -> None:
                nonlocal iteration, step_in_epoch, count, images_seen
                iteration += 1
                step_in_epoch += 1
                count += 1
                images_seen += values["images"] * ctx.world  # img/s of the whole job
                if args.log_image_ids:
                    epoch_ids.extend(values["image_ids"])
                for k, v in values.items():
                    if k.startswith("loss"):
                        sums[k] = sums.get(k, 0.0) + v
                speed = images_seen / (time.perf_counter() - t0)
                bar.set_postfix(
                    {
                        "loss": f"{sums['loss'] / count:.3f}",
                        **{k.replace("loss_", ""): f"{v:.3f}" for k, v in values.items() if k.startswith("loss_")},
                        "img/s": f"{speed:.1f}",
                        "lr": f"{values['lr']:.2g}",
                    },
                    refresh=False,
                )
                bar.update(1)
                if iteration % args.log_every == 0:
                    log(
                        {
                            "type": "step",
                            "epoch": epoch + 1,
                            "iteration": iteration,
                            **{k: v for k, v in values.items() if k not in ("images", "image_ids")},
                            "images_per_s": speed,
                        }
                    )
                if args.save_every_iters and iteration % args.save_every_iters == 0:
                    save(out / "last.pt")

            try:
                batches = stoppable(loader, remaining, stop)
                train_steps(train_model, optimizer, schedule, batches, device=device, scaler=scaler, amp=amp, max_grad_norm=args.clip_grad, on_step=on_step,
                            any_rank=lambda flag: ddp.any_rank(ctx, flag))  # fmt: skip
            except NonFiniteLossError as exc:
                bar.close()
                if metrics_file is not None:
                    metrics_file.close()
                raise non_finite_exit(
                    exc, epoch=epoch + 1, iteration=iteration + 1, last_checkpoint=out / "last.pt"
                ) from None
            bar.close()
            if step_in_epoch < iters_per_epoch:  # stopped mid-epoch (--iters or a signal): keep the position
                save(out / "last.pt")
                break
            epoch, step_in_epoch = epoch + 1, 0
            # Losses in the record are rank 0's (its share of each global batch).
            record = {
                "type": "epoch",
                "epoch": epoch,
                "iteration": iteration,
                **{k: v / max(count, 1) for k, v in sums.items()},
                "lr": schedule.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
            }
            if args.log_image_ids:
                record["image_ids_by_rank"] = ddp.all_gather_object(ctx, epoch_ids)
                epoch_ids = []
            if val_set is not None and (
                epoch % args.eval_every == 0 or epoch == args.epochs or iteration >= total_iters
            ):
                result, sec = ddp.evaluate(
                    ctx,
                    model,
                    val_set,
                    device=device,
                    workers=min(args.workers, 2),
                    amp=amp,
                    progress=not args.no_progress,
                )
                last_eval = {
                    "split": args.val_split,
                    "metric": result.metric,
                    "map": result.map,
                    "ap": result.ap,
                    "epoch": epoch,
                    "seconds_per_image": sec,
                }
                record.update(map=result.map, eval_seconds_per_image=sec)
                say(
                    f"epoch {epoch}: validation mAP ({result.metric}) = {result.map:.4f}"
                    if result.map is not None
                    else f"epoch {epoch}: no positives in validation split"
                )
                schedule.observe(result.map or 0.0)
                if result.map is not None and result.map > best_map:
                    best_map = result.map
                    save(out / "best.pt", resumable=False)
            log(record)
            save(out / "last.pt")
            if args.checkpoint_every and epoch % args.checkpoint_every == 0:
                save(out / f"epoch_{epoch}.pt", resumable=False)
    results = {
        "epoch": epoch,
        "iteration": iteration,
        "best_map": best_map if best_map >= 0 else None,
        "last_eval": last_eval,
        "out": str(out),
    }
    if not ctx.is_main:
        return results
    metrics_file.close()
    try:
        plot_training_curves(out / "metrics.jsonl", out / "training_curves.png")
    except Exception as exc:  # a plot must never lose a finished training run
        print(f"warning: could not draw training curves: {exc}", file=sys.stderr)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _task(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return "detect"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _task(argv) == "classify":  # its own parser: the detection options mean nothing there
        from detector.classify.train import main as classify_main

        ddp.refuse("classify")
        return classify_main(argv)
    args = build_parser().parse_args(argv)
    apply_schedule_defaults(args)
    train_detector(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
