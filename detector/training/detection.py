"""Detection training: a detector of any kind on a VOC-format dataset, through the one ``Trainer``.

    from detector.training import DetectionTrainConfig, train_detector
    results = train_detector(DetectionTrainConfig(data="data/synth", backbone="tiny", out="runs/tiny"))

Defaults are the papers' VGG16 recipes (``DetectionTrainConfig``): shorter side 600, longer at most 1000,
horizontal flip, momentum SGD lr 0.001, momentum 0.9, weight decay 5e-4, and the paper's schedule per kind
(``PAPER_SCHEDULES``). Fast R-CNN and R-CNN read selective-search proposals from the cache of
``python -m detector.proposals``, computing whatever is missing first. Writes into ``out``: ``last.pt``
(resumable), ``best.pt`` (best validation mAP), ``epoch_N.pt`` (periodic), ``metrics.jsonl``,
``training_curves.png`` and ``results.json``.

Under ``torchrun --nproc_per_node=N`` the job trains with DistributedDataParallel: ``batch_size`` is per process,
the lr is scaled with the global batch (``lr_scaling``), and only rank 0 writes (``detector.training.distributed``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from detector.core import checkpoint
from detector.core.devices import device_from_name
from detector.core.precision import Precision
from detector.core.rng import seed_everything
from detector.data.augment import detection_transform
from detector.data.check import preflight
from detector.data.formats import open_detection
from detector.data.sampler import aspect_ratio_groups
from detector.data.stats import training_scale_boxes
from detector.data.transforms import AugmentedDataset, collate, keep_numpy
from detector.data.voc import AnnotationError
from detector.data.voc.base import AnnotatedDetection
from detector.data.with_proposals import with_cached_proposals
from detector.inference.predictor import DetectionPredictor
from detector.models.anchor_fit import anchor_coverage, fit_anchors
from detector.models.backbones import STRIDES
from detector.models.base import Detector, DetectorConfig
from detector.models.factory import build_detector, config_from_dict, default_config
from detector.models.fpn import FPN_BACKBONES
from detector.models.torchvision_import import FETCH_NAMES
from detector.training import distributed as ddp
from detector.training.config import DetectionTrainConfig
from detector.training.hooks import (
    Checkpointer,
    Evaluation,
    ImageIdLog,
    MetricsLog,
    ProgressBar,
    TensorBoard,
    TrainingCurves,
)
from detector.training.optim import LRSchedule, OptimConfig, build_optimizer
from detector.training.trainer import NonFiniteLossError, TrainData, Trainer, non_finite_exit, resume_checkpoint


class DetectionTask:
    """The detection step: the detector's named losses on a batch of (images [3, H, W], targets), summed."""

    def __init__(self, kind: str, config: DetectorConfig, classes: tuple[str, ...]):
        self.kind, self.config, self.classes = kind, config, classes

    def step(self, model: nn.Module, batch, device: torch.device) -> tuple[Tensor, dict[str, Any]]:
        images, targets = batch
        non_blocking = device.type == "cuda"
        images = [img.to(device, non_blocking=non_blocking) for img in images]
        targets = [
            {k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v for k, v in t.items()}
            for t in targets
        ]
        losses = model(images, targets)
        values = {k: float(v.detach()) for k, v in losses.items()}
        ids = [t.get("image_id") for t in targets]
        return sum(losses.values()), {**values, "images": len(images), "image_ids": ids}

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def epoch_record(self, sums: dict[str, float], steps: int, images: int) -> dict[str, float]:
        # Losses are rank 0's (its share of each global batch) under torchrun.
        return {k: v / max(steps, 1) for k, v in sums.items() if k.startswith("loss")}

    def payload(self, model: nn.Module, metrics: dict) -> dict[str, Any]:
        return checkpoint.model_payload(
            model, kind=self.kind, config=self.config.to_dict(), class_names=self.classes, metrics=metrics
        )


def _splits(s: str) -> str | tuple[str, ...]:
    parts = tuple(x for x in s.split("+") if x)
    return parts[0] if len(parts) == 1 else parts


