"""``python -m detector.bench onnx``: a checkpoint exported to ONNX and run by onnxruntime (CPU) against our eager
model in fp32 and bf16 (the predictor ``detector.predict`` runs, prepared for its precision), on the same images,
interleaved image by image in one process, so each ratio is measured in one run. Also checks the ONNX answers
against eager fp32's on the timed images (``detector.inference.export.verify_export``)."""

from __future__ import annotations

import functools
import statistics
import tempfile
from pathlib import Path

import onnxruntime
import torch

from detector.core.devices import cpu_info
from detector.inference.export import example_image, export_checkpoint, load_exported, verify_export
from detector.inference.predictor import DetectionPredictor
from detector.tools.timing import timed

RUNNERS = ("onnxruntime fp32", "eager fp32", "eager bf16")
CPU = torch.device("cpu")  # onnxruntime runs on the CPU, and so does eager here


def bench_onnx(checkpoint: str | Path, *, images: int = 4, size: tuple[int, int] = (375, 500), warmup: int = 1) -> dict:
    """Median s/img of each of ``RUNNERS`` over ``images`` smooth random images of ``size`` (H, W), after ``warmup``
    untimed rounds; the ratios onnxruntime / eager; the export check on those images."""
    threads = torch.get_num_threads()
    eager = {p: DetectionPredictor.from_checkpoint(checkpoint, precision=p) for p in ("fp32", "bf16")}
    inputs = [example_image(*size, seed=i) for i in range(images)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_checkpoint(checkpoint, path, "onnx", dynamic=True, verify=False)
        graph = load_exported(path, "onnx", threads=threads)  # the same cores as torch's, for a fair ratio
        run = {
            "onnxruntime fp32": graph,
            "eager fp32": lambda x: eager["fp32"].predict_batch([x[0]]),
            "eager bf16": lambda x: eager["bf16"].predict_batch([x[0]]),
        }
        times: dict[str, list[float]] = {name: [] for name in RUNNERS}
        for i, x in enumerate(inputs[:warmup] + inputs):
            for name in RUNNERS:  # interleaved: a load change hits all three alike
                _, seconds = timed(functools.partial(run[name], x), CPU)
                if i >= warmup:
                    times[name].append(seconds)
        check = verify_export(eager["fp32"], path, "onnx", inputs)
        size_mb = path.stat().st_size / 2**20
    s_per_img = {name: statistics.median(t) for name, t in times.items()}
    return {
        "checkpoint": str(checkpoint),
        "backbone": eager["fp32"].model.config.backbone,
        "cpu": cpu_info().line(),
        "threads": threads,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "images": images,
        "size": list(size),
        "onnx_mb": round(size_mb, 1),
        "s_per_img": s_per_img,
        "ratio_onnx_to_eager_fp32": s_per_img["onnxruntime fp32"] / s_per_img["eager fp32"],
        "ratio_onnx_to_eager_bf16": s_per_img["onnxruntime fp32"] / s_per_img["eager bf16"],
        "check": check,
    }


def format_onnx_report(r: dict) -> str:
    h, w = r["size"]
    lines = [
        f"onnx: {r['checkpoint']} ({r['backbone']}), {r['cpu']}, {r['threads']} threads, onnxruntime "
        f"{r['onnxruntime']}, torch {r['torch']}",
        f"{r['images']} images {h}x{w}, interleaved, median s/img; ONNX file {r['onnx_mb']} MB",
        *(f"  {name:18s} {r['s_per_img'][name]:.4f}" for name in RUNNERS),
        f"  onnxruntime / eager fp32: {r['ratio_onnx_to_eager_fp32']:.3f}   "
        f"onnxruntime / eager bf16: {r['ratio_onnx_to_eager_bf16']:.3f}",
        f"  answers vs eager fp32: {r['check']['reference_detections']} detections, matched "
        f"{r['check']['matched_fraction']:.0%}, max box diff {r['check']['max_box_diff_px']:.2g} px, score "
        f"{r['check']['max_score_diff']:.2g} ({'within' if r['check']['ok'] else 'OUTSIDE'} 1e-2 px / 1e-4)",
    ]
    return "\n".join(lines)
