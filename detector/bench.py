"""Benchmark: our Faster R-CNN against torchvision's, built on the same trunk and head, on the same inputs.

    python -m detector.bench inference --backbone vgg16 [--precision fp32 bf16] [--batch 1 8] [--images 5] [--no-memory] [--check] [--json OUT]
    python -m detector.bench train --backbone vgg16 [--precision bf16] [--device cuda]

Prints time per image (inference) or per training step (forward + backward + SGD step, one image), the peak
memory of each model and the ratio ours / torchvision; with several precisions or batch sizes, one report
each and a summary that also compares ours with torchvision in fp32. Three models run, with identical weights:

- ``ours``: ``FasterRCNN`` with ``pooler="roi_align"``, because torchvision only offers RoIAlign; for
  inference prepared by ``prepare_for_inference`` at the run's precision (``--no-prepare``: as built);
- ``torchvision``: ``torchvision.models.detection.FasterRCNN`` given our trunk (``backbone.body``), our RoI
  head (``backbone.head``), our RPN conv head behind torchvision's interface, a ``FastRCNNPredictor`` holding
  our predictor's weights, the settings of our config (anchors, proposal counts, thresholds, sizes), and a
  one-level RoIAlign with ``aligned=True`` as ours (``AlignedRoIAlign``); run as torchvision users run it
  (autocast at the run's precision, weights as built);
- ``ours_roi_pool``: our default configuration (RoI max pooling), reported as an extra line.

``--check`` first runs ``answer_check``: what "equal output" means between the timed models.
With ``--no-memory`` the models are timed interleaved in one process (``measure_interleaved``), which keeps
the ratios meaningful on a machine shared with other work.

Identical weights come from seeded construction: every model is built after ``torch.manual_seed(seed)`` by
the same sequence of layer constructions (trunk, RPN head, predictor), so no model has to be built twice in
one process (which would distort its memory figure). ``tests/test_bench.py`` checks the weights are equal.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per model) minus what the inputs hold; on
CPU the growth of the peak resident set size (``ru_maxrss``) over the RSS after building the inputs, each
model measured in a fresh spawned process (which also runs its timing). Both include the weights.
The random weights make the detections meaningless; their count on the first image is reported only to
show that both models ran end to end, not as a claim that they agree.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, roi_align

from detector.core.devices import CPUInfo, cpu_info
from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from detector.core.precision import PRECISIONS, check_precision, precision_autocast
from detector.models.backbones import BACKBONES, build_backbone
from detector.models.faster_rcnn import FasterRCNN, FasterRCNNConfig, tiny_config
from detector.models.inference import prepare_for_inference
from detector.models.roi_heads import BoxPredictor
from detector.models.rpn import RPNHead

NUM_CLASSES = 20  # VOC
MODELS = ("ours", "torchvision", "ours_roi_pool")
LABELS = {
    "ours": "ours (roi_align)",
    "torchvision": "torchvision (roi_align)",
    "ours_roi_pool": "ours (roi_pool, default)",
}


@dataclass
class Settings:
    mode: str = "inference"  # or "train"
    backbone: str = "vgg16"
    precision: str = "fp32"
    device: str = "cpu"  # resolved: "cpu" or "cuda[:i]"
    images: int = 5
    size: tuple[int, int] = (375, 500)  # (H, W) of every input image
    batch: int = 1  # images per forward (inference only; training steps take one image)
    warmup: int = 1
    threads: int | None = None  # None: torch's default
    seed: int = 0
    memory: bool = True
    min_size: int | None = None  # shorter side the models resize to; None: the config's (600, tiny 320)
    prepare: bool = True  # inference: run ours through prepare_for_inference (channels-last, low-precision weights)


# --- models -------------------------------------------------------------------------------------------
def model_config(backbone: str, pooler: str = "roi_pool", min_size: int | None = None) -> FasterRCNNConfig:
    cfg = (
        tiny_config(NUM_CLASSES) if backbone == "tiny" else FasterRCNNConfig(backbone=backbone, num_classes=NUM_CLASSES)
    )
    cfg.roi_heads.pooler = pooler
    if min_size is not None:
        cfg.min_size = (min_size,)
    return cfg


def build_ours(backbone: str, pooler: str, seed: int, min_size: int | None = None) -> FasterRCNN:
    torch.manual_seed(seed)
    return FasterRCNN(model_config(backbone, pooler, min_size), pretrained=None)


class TorchvisionRPNHead(nn.Module):
    """Our RPN head behind torchvision's interface: a list of feature maps in, lists of objectness logits
    [N, A, Hf, Wf] and deltas [N, 4A, Hf, Wf] out. torchvision's own ``RPNHead`` makes its 3x3 conv as wide
    as the trunk (1024 for ResNet-50 C4) while ours is ``RPNConfig.channels`` wide; this keeps the work equal.
    Both order anchors ratio-major with aspect ratio = height / width, so the channels mean the same anchors."""

    def __init__(self, head: RPNHead):
        super().__init__()
        self.head = head

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        hidden = [F.relu(self.head.conv(f)) for f in features]
        return [self.head.objectness(t) for t in hidden], [self.head.deltas(t) for t in hidden]


class AlignedRoIAlign(MultiScaleRoIAlign):
    """torchvision's one-level ``MultiScaleRoIAlign`` with ``aligned=True``, as ours pools (torchvision's
    ``FasterRCNN`` accepts only that class). ``MultiScaleRoIAlign`` always pools with ``aligned=False`` (a
    half-pixel shift), which would make the two RoI heads compute different functions of the same proposals;
    the work is the same either way."""

    def __init__(self, pool_size: int, spatial_scale: float):
        super().__init__(["0"], output_size=pool_size, sampling_ratio=2)
        self.spatial_scale = spatial_scale

    def forward(
        self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> Tensor:
        return roi_align(
            features["0"], proposals, self.output_size, spatial_scale=self.spatial_scale, sampling_ratio=2, aligned=True
        )


def build_torchvision(backbone: str, seed: int, min_size: int | None = None) -> TorchvisionFasterRCNN:
    """torchvision's Faster R-CNN on our trunk and head, with our config's settings. The layers are built in
    the order ``FasterRCNN.__init__`` builds them (trunk, RPN head, predictor) after the same seed, so the
    weights equal ours."""
    cfg = model_config(backbone, "roi_align", min_size)
    torch.manual_seed(seed)
    trunk = build_backbone(backbone, None)
    num_anchors = len(cfg.rpn.anchor_sizes) * len(cfg.rpn.aspect_ratios)
    rpn_head = RPNHead(trunk.out_channels, cfg.rpn.channels, num_anchors)
    ours_predictor = BoxPredictor(trunk.representation_size, NUM_CLASSES)
    predictor = FastRCNNPredictor(trunk.representation_size, NUM_CLASSES + 1)
    predictor.load_state_dict(ours_predictor.state_dict())  # same parameter names: cls_score, bbox_pred

    body = trunk.body
    body.out_channels = trunk.out_channels  # torchvision reads this attribute
    rpn, roi = cfg.rpn, cfg.roi_heads
    return TorchvisionFasterRCNN(
        body,
        min_size=cfg.min_size[-1],
        max_size=cfg.max_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        rpn_anchor_generator=TorchvisionAnchorGenerator(
            sizes=(tuple(int(s) for s in rpn.anchor_sizes),), aspect_ratios=(rpn.aspect_ratios,)
        ),
        rpn_head=TorchvisionRPNHead(rpn_head),
        rpn_pre_nms_top_n_train=rpn.pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn.pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn.post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn.post_nms_top_n_test,
        rpn_nms_thresh=rpn.nms_threshold,
        rpn_fg_iou_thresh=rpn.positive_iou,
        rpn_bg_iou_thresh=rpn.negative_iou,
        rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        box_roi_pool=AlignedRoIAlign(trunk.pool_size, 1.0 / trunk.stride),
        box_head=trunk.head,  # [R, C, P, P] -> [R, D], as torchvision's box heads
        box_predictor=predictor,
        box_score_thresh=roi.score_threshold,
        box_nms_thresh=roi.nms_threshold,
        box_detections_per_img=roi.detections_per_image,
        box_fg_iou_thresh=roi.fg_iou,
        box_bg_iou_thresh=roi.fg_iou,  # ours: background is [bg_iou_low, fg_iou) with bg_iou_low = 0
        box_batch_size_per_image=roi.batch_size_per_image,
        box_positive_fraction=roi.positive_fraction,
        bbox_reg_weights=roi.box_weights,
    )


def build_model(name: str, backbone: str, seed: int, min_size: int | None = None) -> nn.Module:
    if name == "ours":
        return build_ours(backbone, "roi_align", seed, min_size)
    if name == "ours_roi_pool":
        return build_ours(backbone, "roi_pool", seed, min_size)
    if name == "torchvision":
        return build_torchvision(backbone, seed, min_size)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


# --- inputs -------------------------------------------------------------------------------------------
def make_inputs(settings: Settings) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """Fixed random images [3, H, W] in [0, 1] and targets of 1-4 boxes (xyxy pixels, >= 16 px a side)
    with labels 1..20, from a generator seeded independently of the models."""
    g = torch.Generator().manual_seed(settings.seed + 1)
    h, w = settings.size
    images, targets = [], []
    for _ in range(settings.images):
        images.append(torch.rand(3, h, w, generator=g))
        n = int(torch.randint(1, 5, (1,), generator=g))
        side = torch.tensor([w, h, w, h], dtype=torch.float32)
        lo = torch.rand(n, 2, generator=g) * (side[:2] - 16)
        hi = lo + 16 + torch.rand(n, 2, generator=g) * (side[:2] - 16 - lo)
        boxes = torch.cat([lo, hi], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, NUM_CLASSES + 1, (n,), generator=g)})
    return images, targets


# --- measurement --------------------------------------------------------------------------------------
def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak so far is the best available stand-in
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """Calls ``fn()`` between device synchronisations (so queued CUDA work is inside the window); returns
    (its result, wall seconds)."""
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return result, time.perf_counter() - start


def _batches(images: list[Tensor], size: int) -> list[list[Tensor]]:
    return [images[i : i + size] for i in range(0, len(images), size)]


def _seconds_per_image(model: nn.Module, batch: list[Tensor], settings: Settings, device: torch.device) -> float:
    """One timed inference forward of ``batch`` at the settings' precision (inside ``inference_mode``)."""
    with _autocast(settings, device):
        _, seconds = timed(lambda: model(batch), device)
    return seconds / len(batch)