def _datasets(cfg: DetectionTrainConfig) -> tuple[AnnotatedDetection, AnnotatedDetection | None]:
    """The training and validation sets in any format (``detector.data.formats``). With --val-ratio and the default
    splits (trainval/test, VOC's), the splits are the drawn ``train`` and ``val``."""
    years = cfg.years.split(",") if cfg.years else None
    train_split, val_split = cfg.train_split, cfg.val_split
    if cfg.val_ratio is not None:  # the drawn splits replace VOC's default names (also with --val-split none)
        train_split = "train" if train_split == "trainval" else train_split
        val_split = "val" if val_split == "test" else val_split
    common = dict(format=cfg.format, val_ratio=cfg.val_ratio, split_seed=cfg.split_seed, years=years,
                  images=cfg.images)  # fmt: skip
    train = open_detection(
        cfg.data, _splits(train_split), keep_difficult=cfg.keep_difficult, transforms=keep_numpy, **common
    )
    if val_split == "none":
        return train, None
    val = open_detection(cfg.data, _splits(val_split), classes=train.classes, keep_difficult=True, **common)
    return train, (val.first(cfg.val_limit) if cfg.val_limit else val)


ARCHITECTURE = ("norm", "frozen_stages", "box_head")  # the config fields that decide which weights exist


def model_config(
    cfg: DetectionTrainConfig, num_classes: int, *, scratch: bool = False, init_config: dict | None = None
) -> DetectorConfig:
    """The kind's default config for the backbone with the settings the run gives; warns about the ones this kind
    has no use for. ``scratch`` (no pretrained weights): every layer trains, ResNets get GroupNorm and the RoI head
    is torchvision's two-layer MLP on 7x7 RoIs instead of the trunk's top stage. With ``init_config`` (the --init
    checkpoint's model config) its architecture is the default."""
    if init_config and init_config.get("backbone") in FPN_BACKBONES:
        # A feature-pyramid detector (torchvision's COCO weights, imported) is fine-tuned with its own preset.
        model_cfg = config_from_dict(cfg.model, {**init_config, "num_classes": num_classes})
    elif cfg.backbone in FPN_BACKBONES and not scratch:
        raise SystemExit(
            f"error: --backbone {cfg.backbone} starts from a COCO detector: python -m detector.weights fetch "
            "coco-frcnn-r50-fpn-v2 (or import-torchvision), then --pretrained coco-frcnn-r50-fpn-v2 or --init CKPT; "
            "or train it from scratch with --pretrained none"
        )
    else:
        model_cfg = default_config(cfg.model, cfg.backbone, num_classes)
    if scratch and cfg.backbone in FPN_BACKBONES:  # batch statistics in torchvision's pyramid extractors
        model_cfg.norm, model_cfg.frozen_stages = "bn", 0
    elif scratch and cfg.backbone != "tiny":  # see README "Training from scratch" for the measurements behind these
        model_cfg.norm, model_cfg.frozen_stages, model_cfg.box_head = "gn", 0, "mlp"
    for name in ARCHITECTURE if init_config else ():
        setattr(model_cfg, name, init_config.get(name, getattr(model_cfg, name)))
    model_cfg.norm = cfg.norm or model_cfg.norm
    model_cfg.box_head = cfg.box_head or model_cfg.box_head
    if model_cfg.norm == "gn" and not (scratch or init_config):
        raise SystemExit("error: --norm gn needs --pretrained none (ImageNet weights come with batch norm)")
    ignored = model_cfg.override(
        min_size=cfg.min_size, max_size=cfg.max_size, pooler=cfg.pooler,
        anchor_sizes=None if _is_auto(cfg.anchor_sizes) else cfg.anchor_sizes,
        aspect_ratios=None if _is_auto(cfg.aspect_ratios) else cfg.aspect_ratios,
        proposal_mode=cfg.proposal_mode, max_proposals=cfg.max_proposals,
    )  # fmt: skip
    if ignored:
        flags = ", ".join("--" + name.replace("_", "-") for name in ignored)
        print(f"warning: {flags} mean(s) nothing for --model {cfg.model}; ignored", file=sys.stderr)
    for item in cfg.set:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError(f"--set {item}: write KEY=VALUE, e.g. rpn.allowed_border=1e4")
            model_cfg.set_option(key.strip(), value.strip())
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
    return model_cfg


