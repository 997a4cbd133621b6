"""``python -m detector.bench``: one report per (precision, batch) with a summary and the answer check in one JSON
file, and a usage error for what the device cannot run (one run's report: tests/tools/test_bench.py)."""

import json

import pytest

from detector.tools.bench.cli import main

# One 96x128 image, resized to 96 rather than tiny's 320, keeps the runs to a few seconds.
TINY = ["--backbone", "tiny", "--images", "1", "--size", "96", "128", "--min-size", "96", "--warmup", "0"]
TINY += ["--device", "cpu", "--threads", "2", "--no-memory"]


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
    assert "prepared_bf16_vs_fp32" in check and "torchvision_bf16_vs_fp32" in check
    assert "ours/tv fp32" in capsys.readouterr().out


def test_onnx_mode_times_onnxruntime_against_eager_and_checks_its_answers(tmp_path, capsys):
    out = tmp_path / "onnx.json"
    args = ["onnx", "--images", "1", "--size", "120", "160", "--warmup", "0", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime / eager fp32" in printed and "within 1e-2 px / 1e-4" in printed
    report = json.loads(out.read_text())
    assert set(report["s_per_img"]) == {"onnxruntime fp32", "eager fp32", "eager bf16"}
    assert all(t > 0 for t in report["s_per_img"].values()) and report["check"]["ok"]