def _autocast(settings: Settings, device: torch.device):
    return precision_autocast(device, settings.precision)


def measure(name: str, settings: Settings, track_memory: bool) -> dict:
    """Builds one model and times it on the fixed inputs. Returns {"seconds" (median per image or per step),
    "times", "peak_mb" (None unless ``track_memory``), "detections_first_image", "first_loss" (train only)}.
    ``track_memory`` on CPU assumes a fresh process: ru_maxrss is a process-lifetime peak."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    images, targets = make_inputs(settings)
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
    else:
        baseline = _current_rss_mb()

    model = build_timed_model(name, settings, device)
    torch.manual_seed(settings.seed)  # the same sampling randomness for every model
    with torch.inference_mode(), _autocast(settings, device):
        detections = len(model([images[0]])[0]["boxes"])
    times: list[float] = []
    first_loss = None
    if settings.mode == "inference":
        batches = _batches(images, settings.batch)
        with torch.inference_mode():
            for i in range(settings.warmup + len(batches)):
                seconds = _seconds_per_image(model, batches[i % len(batches)], settings, device)
                if i >= settings.warmup:
                    times.append(seconds)
    else:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")
        for i in range(settings.warmup + len(images)):
            j = i % len(images)
            _sync(device)
            start = time.perf_counter()
            with _autocast(settings, device):
                losses = model([images[j]], [targets[j]])
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            _sync(device)
            if i == 0:
                first_loss = float(loss.detach())
            if i >= settings.warmup:
                times.append(time.perf_counter() - start)

    peak = None
    if track_memory:
        peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _peak_rss_mb()) - baseline
    return {
        "seconds": statistics.median(times),
        "times": times,
        "peak_mb": peak,
        "detections_first_image": detections,
        "first_loss": first_loss,
    }


def build_timed_model(name: str, settings: Settings, device: torch.device) -> nn.Module:
    """The model as timed: ours prepared for inference (``--prepare``, inference only), torchvision as built."""
    model = build_model(name, settings.backbone, settings.seed, settings.min_size).to(device).eval()
    if settings.mode == "inference" and settings.prepare and name != "torchvision":
        prepare_for_inference(model, settings.precision)
    return model


def measure_interleaved(settings: Settings) -> dict[str, dict]:
    """Inference without memory figures: all models in this process, timed in turn on each batch (ours,
    torchvision, ours_roi_pool, ours, ...), so a load change on a shared machine hits them alike.
    Returns ``measure``'s dict per model (``peak_mb`` None); a failing extra model gets an ``error``."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    images = [im.to(device) for im in make_inputs(settings)[0]]
    batches = _batches(images, settings.batch)
    models, runs = {}, {}
    for name in MODELS:
        try:
            model = build_timed_model(name, settings, device)
            with torch.inference_mode(), _autocast(settings, device):
                detections = len(model([images[0]])[0]["boxes"])
            models[name] = model
            runs[name] = {
                "seconds": None,
                "times": [],
                "peak_mb": None,
                "detections_first_image": detections,
                "first_loss": None,
            }
        except RuntimeError as e:
            if name in ("ours", "torchvision"):
                raise
            runs[name] = {
                "seconds": None,
                "times": [],
                "peak_mb": None,
                "detections_first_image": None,
                "first_loss": None,
                "error": str(e).strip().splitlines()[-1],
            }
    with torch.inference_mode():
        for i in range(settings.warmup + len(batches)):
            for name, model in models.items():
                seconds = _seconds_per_image(model, batches[i % len(batches)], settings, device)
                if i >= settings.warmup:
                    runs[name]["times"].append(seconds)
    for name in models:
        runs[name]["seconds"] = statistics.median(runs[name]["times"])
    return runs