FREEZE = ("none", "trunk", "trunk+rpn")


def freeze_parts(model: nn.Module, what: str) -> int:
    """Stops training the trunk (``trunk``) or the trunk and the RPN (``trunk+rpn``), for small datasets; returns
    how many parameters that froze (the trunk's own frozen early stages, as the papers freeze them, not counted)."""
    if what not in FREEZE:
        raise SystemExit(f"error: --freeze must be one of {', '.join(FREEZE)}, got {what!r}")
    prefixes = {"none": (), "trunk": ("backbone.",), "trunk+rpn": ("backbone.", "rpn.")}[what]
    if "rpn." in prefixes and not hasattr(model, "rpn"):
        raise SystemExit(f"error: --freeze trunk+rpn: a {model.kind} model has no RPN; use --freeze trunk")
    frozen = 0
    for name, parameter in model.named_parameters():
        if name.startswith(prefixes) and parameter.requires_grad:
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


# The modules whose rows are per class (every kind shares RoIHeads' predictor).
CLASS_OUTPUTS = ("roi_heads.predictor.cls_score.", "roi_heads.predictor.bbox_pred.")


def _is_auto(values) -> bool:
    return values is not None and "auto" in values


def fit_model_anchors(cfg: DetectionTrainConfig, model_cfg: DetectorConfig, train, say=print) -> None:
    """``--anchor-sizes auto`` / ``--aspect-ratios auto``: anchors fitted to the training boxes at the model's test
    scale (``detector.models.anchor_fit``; as many sizes and ratios as the config had), printed with the coverage
    before and after, and stored in ``model_cfg`` (so in the checkpoint) like any setting."""
    fit_sizes, fit_ratios = _is_auto(cfg.anchor_sizes), _is_auto(cfg.aspect_ratios)
    if not (fit_sizes or fit_ratios):
        return
    rpn = getattr(model_cfg, "rpn", None)
    if rpn is None:
        say(f"warning: --anchor-sizes/--aspect-ratios auto mean nothing for --model {cfg.model} (no RPN); ignored")
        return
    if rpn.anchor_sizes_per_level:
        raise SystemExit("error: --anchor-sizes/--aspect-ratios auto fit one feature map's anchors, not a pyramid's")
    images = training_scale_boxes(train, model_cfg.min_size[-1], model_cfg.max_size)
    boxes = np.concatenate([b for _, b in images]) if images else np.zeros((0, 4))
    shapes = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
    stride = STRIDES[model_cfg.backbone]
    try:
        sizes, ratios = fit_anchors(shapes, len(rpn.anchor_sizes), len(rpn.aspect_ratios), seed=cfg.seed)
    except ValueError as exc:  # too few boxes to fit
        say(f"warning: anchors not fitted ({exc}); keeping {list(rpn.anchor_sizes)} x {list(rpn.aspect_ratios)}")
        return
    before = anchor_coverage(images, rpn.anchor_sizes, rpn.aspect_ratios, stride)
    rpn.anchor_sizes = sizes if fit_sizes else rpn.anchor_sizes
    rpn.aspect_ratios = ratios if fit_ratios else rpn.aspect_ratios
    after = anchor_coverage(images, rpn.anchor_sizes, rpn.aspect_ratios, stride)
    say(
        f"anchors fitted to {len(shapes)} training boxes: sizes {list(rpn.anchor_sizes)}, ratios "
        f"{list(rpn.aspect_ratios)}; boxes whose best anchor has IoU >= 0.7: {before[1]:.1%} -> {after[1]:.1%} "
        f"(>= 0.5: {before[0]:.1%} -> {after[0]:.1%})"
    )


