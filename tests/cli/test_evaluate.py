"""``python -m detector.evaluate``: end to end on a tiny VOC-format folder (``--detections``) and on class folders
(``--task classify``), --help's defaults, and a user's mistakes as one line ``error: ...`` (the metrics:
tests/evaluation; running a checkpoint over a split: tests/inference/test_evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detector.core import checkpoint
from detector.core.precision import precision_autocast
from detector.evaluate import main as evaluate_main
from tests.support.paths import DEFAULT_DETECTOR

CPU = torch.device("cpu")


@pytest.fixture
def dets_json(tmp_path):
    # cat: one TP (0.9) of 2 positives -> recall [.5], precision [1].
    #   voc07: p = 1 for t = 0 .. 0.5 (6 thresholds), 0 above: AP = 6/11. voc12: AP = .5 * 1 = 1/2.
    # dog: FP on the cat box (0.95), the difficult dog (0.8, ignored), TP (0.7) of 1 positive
    #   -> recall [0, 0, 1], precision [0, 0, 1/2]. voc07: 1/2 at all 11 thresholds; voc12: 1/2.
    # mAP voc07 = (6/11 + 1/2) / 2 = 23/44 = 52.27%; voc12 = 1/2.
    path = tmp_path / "dets.json"
    dets = [
        {"image_id": "000001", "label": "cat", "score": 0.9, "box": [1, 1, 20, 20]},
        {"image_id": "000001", "label": "dog", "score": 0.8, "box": [30, 10, 60, 40]},
        {"image_id": "000002", "label": "dog", "score": 0.7, "box": [5, 5, 40, 40]},
        {"image_id": "000002", "label": "dog", "score": 0.95, "box": [41, 1, 64, 30]},
    ]
    path.write_text(json.dumps(dets))
    return path


def test_cli_end_to_end(voc_root, dets_json, tmp_path, capsys):
    out, plots = tmp_path / "out" / "results.json", tmp_path / "plots"
    args = ["--detections", str(dets_json), "--data", str(voc_root), "--split", "test"]
    assert evaluate_main([*args, "--json", str(out), "--plots", str(plots)]) == 0

    printed = capsys.readouterr().out
    assert "mAP (voc07, IoU >= 0.5, 2 classes): 52.27%" in printed
    assert "54.55" in printed and "50.00" in printed  # cat 6/11, dog 1/2

    results = json.loads(out.read_text())
    assert results["metric"] == "voc07"
    assert results["iou"] == 0.5
    assert results["map"] == pytest.approx(23 / 44)
    assert results["ap"] == {"cat": pytest.approx(6 / 11), "dog": pytest.approx(0.5)}
    assert results["num_positives"] == {"cat": 2, "dog": 1}

    assert sorted(p.name for p in plots.iterdir()) == ["pr_cat.png", "pr_dog.png", "summary.png"]
    for png in plots.iterdir():
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100

    assert evaluate_main([*args, "--metric", "voc12"]) == 0
    assert "mAP (voc12, IoU >= 0.5, 2 classes): 50.00%" in capsys.readouterr().out


def test_cli_coco_metric_reports_pycocotools_figures_with_map_first(voc_root, dets_json, tmp_path, capsys):
    out = tmp_path / "coco.json"
    args = ["--detections", str(dets_json), "--data", str(voc_root), "--split", "test", "--metric", "coco"]
    assert evaluate_main([*args, "--json", str(out), "--plots", str(tmp_path / "plots")]) == 0
    printed = capsys.readouterr().out
    assert "COCO AP@[.5:.95]" in printed and "no precision-recall plots" in printed
    results = json.loads(out.read_text())
    assert results["metric"] == "coco" and set(results["ap"]) == {"cat", "dog"}
    for key in ("map", "map50", "map75", "ar100"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["map50"] >= results["map"] >= results["map75"]
    assert evaluate_main([*args[:-1], "all", "--json", str(out)]) == 0
    both = json.loads(out.read_text())
    assert both["metric"] == "voc07" and both["map"] == pytest.approx(23 / 44) and both["coco"] == results


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing detections", "No such file"),
        ("bad json", "not valid JSON"),
        ("unknown label", "entry 0: field \"label\" is 'horse'"),
        ("missing data", "dataset folder not found"),
    ],
)
def test_cli_user_errors_exit_with_one_line(voc_root, tmp_path, case, expected):
    dets, data = tmp_path / "dets.json", voc_root
    if case == "bad json":
        dets.write_text("[{")
    elif case == "unknown label":
        dets.write_text(json.dumps([{"image_id": "000001", "label": "horse", "score": 1, "box": [1, 1, 2, 2]}]))
    elif case == "missing data":
        dets.write_text("[]")
        data = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--detections", str(dets), "--data", str(data)])
    message = str(info.value.code)
    assert message.startswith("error: ") and expected in message and "\n" not in message


def test_cli_help_shows_defaults_and_requires_a_source(capsys):
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "(default: voc07)" in help_text and "(default: 0.5)" in help_text and "(default: test)" in help_text
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--data", "x"])
    assert info.value.code == 2
    assert "--detections" in capsys.readouterr().err


def test_cli_prints_the_table_and_writes_json_and_plot(channel_classifier, colour_folders, tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["--task", "classify", "--checkpoint", str(channel_classifier), "--data", str(colour_folders),
            "--split", "test", "--workers", "0", "--no-progress", "--json", str(out),
            "--plots", str(tmp_path / "plots")]  # fmt: skip
    assert evaluate_main(args) == 0
    printed = capsys.readouterr().out
    assert "top-1 0.8750" in printed and "red" in printed and "0.750" in printed
    saved = json.loads(out.read_text())
    assert (
        saved["top1"] == pytest.approx(0.875)
        and saved["split"] == "test"
        and saved["checkpoint"] == str(channel_classifier)
    )
    assert np.array(saved["confusion"]).sum() == 8
    assert (tmp_path / "plots" / "confusion_matrix.png").stat().st_size > 5_000


def test_cli_errors_name_the_file_or_folder(channel_classifier, colour_folders, tmp_path):
    common = ["--task", "classify", "--workers", "0", "--no-progress"]
    with pytest.raises(SystemExit, match="nothing.pt does not exist"):
        evaluate_main([*common, "--checkpoint", str(tmp_path / "nothing.pt"), "--data", str(colour_folders)])
    with pytest.raises(SystemExit, match=r"split folder .*val does not exist"):
        evaluate_main(
            [*common, "--checkpoint", str(channel_classifier), "--data", str(colour_folders), "--split", "val"]
        )
    (tmp_path / "extra" / "test" / "purple").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"class folders \['purple'\] that are not among the classes"):
        evaluate_main([*common, "--checkpoint", str(channel_classifier), "--data", str(tmp_path / "extra")])
    detector_ckpt = tmp_path / "detector.pt"
    checkpoint.save(detector_ckpt, {"kind": "faster_rcnn", "model_config": {}, "class_names": [], "model": {}})
    with pytest.raises(SystemExit, match="not a classifier"):
        evaluate_main([*common, "--checkpoint", str(detector_ckpt), "--data", str(colour_folders)])


def test_detection_evaluation_still_needs_its_own_arguments(tmp_path, capsys):
    # Without --task (or with --task detect) the detection parser answers, as before.
    with pytest.raises(SystemExit):
        evaluate_main(["--task", "detect", "--data", str(tmp_path)])
    assert "one of the arguments --detections --checkpoint is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main(["--task", "classify", "--help"])
    assert "--tta" in capsys.readouterr().out


def test_fp16_on_the_cpu_is_refused_with_a_clear_message(tiny_voc):
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        precision_autocast(CPU, "fp16")
    with pytest.raises(SystemExit, match="fp16 needs CUDA"):
        evaluate_main(["--checkpoint", DEFAULT_DETECTOR, "--data", str(tiny_voc), "--split", "test",
                       "--precision", "fp16", "--device", "cpu"])  # fmt: skip