def _measure_in_fresh_process(name: str, settings: Settings) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (name, settings, True))


def memory_method(settings: Settings) -> str:
    if not settings.memory:
        return "not measured (--no-memory)"
    if settings.device.startswith("cuda"):
        return "CUDA torch.cuda.max_memory_allocated minus the inputs, reset per model, one process"
    return "CPU peak RSS growth (ru_maxrss minus RSS after building the inputs), a fresh spawned process per model"


def run_benchmark(settings: Settings) -> dict:
    """Measures the three models in turn; returns the JSON report (figures, settings, environment)."""
    check_settings(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    fresh_process = settings.memory and not settings.device.startswith("cuda")
    runs = {}
    if settings.mode == "inference" and not settings.memory:
        runs = measure_interleaved(settings)
    for name in MODELS if not runs else ():
        try:
            runs[name] = (
                _measure_in_fresh_process(name, settings) if fresh_process else measure(name, settings, settings.memory)
            )
        except RuntimeError as e:
            if name in ("ours", "torchvision"):
                raise
            # The extra line must not sink the comparison (e.g. torchvision's CPU roi_pool has no bf16 kernel).
            error = str(e).strip().splitlines()[-1]
            runs[name] = {
                "seconds": None,
                "times": [],
                "peak_mb": None,
                "detections_first_image": None,
                "first_loss": None,
                "error": error,
            }
        gc.collect()
    unit = "s_per_img" if settings.mode == "inference" else "s_per_step"
    cfg = model_config(settings.backbone, min_size=settings.min_size)
    ours, tv = runs["ours"], runs["torchvision"]
    cpu = cpu_info()
    report = {
        f"ours_{unit}": ours["seconds"],
        f"torchvision_{unit}": tv["seconds"],
        "ratio": ours["seconds"] / tv["seconds"],
        "ours_peak_mb": ours["peak_mb"],
        "torchvision_peak_mb": tv["peak_mb"],
        "memory_ratio": ours["peak_mb"] / tv["peak_mb"] if settings.memory else None,
        f"ours_roi_pool_{unit}": runs["ours_roi_pool"]["seconds"],
        "ours_roi_pool_peak_mb": runs["ours_roi_pool"]["peak_mb"],
        "detections_first_image": {name: r["detections_first_image"] for name, r in runs.items()},
        "memory_method": memory_method(settings),
        **asdict(settings),
        "size": list(settings.size),
        "min_size": cfg.min_size[-1],  # the effective resize, also when --min-size is not given
        "max_size": cfg.max_size,
        "threads": settings.threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "cpu": cpu.model,
        "cpu_capability": cpu.capability,  # ATen's kernels (ATEN_CPU_CAPABILITY lowers it)
        "cpu_amx": cpu.amx,  # bf16 on AMX tiles: what makes bf16 several times faster than fp32 on a CPU
        "cpu_avx512_bf16": cpu.avx512_bf16,
        "onednn_max_cpu_isa": cpu.onednn_max_isa,
        "gpu": torch.cuda.get_device_name(settings.device) if settings.device.startswith("cuda") else None,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": runs,
    }
    return report


def check_settings(settings: Settings) -> None:
    """Raises ValueError naming the option for settings a user can get wrong."""
    if settings.backbone not in BACKBONES:
        raise ValueError(f"--backbone {settings.backbone!r}: choose one of {', '.join(BACKBONES)}")
    check_precision(settings.precision, settings.device)
    if settings.images < 1 or settings.warmup < 0 or settings.batch < 1:
        raise ValueError("--images and --batch must be at least 1, --warmup at least 0")
    if settings.batch > settings.images:
        raise ValueError(f"--batch {settings.batch} is larger than --images {settings.images}")
    if min(settings.size) < 32 or (settings.min_size is not None and settings.min_size < 32):
        raise ValueError("--size sides and --min-size must be at least 32 px")


def _cpu_line(report: dict) -> str:
    cpu = CPUInfo(
        report["cpu"],
        report["cpu_capability"],
        report["cpu_amx"],
        report["cpu_avx512_bf16"],
        report["onednn_max_cpu_isa"],
    )
    return cpu.line()


def format_report(report: dict) -> str:
    train = report["mode"] == "train"
    unit = "s_per_step" if train else "s_per_img"
    h, w = report["size"]
    device = report["gpu"] or _cpu_line(report)
    lines = [
        f"{report['mode']}: backbone {report['backbone']}, {report['precision']}, {report['device']} ({device}), "
        f"{report['threads']} threads, torch {report['torch']}, torchvision {report['torchvision']}",
        f"{report['images']} images {h}x{w} (resized to shorter side {report['min_size']}, longer <= {report['max_size']}), "
        + ("batch 1 (one image per step)" if train else f"batch {report['batch']}")
        + f", {report['warmup']} warm-up, median over the rest",
        "",
        f"{'model':<26} {('s/step' if train else 's/img'):>9} {'peak MB':>9} {'dets img0':>10}"
        + ("  first loss" if train else ""),
    ]
    for name in MODELS:
        r = report["runs"][name]
        if r.get("error"):
            lines.append(f"{LABELS[name]:<26} failed: {r['error']}")
            continue
        peak = f"{r['peak_mb']:9.1f}" if r["peak_mb"] is not None else f"{'-':>9}"
        loss = f"  {r['first_loss']:10.4f}" if train else ""
        lines.append(f"{LABELS[name]:<26} {r['seconds']:9.4f} {peak} {r['detections_first_image']:>10}{loss}")
    ratio = f"ratio ours/torchvision: time {report['ratio']:.3f}"
    if report["memory_ratio"] is not None:
        ratio += f", peak memory {report['memory_ratio']:.3f}"
    lines += ["", ratio]
    if report[f"ours_roi_pool_{unit}"] is not None:
        lines.append(
            f"ours (roi_pool) / torchvision: time {report[f'ours_roi_pool_{unit}'] / report[f'torchvision_{unit}']:.3f}"
        )
    lines += [
        f"peak memory: {report['memory_method']}",
        "detections: counts on the first image with random weights (models differ in details; not expected to match)",
    ]
    return "\n".join(lines)


# --- answer-equality check ---------------------------------------------------------------------------
def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def compare_detections(a: list[dict[str, Tensor]], b: list[dict[str, Tensor]]) -> dict:
    """Exact-order comparison of two detectors' outputs on the same images: whether every image has the same
    labels in the same order, and the largest box-coordinate (pixels) and score differences."""
    same = all(torch.equal(x["labels"], y["labels"]) for x, y in zip(a, b))
    return {
        "detections": [len(x["labels"]) for x in a],
        "same_labels_in_order": same,
        "max_box_diff_px": max((_max_diff(x["boxes"], y["boxes"]) for x, y in zip(a, b)), default=0.0)
        if same
        else None,
        "max_score_diff": max((_max_diff(x["scores"], y["scores"]) for x, y in zip(a, b)), default=0.0)
        if same
        else None,
    }


def match_detections(
    reference: list[dict[str, Tensor]], other: list[dict[str, Tensor]], *, min_score: float = 0.0, iou: float = 0.5
) -> dict:
    """Low precision against fp32, where the order and the detections near the score threshold may change:
    each reference detection (score >= ``min_score``) is matched to the same-label detection of ``other``
    with the highest IoU (>= ``iou``). Returns the matched fraction and, over matches, the largest
    box-coordinate (pixels) and score differences."""
    matched = total = 0
    box_diff = score_diff = 0.0
    for ref, oth in zip(reference, other):
        keep = ref["scores"] >= min_score
        for box, label, score in zip(ref["boxes"][keep].float(), ref["labels"][keep], ref["scores"][keep].float()):
            total += 1
            same = oth["labels"] == label
            if not same.any():
                continue
            ious = torchvision.ops.box_iou(box[None], oth["boxes"][same].float())[0]
            j = int(ious.argmax())
            if ious[j] >= iou:
                matched += 1
                box_diff = max(box_diff, _max_diff(box, oth["boxes"][same][j]))
                score_diff = max(score_diff, abs(float(score) - float(oth["scores"][same][j])))
    return {
        "reference_detections": total,
        "matched_fraction": matched / total if total else 1.0,
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
    }


def answer_check(settings: Settings, low_precisions: list[str]) -> dict:
    """What the timed models are checked to answer alike, on the first ``settings.batch`` benchmark images:

    1. ours vs torchvision (fp32, identical weights): the resized batch is equal, the trunk features equal,
       and the RoI heads given the same proposals (ours' RPN output) return the same detections: same
       labels in the same order, boxes and scores compared. The full models' detections are not compared:
       the RPNs differ by design (torchvision drops proposals under 1e-3 px, ours under ``min_size`` scaled
       to the image; torchvision ranks sigmoid scores per level), so their proposals differ.
    2. ours prepared for inference in fp32 (channels-last) vs ours as built: full detections, exact order.
    3. ours prepared at each low precision vs ours fp32: detections matched by label and IoU >= 0.5.
       With random weights the scores sit near 1/21, so which boxes pass the 0.05 threshold is fragile;
       the trained detector's figures (``detector.evaluate --precision``) are the ones to quote.
    """
    device = torch.device(settings.device)
    images = [im.to(device) for im in make_inputs(settings)[0][: settings.batch]]
    ours = build_model("ours", settings.backbone, settings.seed, settings.min_size).to(device).eval()
    tv = build_model("torchvision", settings.backbone, settings.seed, settings.min_size).to(device).eval()
    result: dict = {"images": len(images), "backbone": settings.backbone, "size": list(settings.size)}
    with torch.inference_mode():
        batch, _ = ours.transform(images)
        tv_batch, _ = tv.transform(images)
        result["transform_equal"] = batch.image_sizes == tv_batch.image_sizes and torch.equal(
            batch.tensors, tv_batch.tensors
        )
        features = ours.backbone(batch.tensors)
        result["features_max_diff"] = _max_diff(features, tv.backbone(tv_batch.tensors))
        scales = [h / im.shape[-2] for (h, _), im in zip(batch.image_sizes, images)]
        proposals, _ = ours.rpn(features, batch.image_sizes, scales)
        ours_dets, _ = ours.roi_heads(features, proposals, batch.image_sizes)
        tv_dets, _ = tv.roi_heads({"0": features}, proposals, batch.image_sizes)
        result["roi_heads_same_proposals"] = compare_detections(ours_dets, tv_dets)
        del tv
        reference = ours(images)
        prepared = prepare_for_inference(copy.deepcopy(ours), "fp32")
        result["prepared_fp32_vs_fp32"] = compare_detections(reference, prepared(images))
        del prepared
        for precision in low_precisions:
            prepared = prepare_for_inference(copy.deepcopy(ours), precision)
            with precision_autocast(device, precision):
                result[f"prepared_{precision}_vs_fp32"] = match_detections(reference, prepared(images))
            del prepared
    return result


def format_check(check: dict) -> str:
    roi = check["roi_heads_same_proposals"]
    lines = [
        f"answer check ({check['backbone']}, {check['images']} image(s) {check['size'][0]}x{check['size'][1]}, random weights):",
        f"  ours vs torchvision: resized batch equal {check['transform_equal']}, trunk features max diff {check['features_max_diff']:.3g}",
        f"  RoI heads on the same proposals: detections {roi['detections']}, same labels in order {roi['same_labels_in_order']}, "
        f"max box diff {roi['max_box_diff_px']} px, max score diff {roi['max_score_diff']}",
    ]
    fp32 = check["prepared_fp32_vs_fp32"]
    lines.append(
        f"  ours prepared fp32 vs as built: same labels in order {fp32['same_labels_in_order']}, max box diff {fp32['max_box_diff_px']} px, "
        f"max score diff {fp32['max_score_diff']}"
    )
    for key, m in check.items():
        if key.startswith("prepared_") and key != "prepared_fp32_vs_fp32":
            lines.append(
                f"  ours {key.split('_')[1]} vs fp32: {m['matched_fraction']:.1%} of {m['reference_detections']} detections matched (IoU >= 0.5, same label), "
                f"max box diff {m['max_box_diff_px']:.3g} px, max score diff {m['max_score_diff']:.3g}"
            )
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.bench",
        description="Time and peak memory of our Faster R-CNN against torchvision's on the same trunk, head and inputs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    modes = (
        ("inference", "time per image under torch.inference_mode"),
        ("train", "time per training step: forward, backward, SGD step, one image"),
    )
    for mode, help_text in modes:
        p = sub.add_parser(
            mode, help=help_text, description=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        p.add_argument(
            "--backbone", choices=BACKBONES, default="vgg16", help="trunk and RoI head shared by both models"
        )
        p.add_argument(
            "--precision",
            choices=PRECISIONS,
            nargs="+",
            default=["fp32"],
            help="one or more; bf16: autocast (CPU or CUDA); fp16: autocast, CUDA only. With several, each is also compared with torchvision in fp32",
        )
        p.add_argument(
            "--images", type=int, default=5, help="number of fixed random images; each is timed once after the warm-up"
        )
        p.add_argument(
            "--size", type=int, nargs=2, metavar=("H", "W"), default=(375, 500), help="image height and width"
        )
        if mode == "inference":
            p.add_argument(
                "--batch",
                type=int,
                nargs="+",
                default=[1],
                help="images per forward, one or more (e.g. 1 8); time is reported per image",
            )
            p.add_argument(
                "--prepare",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="run ours through prepare_for_inference (channels-last; bf16/fp16 weights and folded batch norm)",
            )
            p.add_argument(
                "--check",
                action="store_true",
                help="first run the answer-equality check (ours vs torchvision on the same proposals; prepared vs not)",
            )
        p.add_argument("--warmup", type=int, default=1, help="untimed iterations before the timed ones")
        p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu', 'cuda'")
        p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; None keeps torch's choice")
        p.add_argument(
            "--min-size",
            type=int,
            default=None,
            help="shorter side both models resize to; None keeps the config's (600; tiny 288)",
        )
        p.add_argument("--seed", type=int, default=0, help="seed for weights, inputs and sampling")
        p.add_argument(
            "--memory",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="measure peak memory (CPU: a fresh process per model); --no-memory times the models interleaved in one process",
        )
        p.add_argument("--json", type=Path, default=None, help="write the figures and settings as JSON to this file")
    return parser


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but no CUDA device is available; use --device cpu")
    return name


def summary(reports: list[dict]) -> str:
    """One line per (precision, batch): ours and torchvision per image, their ratio, and ours against
    torchvision in fp32 at the same batch when fp32 was measured."""
    unit = "s_per_step" if reports[0]["mode"] == "train" else "s_per_img"
    tv_fp32 = {r["batch"]: r[f"torchvision_{unit}"] for r in reports if r["precision"] == "fp32"}
    lines = [f"{'precision':<9} {'batch':>5} {'ours':>8} {'torchvision':>11} {'ours/tv':>8} {'ours/tv fp32':>12}"]
    for r in reports:
        ref = tv_fp32.get(r["batch"])
        vs_fp32 = f"{r[f'ours_{unit}'] / ref:12.3f}" if ref else f"{'-':>12}"
        lines.append(
            f"{r['precision']:<9} {r['batch']:>5} {r[f'ours_{unit}']:8.4f} {r[f'torchvision_{unit}']:11.4f} {r['ratio']:8.3f} {vs_fp32}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    combos = [(precision, batch) for precision in args.precision for batch in getattr(args, "batch", [1])]
    try:
        device = resolve_device(args.device)
        all_settings = [
            Settings(
                mode=args.mode,
                backbone=args.backbone,
                precision=precision,
                device=device,
                images=args.images,
                size=tuple(args.size),
                batch=batch,
                warmup=args.warmup,
                threads=args.threads,
                seed=args.seed,
                memory=args.memory,
                min_size=args.min_size,
                prepare=getattr(args, "prepare", False),
            )
            for precision, batch in combos
        ]
        for settings in all_settings:
            check_settings(settings)
    except ValueError as e:
        parser.error(str(e))
    check = None
    if getattr(args, "check", False):
        check = answer_check(all_settings[0], [p for p in args.precision if p != "fp32"])
        print(format_check(check) + "\n")
    reports = []
    for settings in all_settings:
        reports.append(run_benchmark(settings))
        print(format_report(reports[-1]) + "\n")
    if len(reports) > 1:
        print(summary(reports))
    if args.json is not None:
        out = reports[0] if len(reports) == 1 else {"summary": summary(reports).splitlines(), "reports": reports}
        if check is not None:
            out = {**out, "check": check}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