def init_from_checkpoint(
    model: nn.Module, path: Path, classes: tuple[str, ...], say=print, *, loaded: dict | None = None
) -> None:
    """Copy a trained detector's weights into ``model`` (``--init``): fine-tuning, also to other classes.

    Every weight whose shape fits is kept: trunk, RPN, box head. The class-specific outputs (the rows of the
    classifier and of the class-specific box regressor, one row or four per class plus background) are kept for
    background and for each class whose name the checkpoint also has; the rows of new classes keep their fresh
    initialisation. Anything else that does not fit (another backbone, other anchors) is an error. Settings that
    own no weights (input sizes, proposal counts, thresholds) come from the run's config."""
    init = loaded if loaded is not None else checkpoint.load(path)
    old_classes = list(init["class_names"])
    same_classes = old_classes == list(classes)
    own = model.state_dict()
    rows = [(0, 0)] + [(classes.index(c) + 1, old_classes.index(c) + 1) for c in classes if c in old_classes]
    loaded, partial, errors = {}, [], []
    for key, value in init["model"].items():
        class_specific = key.startswith(CLASS_OUTPUTS) and not same_classes and key in own
        per = _rows_per_class(value, len(old_classes), own[key], len(classes)) if class_specific else 0
        if key not in own:
            errors.append(f"unexpected {key}")
        elif per:
            target = own[key].clone()
            for new_row, old_row in rows:  # row block c is rows per * c .. per * c + per - 1
                target[new_row * per : (new_row + 1) * per] = value[old_row * per : (old_row + 1) * per]
            loaded[key] = target
            partial.append(key)
        elif tuple(own[key].shape) == tuple(value.shape):
            loaded[key] = value.to(own[key].dtype)
        else:
            errors.append(f"shape of {key}: {tuple(value.shape)} in the checkpoint, {tuple(own[key].shape)} here")
    errors += [f"missing {k}" for k in sorted(set(own) - set(init["model"]))]
    if errors:
        raise SystemExit(
            f"error: --init {path} does not fit this model (backbone/anchors/head must match): " + "; ".join(errors[:5])
        )
    model.load_state_dict(loaded)
    if same_classes:
        say(f"initialised from {path}")
        return
    shared, new = [c for c in classes if c in old_classes], [c for c in classes if c not in old_classes]
    say(
        f"initialised from {path} (trained on {len(old_classes)} other classes): kept {len(loaded) - len(partial)} "
        f"tensors whole; in the class-specific outputs ({', '.join(partial)}) kept the rows of background and "
        f"{shared or 'no class'}, re-initialised {new or 'none'}"
    )


def _rows_per_class(value: Tensor, old_k: int, own: Tensor, new_k: int) -> int:
    """1 or 4 when ``value`` is a class-specific output ((K + 1) or 4 (K + 1) rows, the rest alike), else 0."""
    for per in (4, 1):
        if value.shape[0] == per * (old_k + 1) and own.shape[0] == per * (new_k + 1):
            if tuple(value.shape[1:]) == tuple(own.shape[1:]):
                return per
    return 0


def _resume_checkpoint(
    cfg: DetectionTrainConfig, out: Path, classes: tuple[str, ...], say
) -> tuple[dict | None, Path | None]:
    ckpt, path = resume_checkpoint(cfg.resume, out, say=say)
    if ckpt is None:
        return None, None
    if list(ckpt["class_names"]) != list(classes):
        raise SystemExit(
            f"error: {path} was trained on classes {ckpt['class_names']}, this dataset has {list(classes)}"
        )
    if ckpt["kind"] != cfg.model:
        raise SystemExit(f"error: {path} holds a {ckpt['kind']} model; resume it with --model {ckpt['kind']}")
    return ckpt, path


def _with_proposals(ctx, cfg: DetectionTrainConfig, model_cfg: DetectorConfig, train, val):
    """Computed once per dataset and settings, then read from disk (a no-op for a complete cache). Under torchrun
    rank 0 fills the cache while the others wait, then they only read it."""
    for turn in ("main", "others"):
        if ctx.is_main == (turn == "main"):
            progress = ctx.is_main and not cfg.no_progress
            options = {
                "cache_dir": cfg.proposal_cache,
                "workers": cfg.workers,
                "progress": progress,
                "quiet": not ctx.is_main,
            }
            train = with_cached_proposals(train, model_cfg, **options)
            val = with_cached_proposals(val, model_cfg, **options) if val is not None else None
        ddp.barrier(ctx)
    return train, val


