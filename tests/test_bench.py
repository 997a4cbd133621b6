"""Smoke tests for the benchmark (detector.tools.bench, run as python -m detector.bench): the CLI runs end to end
and its JSON is consistent; the compared models start from identical weights. Figures are not checked: timings
belong in the printed benchmark."""

import json

import pytest
import torch

from detector.tools.bench.cli import main
from detector.tools.bench.models import build_model

# One 96x128 image, resized to 96 rather than tiny's 320, keeps both runs to a few seconds.
TINY = ["--backbone", "tiny", "--images", "1", "--size", "96", "128", "--min-size", "96", "--warmup", "0"]
TINY += ["--device", "cpu", "--threads", "2", "--no-memory"]


@pytest.mark.parametrize("mode, unit", [("inference", "s_per_img"), ("train", "s_per_step")])
def test_cli_writes_consistent_json(tmp_path, capsys, mode, unit):
    out = tmp_path / "bench.json"
    assert main([mode, *TINY, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    ours, tv = report[f"ours_{unit}"], report[f"torchvision_{unit}"]
    assert isinstance(ours, float) and ours > 0
    assert isinstance(tv, float) and tv > 0
    assert report["ratio"] == ours / tv
    assert report["ours_peak_mb"] is None and report["torchvision_peak_mb"] is None  # --no-memory
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
    assert "ratio ours/torchvision" in capsys.readouterr().out


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


def test_fp16_on_cpu_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["inference", "--backbone", "tiny", "--device", "cpu", "--precision", "fp16"])
    assert "fp16 needs CUDA" in capsys.readouterr().err


def test_several_batches_and_precisions_with_the_answer_check(tmp_path, capsys):
    """One report per (precision, batch), a summary against torchvision in fp32, and the check: ours and
    torchvision's RoI heads answer identically on the same proposals."""
    out = tmp_path / "bench.json"
    argv = [
        "inference",
        *TINY,
        "--images",
        "2",
        "--batch",
        "1",
        "2",
        "--precision",
        "fp32",
        "bf16",
        "--check",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [(r["precision"], r["batch"]) for r in report["reports"]] == [
        ("fp32", 1),
        ("fp32", 2),
        ("bf16", 1),
        ("bf16", 2),
    ]
    assert len(report["summary"]) == 1 + 4
    check = report["check"]
    assert check["transform_equal"] and check["features_max_diff"] == 0.0
    roi = check["roi_heads_same_proposals"]
    assert roi["same_labels_in_order"] and roi["max_box_diff_px"] == 0.0 and roi["max_score_diff"] == 0.0
    assert check["prepared_fp32_vs_fp32"]["same_labels_in_order"]
    assert "prepared_bf16_vs_fp32" in check
    assert "ours/tv fp32" in capsys.readouterr().out
