"""Classifier evaluation (detector.inference.evaluate, ``python -m detector.evaluate --task classify``) with a hand-made
classifier whose every answer is known: softmax regression that names the brightest colour channel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detector.classify.models import CLASSIFIER_KIND, build_classifier
from detector.core import checkpoint
from detector.evaluate import main as evaluate_main
from detector.inference.evaluate import evaluate_classifier_checkpoint as evaluate_checkpoint

CLASSES = ["red", "green", "blue"]  # label i is colour channel i
COLOURS = {"red": (220, 20, 20), "green": (20, 220, 20), "blue": (20, 20, 220)}
SIZE = 8


@pytest.fixture(scope="module")
def channel_classifier(tmp_path_factory):
    """Softmax regression on 8 x 8 inputs whose logit k is the sum of channel k: it answers the dominant colour."""
    model = build_classifier("softmax", num_classes=3, input_size=(3, SIZE, SIZE))
    with torch.no_grad():
        # Flattened [3, 8, 8] input: channel k occupies features k*64 .. k*64+63.
        model.head.weight.copy_(torch.eye(3).repeat_interleave(SIZE * SIZE, dim=1))
        model.head.bias.zero_()
    config = {"name": "softmax", "num_classes": 3, "input_size": [3, SIZE, SIZE], "activation": "relu", "init": None,
              "hidden_sizes": [], "dropout": 0.0, "batch_norm": False}  # fmt: skip
    path = tmp_path_factory.mktemp("classifier") / "channels.pt"
    checkpoint.save(
        path,
        checkpoint.model_payload(
            model, kind=CLASSIFIER_KIND, config=config, class_names=CLASSES, train_config={"augment": "none"}
        ),
    )
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """test/red: 3 red images and 1 green one (mislabelled); test/green: 2 green; test/blue: 2 blue.
    The classifier is right on 7 of 8: red 3/4, green 2/2, blue 2/2, and the wrong one is red called green."""
    root = tmp_path_factory.mktemp("folders")
    content = {"red": ["red", "red", "red", "green"], "green": ["green", "green"], "blue": ["blue", "blue"]}
    for label, colours in content.items():
        (root / "test" / label).mkdir(parents=True)
        for i, colour in enumerate(colours):
            Image.new("RGB", (20, 14), COLOURS[colour]).save(root / "test" / label / f"{i}.png")
    return root


def test_accuracy_per_class_and_confusion_are_counted(channel_classifier, folders):
    result = evaluate_checkpoint(channel_classifier, folders, "test")
    assert result["images"] == 8
    assert result["top1"] == pytest.approx(7 / 8)
    assert result["topk"] == 3 and result["top5"] == 1.0  # top-3 of 3 classes
    assert result["per_class"] == {
        "red": {"accuracy": 0.75, "correct": 3, "images": 4},
        "green": {"accuracy": 1.0, "correct": 2, "images": 2},
        "blue": {"accuracy": 1.0, "correct": 2, "images": 2},
    }
    assert result["confusion"] == [[3, 1, 0], [0, 2, 0], [0, 0, 2]]  # rows true, columns predicted
    assert result["classes"] == CLASSES and result["input_size"] == SIZE and result["preset"] == "none"


def test_ten_crop_views_of_flat_images_change_nothing(channel_classifier, folders):
    # Every crop and mirror of a one-colour image is the same image: the averaged answer is the plain one.
    result = evaluate_checkpoint(channel_classifier, folders, "test", tta="10crop")
    assert result["tta"] == "10crop" and result["top1"] == pytest.approx(7 / 8)
    assert result["confusion"] == [[3, 1, 0], [0, 2, 0], [0, 0, 2]]
    with pytest.raises(ValueError, match="multiscale"):
        evaluate_checkpoint(channel_classifier, folders, "test", tta="multiscale")  # softmax takes only 8 x 8


def test_a_half_precision_export_scores_the_same(channel_classifier, folders, tmp_path):
    half = checkpoint.export(channel_classifier, tmp_path / "half.pt", half=True)
    assert checkpoint.load(half)["model"]["head.weight"].dtype == torch.float16
    a = evaluate_checkpoint(channel_classifier, folders, "test")
    b = evaluate_checkpoint(half, folders, "test")
    assert b["confusion"] == a["confusion"]
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)


def test_cli_prints_the_table_and_writes_json_and_plot(channel_classifier, folders, tmp_path, capsys):
    out = tmp_path / "eval.json"
    args = ["--task", "classify", "--checkpoint", str(channel_classifier), "--data", str(folders), "--split", "test", "--workers", "0",
            "--no-progress", "--json", str(out), "--plots", str(tmp_path / "plots")]  # fmt: skip
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


def test_cli_errors_name_the_file_or_folder(channel_classifier, folders, tmp_path):
    common = ["--task", "classify", "--workers", "0", "--no-progress"]
    with pytest.raises(SystemExit, match="nothing.pt does not exist"):
        evaluate_main([*common, "--checkpoint", str(tmp_path / "nothing.pt"), "--data", str(folders)])
    with pytest.raises(SystemExit, match=r"split folder .*val does not exist"):
        evaluate_main([*common, "--checkpoint", str(channel_classifier), "--data", str(folders), "--split", "val"])
    (tmp_path / "extra" / "test" / "purple").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"class folders \['purple'\] that are not among the classes"):
        evaluate_main([*common, "--checkpoint", str(channel_classifier), "--data", str(tmp_path / "extra")])
    detector_ckpt = tmp_path / "detector.pt"
    checkpoint.save(detector_ckpt, {"kind": "faster_rcnn", "model_config": {}, "class_names": [], "model": {}})
    with pytest.raises(SystemExit, match="not a classifier"):
        evaluate_main([*common, "--checkpoint", str(detector_ckpt), "--data", str(folders)])


def test_detection_evaluation_still_needs_its_own_arguments(tmp_path, capsys):
    # Without --task (or with --task detect) the detection parser answers, as before.
    with pytest.raises(SystemExit):
        evaluate_main(["--task", "detect", "--data", str(tmp_path)])
    assert "one of the arguments --detections --checkpoint is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main(["--task", "classify", "--help"])
    assert "--tta" in capsys.readouterr().out