def _optimizer(cfg: DetectionTrainConfig, model: nn.Module, iters_per_epoch: int, lr: float):
    optim_cfg = OptimConfig(
        optimizer=cfg.optimizer,
        lr=lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        schedule=cfg.schedule,
        step_size=max(1, round(cfg.step_size * iters_per_epoch)),
        milestones=tuple(round(m * iters_per_epoch) for m in cfg.milestones),
        gamma=cfg.gamma,
        warmup_iters=cfg.warmup_iters,
        total_iters=cfg.iters or cfg.epochs * iters_per_epoch,
    )
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], optim_cfg)
    return optimizer, LRSchedule(optimizer, optim_cfg)


def _validation(cfg: DetectionTrainConfig, val_set):
    """The evaluation hook's function: VOC07 mAP or COCO AP (--val-metric) on the validation split (sharded over
    the ranks)."""

    def evaluate(t: Trainer):
        precision = Precision("fp16", "--amp") if t.amp else Precision("fp32", "training")
        predictor = DetectionPredictor(t.model, device=t.device, precision=precision)
        workers = min(cfg.workers, 2)
        result, sec = ddp.evaluate(
            t.ctx, predictor, val_set, metric=cfg.val_metric, workers=workers, progress=not cfg.no_progress
        )
        metrics = {"split": "+".join(val_set.splits), "metric": result.metric, "map": result.map, "ap": result.ap,
                   "epoch": t.state.epoch, "seconds_per_image": sec}  # fmt: skip
        if result.map is None:
            line = f"epoch {t.state.epoch}: no positives in validation split"
        else:
            line = f"epoch {t.state.epoch}: validation mAP ({result.metric}) = {result.map:.4f}"
        return {"map": result.map, "eval_seconds_per_image": sec}, metrics, result.map, line

    return evaluate


def _warn_batch_change(ctx, ckpt: dict, path: Path, global_batch: int) -> None:
    before = ckpt.get("train_config") or {}
    saved = before.get("global_batch_size", before.get("batch_size", global_batch))
    if saved != global_batch and ctx.is_main:
        print(
            f"warning: {path} was trained with a global batch of {saved} images, this run uses {global_batch} "
            "(--batch-size x processes): the position in the epoch is counted in the new batches, so part of this "
            "epoch's images may be skipped or repeated, and the lr follows the new global batch",
            file=sys.stderr,
        )


def _validation_images(val_set, count: int = 4):
    """TensorBoard's pictures: the first ``count`` validation images with the boxes the model finds (above its
    display threshold), labelled with class and score."""

    def draw(t: Trainer) -> list:
        predictor = DetectionPredictor(t.model, device=t.device)
        pictures = []
        for i in range(min(count, len(val_set))):
            image, target = val_set[i]
            (output,) = predictor.predict_batch([image])
            found = predictor.detections(output)
            boxes = torch.tensor([d.box for d in found], dtype=torch.float32).reshape(-1, 4)
            labels = [f"{d.label} {d.score:.2f}" for d in found]
            pictures.append((f"val/{target['image_id']}", image, boxes, labels))
        return pictures

    return draw


def _hooks(cfg: DetectionTrainConfig, out: Path, val_set) -> list:
    """In the order they run at an epoch's end: evaluation before the log that records it, last.pt after both."""
    hooks = [ProgressBar(not cfg.no_progress)]
    if cfg.log_image_ids:
        hooks.append(ImageIdLog())
    if val_set is not None:
        hooks.append(Evaluation(_validation(cfg, val_set), every=cfg.eval_every, patience=cfg.patience))
    if cfg.tensorboard:
        draw = _validation_images(val_set) if val_set is not None else None
        hooks.append(TensorBoard(out / "tb", every=cfg.log_every, draw=draw))
    return [
        *hooks,
        MetricsLog(out / "metrics.jsonl", every=cfg.log_every),
        Checkpointer(every_epochs=cfg.checkpoint_every, save_every_iters=cfg.save_every_iters),
        TrainingCurves(out / "metrics.jsonl", out / "training_curves.png", metric_key="map"),
    ]


