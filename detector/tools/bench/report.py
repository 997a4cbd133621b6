"""The printed report of one benchmark run and the summary over several (precisions x batch sizes)."""

from __future__ import annotations

from detector.core.devices import CPUInfo
from detector.models.fpn import FPN_BACKBONES

LABELS = {
    "ours": "ours (roi_align)",
    "torchvision": "torchvision (roi_align)",
    "ours_roi_pool": "ours (roi_pool, default)",
}
FPN_LABELS = {"ours": "ours (imported weights)", "torchvision": "torchvision's own model"}


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
    fpn = report["backbone"] in FPN_BACKBONES
    labels = FPN_LABELS if fpn else LABELS
    h, w = report["size"]
    device = report["gpu"] or _cpu_line(report)
    lines = [
        f"{report['mode']}: backbone {report['backbone']}, {report['precision']}, {report['device']} ({device}), "
        f"{report['threads']} threads, torch {report['torch']}, torchvision {report['torchvision']}",
        f"{report['images']} images {h}x{w} "
        f"(resized to shorter side {report['min_size']}, longer <= {report['max_size']}), "
        + ("batch 1 (one image per step)" if train else f"batch {report['batch']}")
        + f", {report['warmup']} warm-up, median over the rest",
        "",
        f"{'model':<26} {('s/step' if train else 's/img'):>9} {'peak MB':>9} {'dets img0':>10}"
        + ("  first loss" if train else ""),
    ]
    for name, r in report["runs"].items():
        if r.get("error"):
            lines.append(f"{labels[name]:<26} failed: {r['error']}")
            continue
        peak = f"{r['peak_mb']:9.1f}" if r["peak_mb"] is not None else f"{'-':>9}"
        loss = f"  {r['first_loss']:10.4f}" if train else ""
        lines.append(f"{labels[name]:<26} {r['seconds']:9.4f} {peak} {r['detections_first_image']:>10}{loss}")
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
        "detections: counts on the first image with random weights calibrated on it; the same architecture on the same "
        "weights (--check compares them)"
        if fpn
        else "detections: counts on the first image with random weights (models differ in details; not expected to "
        "match)",
    ]
    return "\n".join(lines)


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
            f"{r['precision']:<9} {r['batch']:>5} {r[f'ours_{unit}']:8.4f} {r[f'torchvision_{unit}']:11.4f} "
            f"{r['ratio']:8.3f} {vs_fp32}"
        )
    return "\n".join(lines)
