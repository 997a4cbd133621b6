"""Timing and peak memory of each compared model on the fixed inputs, and the JSON report of one run.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per model) minus what the inputs hold; on CPU the
growth of the peak resident set size (``ru_maxrss``) over the RSS after building the inputs, each model measured
in a fresh spawned process (``ru_maxrss`` is a process-lifetime peak). Both include the weights.
"""

from __future__ import annotations

import datetime
import functools
import gc
import multiprocessing
import os
import platform
import resource
import statistics
import sys
from dataclasses import asdict

import torch
import torchvision
from torch import Tensor, nn

from detector.core.devices import cpu_info
from detector.core.precision import precision_autocast
from detector.inference.prepare import prepare_for_inference
from detector.tools.bench.models import build_model, model_config, model_names
from detector.tools.bench.settings import Settings, check_settings, make_inputs, run_weights
from detector.tools.timing import timed


# --- memory -------------------------------------------------------------------------------------------
def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak so far is the best available stand-in
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def memory_method(settings: Settings) -> str:
    if not settings.memory:
        return "not measured (--no-memory)"
    if settings.device.startswith("cuda"):
        return "CUDA torch.cuda.max_memory_allocated minus the inputs, reset per model, one process"
    return "CPU peak RSS growth (ru_maxrss minus RSS after building the inputs), a fresh spawned process per model"


# --- timing -------------------------------------------------------------------------------------------
def _batches(images: list[Tensor], size: int) -> list[list[Tensor]]:
    return [images[i : i + size] for i in range(0, len(images), size)]


def _autocast(settings: Settings, device: torch.device):
    return precision_autocast(device, settings.precision)


def _seconds_per_image(model: nn.Module, batch: list[Tensor], settings: Settings, device: torch.device) -> float:
    """One timed inference forward of ``batch`` at the settings' precision (inside ``inference_mode``)."""
    with _autocast(settings, device):
        _, seconds = timed(lambda: model(batch), device)
    return seconds / len(batch)


def _time_inference(model: nn.Module, images: list[Tensor], settings: Settings, device: torch.device) -> list[float]:
    """Seconds per image of each batch after ``settings.warmup`` untimed ones (cycling through the batches)."""
    batches = _batches(images, settings.batch)
    times = []
    with torch.inference_mode():
        for i in range(settings.warmup + len(batches)):
            seconds = _seconds_per_image(model, batches[i % len(batches)], settings, device)
            if i >= settings.warmup:
                times.append(seconds)
    return times


def _time_training(
    model: nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]], settings: Settings, device: torch.device
) -> tuple[list[float], float]:
    """Seconds per training step (forward, backward, SGD step on one image) after the warm-up ones, and the
    first step's loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.precision == "fp16")

    def step(j: int) -> Tensor:
        with _autocast(settings, device):
            losses = model([images[j]], [targets[j]])
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss

    times, first_loss = [], None
    for i in range(settings.warmup + len(images)):
        loss, seconds = timed(functools.partial(step, i % len(images)), device)
        if i == 0:
            first_loss = float(loss.detach())
        if i >= settings.warmup:
            times.append(seconds)
    return times, first_loss


# --- one model, all models ------------------------------------------------------------------------------
def _run_record(detections: int | None, error: str | None = None) -> dict:
    """A model's entry in the report before it is timed (or when it failed: ``error``, its last line)."""
    run = {"seconds": None, "times": [], "peak_mb": None, "detections_first_image": detections, "first_loss": None}
    if error is not None:
        run["error"] = error
    return run


def _error_line(e: Exception) -> str:
    return str(e).strip().splitlines()[-1]


def build_timed_model(
    name: str, settings: Settings, device: torch.device, weights: dict[str, Tensor] | None = None
) -> nn.Module:
    """The model as timed: ours prepared for inference (``--prepare``, inference only), torchvision as built."""
    model = build_model(name, settings.backbone, settings.seed, settings.min_size, weights).to(device).eval()
    if settings.mode == "inference" and settings.prepare and name != "torchvision":
        prepare_for_inference(model, settings.precision)
    return model