def train_detector(cfg: DetectionTrainConfig) -> dict:
    """Trains (or resumes) a detector as ``cfg`` says; returns results.json's content. Under torchrun every rank
    calls it. Raises SystemExit with a one-line message for a user's mistake (bad checkpoint, NaN loss, ...)."""
    try:
        device = device_from_name(cfg.device)
    except ValueError as exc:
        raise SystemExit(f"error: --device {exc}") from None
    ctx = ddp.setup(device)
    try:
        return _train(cfg.with_paper_schedule(), ctx)
    finally:
        ddp.teardown(ctx)


def _init_checkpoint(cfg: DetectionTrainConfig) -> str | None:
    """The detector checkpoint to start from: ``--init``, or ``--pretrained`` naming one (a checkpoint file, or a
    ``python -m detector.weights fetch`` name looked up as ``--weights-dir/NAME.pt``)."""
    if cfg.init:
        return cfg.init
    if cfg.pretrained in FETCH_NAMES:
        path = Path(cfg.weights_dir) / f"{cfg.pretrained}.pt"
        if not path.is_file():
            raise SystemExit(
                f"error: --pretrained {cfg.pretrained}: {path} does not exist; run python -m detector.weights fetch "
                f"{cfg.pretrained} --dir {cfg.weights_dir}"
            )
        return str(path)
    if cfg.pretrained not in ("auto", "none", "imagenet") and Path(cfg.pretrained).is_file():
        try:
            checkpoint.load(cfg.pretrained)
        except checkpoint.CheckpointError:
            return None  # an ImageNet state dict for the backbone
        return cfg.pretrained
    return None


def _model(cfg: DetectionTrainConfig, ctx: ddp.Context, out: Path):
    """The datasets, the model (built, or rebuilt to resume, or initialised from --init) and the checkpoint to
    resume from. Seeds the run before building, so the initial weights follow --seed."""
    say = print if ctx.is_main else (lambda *a, **k: None)
    try:  # a dataset the user has to fix: one line naming the file, before anything trains
        train_base, val_set = _datasets(cfg)
        for name, dataset in (("train", train_base), ("val", val_set)):
            if dataset is not None:  # every file read once now: a bad one stops the run before it starts
                cache = out / ".preflight" if ctx.is_main else None
                report = preflight(dataset, cache_dir=cache, progress=ctx.is_main and not cfg.no_progress, name=name)
                say(f"{name}: {report.images} images, {report.boxes} boxes checked" + (" (cached)" * report.cached))
    except (OSError, AnnotationError) as exc:
        raise SystemExit(f"error: {exc}") from None
    classes = train_base.classes
    if "discovered" in train_base.classes_source:  # no class list given: say what was found, in label order
        say(f"classes {train_base.classes_source}: {list(classes)}")
    ckpt, resume_path = _resume_checkpoint(cfg, out, classes, say)
    init = None
    if ckpt is not None:
        model_cfg, pretrained = config_from_dict(ckpt["kind"], ckpt["model_config"]), None  # it has every weight
    else:
        init = _init_checkpoint(cfg)
        auto = "none" if cfg.backbone == "tiny" else "imagenet"
        pretrained = auto if cfg.pretrained == "auto" else cfg.pretrained
        scratch = pretrained in (None, "none") and not init
        try:  # read once: its config sets the architecture, its weights initialise the model below
            init_ckpt = checkpoint.load(init) if init else None
        except checkpoint.CheckpointError as exc:
            raise SystemExit(f"error: --init: {exc}") from None
        init_config = init_ckpt.get("model_config") if init_ckpt else None
        model_cfg = model_config(cfg, len(classes), scratch=scratch, init_config=init_config)
        fit_model_anchors(cfg, model_cfg, train_base, say=say)
    if init:
        pretrained = None  # every weight comes from the --init checkpoint
    if model_cfg.external_proposals:
        train_base, val_set = _with_proposals(ctx, cfg, model_cfg, train_base, val_set)
    seed_everything(cfg.seed)
    model: Detector = build_detector(cfg.model, model_cfg, pretrained=pretrained, weights_dir=cfg.weights_dir)
    model.to(ctx.device)
    if init:
        init_from_checkpoint(model, Path(init), classes, say=say, loaded=init_ckpt)
        del init_ckpt
    saved_freeze = ((ckpt or {}).get("train_config") or {}).get("freeze")
    freeze = cfg.freeze or saved_freeze or "none"  # a resumed run keeps the checkpoint's (its optimizer needs it)
    frozen = freeze_parts(model, freeze)
    if frozen:
        say(f"--freeze {freeze}: {frozen:,} parameters frozen")
    ddp.seed_rank(cfg.seed, ctx.rank)
    return train_base, val_set, model, (ckpt, resume_path)


