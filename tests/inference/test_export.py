"""Exported graphs answer as ``detector.predict`` does: ONNX run by onnxruntime and TorchScript by ``torch.jit.load``,
on real photographs of three sizes (scikit-image's astronaut 512 x 512, coffee 400 x 600, chelsea 300 x 451), for
the committed default detector (a stride-8 trunk, RoIAlign) and a feature-pyramid detector imported from
torchvision's architecture (random weights, calibrated: no COCO file offline). Same count, every detection matched
with its label, boxes within 1e-2 px, scores within 1e-4."""

from __future__ import annotations

import json
import sys

import onnx
import pytest
import torch
from skimage import data

from detector.core import checkpoint
from detector.export import main as export_main
from detector.inference.export import ExportError, export_checkpoint, run_exported, verify_export
from detector.inference.predictor import DetectionPredictor
from detector.models.torchvision_import import import_state_dict
from tests.support.checkpoints import save_detector
from tests.support.images import encode, photo
from tests.support.paths import DEFAULT_DETECTOR
from tests.support.torchvision_models import SIZE, torchvision_model

PHOTOS = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="module")
def fpn_checkpoint(tmp_path_factory):
    """torchvision's MobileNetV3-FPN detector (calibrated random weights) imported, at the 512 px its batch norm
    was calibrated at. (At 320 px, away from that calibration, onnxruntime's kernels differ from torch's by up to
    0.016 px and 1.8e-4 on the astronaut: a random network's sensitivity, not the export's; TorchScript stays
    identical.)"""
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    ours = import_state_dict(arch, torchvision_model(arch).state_dict())
    ours.config.min_size = (SIZE,)
    return save_detector(tmp_path_factory.mktemp("fpn") / "fpn.pt", ours, ours.class_names)


def _check_on_photos(source, out, fmt, photos=PHOTOS):
    predictor = DetectionPredictor.from_checkpoint(source, precision="fp32")
    result = verify_export(predictor, out, fmt, [photo(name)[None] for name in photos])
    assert result["reference_detections"] >= 5, "the photos should give detections to compare"
    assert result["ok"], result
    return result


def test_default_detector_exports_to_onnx_and_answers_as_predict_on_photographs(tmp_path):
    out = tmp_path / "detector.onnx"
    report = export_checkpoint(DEFAULT_DETECTOR, out, "onnx", dynamic=True, verify=False)
    assert report["input_size"] is None
    _check_on_photos(DEFAULT_DETECTOR, out, "onnx")


def test_feature_pyramid_detector_exports_to_onnx_and_answers_as_predict(tmp_path, fpn_checkpoint):
    out = tmp_path / "fpn.onnx"
    export_checkpoint(fpn_checkpoint, out, "onnx", dynamic=True, verify=False)
    result = _check_on_photos(fpn_checkpoint, out, "onnx", ("astronaut", "coffee"))  # none on the cat
    assert result["reference_detections"] > 50  # the calibrated model finds many, near-ties included


def test_onnx_file_carries_the_contract_and_the_class_names(tmp_path):
    out = tmp_path / "fixed.onnx"
    report = export_checkpoint(DEFAULT_DETECTOR, out, "onnx", size=(320, 448))
    assert report["input_size"] == [320, 448] and report["check"]["ok"]
    graph = onnx.load(str(out))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["boxes", "labels", "scores"]
    dims = [d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 320, 448]  # without --dynamic the size is fixed
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta["class_names"]) == checkpoint.load(DEFAULT_DETECTOR)["class_names"]
    assert float(meta["score_threshold"]) == 0.05
    # The graph's scores stop at the evaluation threshold, not the display one.
    image = photo("coffee")[:, :320, :448][None]
    scores = run_exported(out, "onnx", image)["scores"]
    assert (scores >= 0.05).all() and (scores < float(meta["display_score_threshold"])).any()


def test_an_opset_without_half_pixel_roi_align_is_refused_for_a_roi_align_model(tmp_path):
    # At opset 11 torchvision's exporter approximates aligned RoIAlign: the default detector's answers changed.
    with pytest.raises(ExportError, match="opset 16"):
        export_checkpoint(DEFAULT_DETECTOR, tmp_path / "x.onnx", "onnx", opset=11)


def test_selective_search_kinds_are_refused_with_the_reason(tmp_path, kind_checkpoints):
    for kind in ("fast_rcnn", "rcnn"):
        with pytest.raises(ExportError, match="selective search"):
            export_checkpoint(kind_checkpoints[kind], tmp_path / "x.onnx", "onnx")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_cli_writes_torchscript_that_answers_as_predict_on_photographs(tmp_path, capsys):
    out = tmp_path / "detector.pt"
    coffee = tmp_path / "coffee.png"
    coffee.write_bytes(encode(data.coffee(), "PNG"))
    args = ["--checkpoint", str(DEFAULT_DETECTOR), "--format", "torchscript", "--out", str(out)]
    assert export_main([*args, "--check-images", str(coffee)]) == 0
    printed = capsys.readouterr().out
    assert "input [1, 3, H, W] (any size)" in printed and "on 1 image(s)" in printed and "all matched" in printed
    _check_on_photos(DEFAULT_DETECTOR, out, "torchscript")
    extra = {"detector.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(json.loads(extra["detector.json"])["class_names"])[0] == "ellipse"


def test_without_the_export_extra_onnx_export_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as in the service image, which has neither
    with pytest.raises(ExportError, match=r"pip install 'detector\[export\]'"):
        export_checkpoint(DEFAULT_DETECTOR, tmp_path / "x.onnx", "onnx")
