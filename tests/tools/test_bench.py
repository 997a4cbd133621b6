"""Smoke tests for the benchmark (detector.tools.bench, run as python -m detector.bench): a run's report is consistent;
the compared models start from identical weights; a feature-pyramid run compares ours with torchvision's own model and
the two answer identically. Figures are not checked: timings belong in the printed benchmark.
The command line (several runs, the answer check, usage errors): tests/cli/test_bench.py."""

import json

import pytest
import torch

from detector.tools.bench.check import answer_check
from detector.tools.bench.measure import run_benchmark
from detector.tools.bench.models import build_model
from detector.tools.bench.report import format_report
from detector.tools.bench.settings import Settings, check_settings
from tests.support.learning import one_thread

# One 96x128 image, resized to 96 rather than tiny's 320, keeps both runs to a few seconds.
TINY = dict(backbone="tiny", images=1, size=(96, 128), min_size=96, warmup=0, device="cpu", threads=2, memory=False)
# The cheapest pyramid, one 64x64 image resized to 64 rather than the preset's 800, on one thread: its many small
# convolutions took 10x longer on two threads on a busy 2-core machine.
FPN_TINY = {**TINY, "backbone": "mobilenet_v3_large_fpn", "size": (64, 64), "min_size": 64, "threads": 1}


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


def test_fpn_run_compares_ours_with_torchvisions_own_model_which_answers_identically():
    settings = Settings(mode="inference", **FPN_TINY)
    with one_thread():  # gives the thread count back after the run sets it
        report = run_benchmark(settings)
        check = answer_check(settings, [])  # low precisions: tests/cli/test_bench.py
    assert set(report["runs"]) == {"ours", "torchvision"}  # no ours_roi_pool: a pyramid pools with RoIAlign only
    ours, tv = report["ours_s_per_img"], report["torchvision_s_per_img"]
    assert ours > 0 and tv > 0 and report["ratio"] == ours / tv
    assert report["ours_roi_pool_s_per_img"] is None and report["min_size"] == 64
    text = format_report(report)
    assert "ours (imported weights)" in text and "torchvision's own model" in text and "ratio ours/torchvision" in text

    fp32 = check["ours_vs_torchvision"]
    assert fp32["identical"] and fp32["detections"][0] > 0  # calibrated weights: detections pass the threshold
    assert fp32["max_box_diff_px"] == 0.0 and fp32["max_score_diff"] == 0.0
    with pytest.raises(ValueError, match="does not apply"):
        build_model("ours_roi_pool", "mobilenet_v3_large_fpn", seed=0, weights={})
    with pytest.raises(ValueError, match="inference only"):
        check_settings(Settings(mode="train", backbone="resnet50_fpn"))