def _train(cfg: DetectionTrainConfig, ctx: ddp.Context) -> dict:
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    train_base, val_set, model, (ckpt, resume_path) = _model(cfg, ctx, out)
    classes, model_cfg = train_base.classes, model.config
    say = print if ctx.is_main else (lambda *a, **k: None)  # rank 0 speaks for the job
    saved_augment = ((ckpt or {}).get("train_config") or {}).get("augment")
    if ckpt is not None and cfg.augment is None and saved_augment is not None:
        cfg = replace(cfg, augment=saved_augment)  # a resumed run goes on with the checkpoint's augmentation
        say(f"--augment {saved_augment}: as {resume_path} was trained")
    augment = detection_transform(True, hflip=cfg.hflip, preset=cfg.augment)
    train_set = AugmentedDataset(train_base, augment, seed=cfg.seed)
    groups = aspect_ratio_groups([train_base.image_size(i) for i in range(len(train_base))])
    sampler = ddp.batch_sampler(ctx, groups, cfg.batch_size, seed=cfg.seed)
    global_batch = cfg.batch_size * ctx.world
    base_batch = cfg.lr_base_batch or cfg.batch_size
    lr = ddp.effective_lr(cfg.lr, global_batch=global_batch, base_batch=base_batch, rule=cfg.lr_scaling)
    optimizer, schedule = _optimizer(cfg, model, len(sampler), lr)
    if cfg.amp and ctx.device.type != "cuda" and ctx.is_main:
        print("warning: --amp needs CUDA; training in fp32 on the CPU", file=sys.stderr)
    train_config = {**cfg.to_dict(), "iters_per_epoch": len(sampler), "world_size": ctx.world,
                    "global_batch_size": global_batch, "effective_lr": lr}  # fmt: skip
    trainer = Trainer(
        DetectionTask(cfg.model, model_cfg, classes), model, optimizer, schedule,
        TrainData(train_set, sampler, workers=cfg.workers, collate_fn=collate),
        epochs=cfg.epochs, total_iters=cfg.iters or cfg.epochs * len(sampler), out=out, ctx=ctx, seed=cfg.seed,
        amp=cfg.amp, max_grad_norm=cfg.clip_grad, train_config=train_config, hooks=_hooks(cfg, out, val_set),
    )  # fmt: skip
    if ckpt is not None:
        trainer.restore(ckpt, legacy_best="best_map")
        say(f"resumed from {resume_path}: epoch {trainer.state.epoch + 1}, iteration {trainer.state.iteration}")
        _warn_batch_change(ctx, ckpt, resume_path, global_batch)
        del ckpt
    say(
        f"training {cfg.model}/{model_cfg.backbone} on {len(train_base)} images of {len(classes)} classes, "
        f"{len(sampler)} iterations per epoch, device {ctx.device}"
    )
    if ctx.distributed:
        say(
            f"distributed: {ctx.world} processes ({torch.distributed.get_backend()}), global batch {global_batch} "
            f"images, lr {lr:g} (--lr {cfg.lr:g}, --lr-scaling {cfg.lr_scaling})"
        )
    try:
        state = trainer.train()
    except NonFiniteLossError as exc:
        raise non_finite_exit(exc, trainer) from None
    results = {"epoch": state.epoch, "iteration": state.iteration, "best_map": state.best_metric,
               "last_eval": state.last_eval, "out": str(out)}  # fmt: skip
    if ctx.is_main:
        (out / "results.json").write_text(json.dumps(results, indent=2))
    return results
