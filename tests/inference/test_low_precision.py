"""Low-precision inference: core.precision.precision_autocast, bf16 predictors over a dataset and
inference.prepare_for_inference keep the trained default detector's answers (bf16 on the CPU). fp16 on the CPU is
refused: tests/cli/test_evaluate.py."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, FrozenBatchNorm2d

from detector.core.precision import precision_autocast
from detector.data.voc import VOCDetection
from detector.evaluation.compare import match_detections
from detector.inference.evaluate import evaluate_detector, predict_dataset
from detector.inference.predictor import DetectionPredictor
from detector.inference.prepare import fold_frozen_batch_norm, prepare_for_inference
from detector.models.backbones import build_backbone
from detector.models.factory import load_detector
from detector.models.torchvision_import import import_state_dict
from tests.support.checkpoints import save_detector
from tests.support.images import photo
from tests.support.paths import DEFAULT_DETECTOR
from tests.support.torchvision_models import SIZE, torchvision_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def default_detector():
    model, _ = load_detector(DEFAULT_DETECTOR)
    return model


def test_bf16_evaluation_stays_close_to_fp32(default_detector, tiny_voc):
    """The same detections up to bf16 rounding: confident fp32 detections all have a bf16 twin (same label,
    IoU >= 0.5) within a few pixels, and the mAP moves by little (4 small images: a coarse bound)."""
    data = VOCDetection(tiny_voc, "test", classes=default_detector.class_names, keep_difficult=True)
    fp32, _ = evaluate_detector(DetectionPredictor(default_detector, device=CPU), data, progress=False)
    bf16_predictor = DetectionPredictor(default_detector, device=CPU, precision="bf16")  # autocast only, not prepared
    bf16, _ = evaluate_detector(bf16_predictor, data, progress=False)
    assert fp32.map > 0.3  # the trained detector finds the generated shapes, so the comparison means something
    assert bf16.map == pytest.approx(fp32.map, abs=0.05)

    torch.manual_seed(0)
    images = [data[i][0] for i in range(len(data))]
    with torch.inference_mode():
        reference = default_detector(images)
        with precision_autocast(CPU, "bf16"):
            low = default_detector(images)
    assert all(d["boxes"].dtype == torch.float32 for d in low)  # boxes decoded in fp32, not bf16
    match = match_detections(reference, low, min_score=0.5)
    assert match["reference_detections"] > 0
    assert match["matched_fraction"] == 1.0
    assert match["max_box_diff_px"] < 3.0


def test_predict_dataset_in_bf16_returns_float_boxes(default_detector, tiny_voc):
    data = VOCDetection(tiny_voc, "test", classes=default_detector.class_names, keep_difficult=True)
    detections = predict_dataset(
        DetectionPredictor(default_detector, device=CPU, precision="bf16"), data, progress=False
    )
    assert detections and all(isinstance(c, float) for d in detections for c in d.box)


def test_prepared_model_answers_as_the_model_it_came_from(default_detector, tiny_voc):
    """fp32: channels-last only, the same detections to float rounding; bf16: the same confident detections."""
    data = VOCDetection(tiny_voc, "test", classes=default_detector.class_names, keep_difficult=True)
    images = [data[i][0] for i in range(len(data))]
    with torch.inference_mode():
        reference = default_detector(images)
        fp32 = prepare_for_inference(copy.deepcopy(default_detector), "fp32")(images)
        bf16_model = prepare_for_inference(copy.deepcopy(default_detector), "bf16")
        with precision_autocast(CPU, "bf16"):
            bf16 = bf16_model(images)
    for a, b in zip(reference, fp32):
        assert torch.equal(a["labels"], b["labels"])
        torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(a["scores"], b["scores"], atol=1e-4, rtol=0)
    assert bf16_model.backbone.body[0].weight.dtype == torch.bfloat16
    match = match_detections(reference, bf16, min_score=0.5)
    assert match["reference_detections"] > 0 and match["matched_fraction"] == 1.0
    assert match["max_box_diff_px"] < 3.0


def test_folding_frozen_batch_norm_keeps_the_function():
    torch.manual_seed(0)
    trunk = build_backbone("resnet18").body.eval()
    for m in trunk.modules():  # non-trivial statistics, as a trained network has
        if isinstance(m, FrozenBatchNorm2d):
            (
                m.weight.uniform_(0.5, 1.5),
                m.bias.uniform_(-0.2, 0.2),
                m.running_mean.uniform_(-0.2, 0.2),
                m.running_var.uniform_(0.5, 2.0),
            )
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        before = trunk(x)
        folded = copy.deepcopy(trunk)
        n = fold_frozen_batch_norm(folded)
        after = folded(x)
    assert n == 1 + 4 + 5 + 5  # stem; res2: 2 blocks x 2; res3, res4: 2 blocks x 2 + a downsample each
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_folding_batch_norm_in_eval_mode_keeps_the_answers():
    # resnet50_fpn_v2 keeps plain BatchNorm2d (trunk, pyramid head, box head); in eval mode it folds like frozen.
    torch.manual_seed(0)
    net = nn.Sequential(
        Conv2dNormActivation(3, 8, 3), nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), nn.BatchNorm2d(8)
    )
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        training = copy.deepcopy(net)
        assert fold_frozen_batch_norm(training) == 0  # training mode: batch statistics, nothing to fold
        before = net.eval()(x)
        n = fold_frozen_batch_norm(net)
        after = net(x)
    assert n == 2  # the second of two batch norms in a row follows no convolution
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 1
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_imported_pyramid_in_bf16_strays_from_fp32_no_further_than_torchvisions_own_bf16(tmp_path):
    # The bf16 tolerance README states for the FPN models. Per-detection closeness is not one: on these calibrated
    # random networks bf16 moves torchvision's own model's boxes by up to 43 px (its logits are spread to pass 0.05).
    # What must hold: our bf16 predictor (folded batch norm, bf16 weights, as served) finds the fp32 reference's
    # detections (torchvision's own fp32 model, IoU >= 0.5, same label) as often as torchvision's bf16 autocast
    # does, and every confident one. Measured (AMD EPYC, no AMX): ours 0.89, torchvision 0.87; >= 0.3: 1.0 both.
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    theirs = torchvision_model(arch)
    ours = import_state_dict(arch, theirs.state_dict())
    ours.config.min_size = (SIZE,)
    predictor = DetectionPredictor.from_checkpoint(
        save_detector(tmp_path / "fpn.pt", ours, ours.class_names), precision="bf16"
    )
    images = [photo("astronaut"), photo("coffee")]
    with torch.inference_mode():
        reference = [theirs([im])[0] for im in images]
        with precision_autocast(torch.device("cpu"), "bf16"):
            theirs_bf16 = [theirs([im])[0] for im in images]
    theirs_bf16 = [{k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in theirs_bf16]
    ours_bf16 = [predictor.predict_batch([im])[0] for im in images]
    ours_match, their_match = (match_detections(reference, low) for low in (ours_bf16, theirs_bf16))
    assert ours_match["reference_detections"] > 100
    assert ours_match["matched_fraction"] >= their_match["matched_fraction"] - 0.1, (ours_match, their_match)
    assert match_detections(reference, ours_bf16, min_score=0.3)["matched_fraction"] == 1.0
