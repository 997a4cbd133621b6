"""Smoke tests for the benchmark (detector.tools.bench, run as python -m detector.bench): a run's report is consistent;
the compared models start from identical weights. Figures are not checked: timings belong in the printed benchmark.
The command line (several runs, the answer check, usage errors): tests/cli/test_bench.py."""

import json

import pytest
import torch

from detector.tools.bench.measure import run_benchmark
from detector.tools.bench.models import build_model
from detector.tools.bench.report import format_report
from detector.tools.bench.settings import Settings

# One 96x128 image, resized to 96 rather than tiny's 320, keeps both runs to a few seconds.
TINY = dict(backbone="tiny", images=1, size=(96, 128), min_size=96, warmup=0, device="cpu", threads=2, memory=False)


@pytest.mark.parametrize("mode, unit", [("inference", "s_per_img"), ("train", "s_per_step")])
def test_report_is_consistent(mode, unit):
    # What ``python -m detector.bench MODE`` runs with these options: it prepares the model for inference only.
    raw = run_benchmark(Settings(mode=mode, prepare=mode == "inference", **TINY))
    report = json.loads(json.dumps(raw))  # as --json writes it
    ours, tv = report[f"ours_{unit}"], report[f"torchvision_{unit}"]
    assert isinstance(ours, float) and ours > 0
    assert isinstance(tv, float) and tv > 0
    assert report["ratio"] == ours / tv
    assert report["ours_peak_mb"] is None and report["torchvision_peak_mb"] is None  # memory=False
    assert report[f"ours_roi_pool_{unit}"] > 0
    assert report["min_size"] == 96
    assert set(report["detections_first_image"]) == {"ours", "torchvision", "ours_roi_pool"}
    assert (report["backbone"], report["precision"], report["device"], report["size"], report["threads"]) == (
        "tiny",
        "fp32",
        "cpu",
        [96, 128],
        2,
    )
    for key in ("batch", "images", "torch", "cpu", "date"):
        assert key in report
    assert "ratio ours/torchvision" in format_report(raw)


def test_models_start_from_identical_weights():
    ours = build_model("ours", "tiny", seed=3)
    pool = build_model("ours_roi_pool", "tiny", seed=3)
    tv = build_model("torchvision", "tiny", seed=3)
    pairs = [
        (ours.backbone.body, tv.backbone),
        (ours.roi_heads.head, tv.roi_heads.box_head),
        (ours.rpn.head, tv.rpn.head.head),
        (ours.roi_heads.predictor, tv.roi_heads.box_predictor),
        (ours, pool),
    ]
    for a, b in pairs:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    other = build_model("torchvision", "tiny", seed=4)
    assert not torch.equal(other.rpn.head.head.conv.weight, tv.rpn.head.head.conv.weight)  # the seed matters