def measure(name: str, settings: Settings, track_memory: bool, weights: dict[str, Tensor] | None = None) -> dict:
    """Builds one model (on ``weights``, ``run_weights``' state dict) and times it on the fixed inputs. Returns
    {"seconds" (median per image or per step), "times", "peak_mb" (None unless ``track_memory``),
    "detections_first_image", "first_loss" (train only)}. ``track_memory`` on CPU assumes a fresh process:
    ru_maxrss is a process-lifetime peak. ``weights`` count in neither model's memory (the model's own copy does)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    images, targets = make_inputs(settings)
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    if weights is not None:
        # Private copies before the baseline: tensors pickled into a spawned process arrive in shared memory, whose
        # pages would join this process's RSS only when the model copies them in, counting them twice.
        weights = {k: v.clone() for k, v in weights.items()}
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
    else:
        baseline = _current_rss_mb()

    model = build_timed_model(name, settings, device, weights)
    torch.manual_seed(settings.seed)  # the same sampling randomness for every model
    with torch.inference_mode(), _autocast(settings, device):
        detections = len(model([images[0]])[0]["boxes"])
    first_loss = None
    if settings.mode == "inference":
        times = _time_inference(model, images, settings, device)
    else:
        times, first_loss = _time_training(model, images, targets, settings, device)

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


def measure_interleaved(settings: Settings) -> dict[str, dict]:
    """Inference without memory figures: all models in this process, timed in turn on each batch (ours,
    torchvision, ours_roi_pool, ours, ...), so a load change on a shared machine hits them alike.
    Returns ``measure``'s dict per model (``peak_mb`` None); a failing extra model gets an ``error``."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    images = [im.to(device) for im in make_inputs(settings)[0]]
    batches = _batches(images, settings.batch)
    weights = run_weights(settings)
    models, runs = {}, {}
    for name in model_names(settings.backbone):
        try:
            model = build_timed_model(name, settings, device, weights)
            with torch.inference_mode(), _autocast(settings, device):
                detections = len(model([images[0]])[0]["boxes"])
            models[name] = model
            runs[name] = _run_record(detections)
        except RuntimeError as e:
            if name in ("ours", "torchvision"):
                raise
            runs[name] = _run_record(None, _error_line(e))
    with torch.inference_mode():
        for i in range(settings.warmup + len(batches)):
            for name, model in models.items():
                seconds = _seconds_per_image(model, batches[i % len(batches)], settings, device)
                if i >= settings.warmup:
                    runs[name]["times"].append(seconds)
    for name in models:
        runs[name]["seconds"] = statistics.median(runs[name]["times"])
    return runs


def _measure_in_fresh_process(name: str, settings: Settings, weights: dict[str, Tensor] | None) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (name, settings, True, weights))


def measure_all(settings: Settings) -> dict[str, dict]:
    """``measure``'s dict per model: interleaved in this process for inference without memory figures, else one
    model after another (on CPU with memory figures, each in a fresh process)."""
    if settings.mode == "inference" and not settings.memory:
        return measure_interleaved(settings)
    fresh_process = settings.memory and not settings.device.startswith("cuda")
    weights = run_weights(settings)
    runs = {}
    for name in model_names(settings.backbone):
        try:
            runs[name] = (
                _measure_in_fresh_process(name, settings, weights)
                if fresh_process
                else measure(name, settings, settings.memory, weights)
            )
        except RuntimeError as e:
            if name in ("ours", "torchvision"):
                raise
            # The extra line must not sink the comparison (e.g. torchvision's CPU roi_pool has no bf16 kernel).
            runs[name] = _run_record(None, _error_line(e))
        gc.collect()
    return runs


# --- the report of one run ------------------------------------------------------------------------------
def run_benchmark(settings: Settings) -> dict:
    """Measures the compared models (``model_names``) in turn; returns the JSON report (figures, settings,
    environment). ``ours_roi_pool_*`` are None where that model failed or does not apply (feature pyramids)."""
    check_settings(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    runs = measure_all(settings)
    unit = "s_per_img" if settings.mode == "inference" else "s_per_step"
    cfg = model_config(settings.backbone, min_size=settings.min_size)
    ours, tv = runs["ours"], runs["torchvision"]
    cpu = cpu_info()
    return {
        f"ours_{unit}": ours["seconds"],
        f"torchvision_{unit}": tv["seconds"],
        "ratio": ours["seconds"] / tv["seconds"],
        "ours_peak_mb": ours["peak_mb"],
        "torchvision_peak_mb": tv["peak_mb"],
        "memory_ratio": ours["peak_mb"] / tv["peak_mb"] if settings.memory else None,
        f"ours_roi_pool_{unit}": runs.get("ours_roi_pool", {}).get("seconds"),
        "ours_roi_pool_peak_mb": runs.get("ours_roi_pool", {}).get("peak_mb"),
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
