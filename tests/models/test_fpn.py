"""The feature-pyramid Faster R-CNN loads torchvision's COCO detectors' state dicts and gives their answers.

Offline, so torchvision's own model is built with random weights; its batch-norm statistics are calibrated on a
photograph (so activations are sane) and its classifier's logits spread (so detections pass the 0.05 threshold).
Our model, imported from the same state dict, must then find the same detections on real photographs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detector.core import checkpoint
from detector.models.factory import load_detector
from detector.models.pretrained import WeightsError
from detector.models.torchvision_import import coco_class_names, import_file, import_state_dict
from tests.support.images import photo
from tests.support.torchvision_models import SIZE, torchvision_model


def _ours(arch: str, state_dict: dict) -> nn.Module:
    ours = import_state_dict(arch, state_dict)
    ours.config.min_size = (SIZE,)
    ours.transform.min_size = (SIZE,)
    return ours


ARCHS = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn")


@pytest.mark.parametrize("arch", ARCHS)
def test_imported_weights_give_torchvisions_detections_on_photographs(arch):
    theirs = torchvision_model(arch)
    ours = _ours(arch, theirs.state_dict())
    for name in ("astronaut", "coffee"):
        image = photo(name)
        with torch.no_grad():
            expected, got = theirs([image])[0], ours([image])[0]
        assert len(expected["boxes"]) > 10, "the calibration should make detections pass 0.05"
        assert len(got["boxes"]) == len(expected["boxes"]), name
        assert torch.equal(got["labels"], expected["labels"]), name
        torch.testing.assert_close(got["boxes"], expected["boxes"], atol=1e-2, rtol=0)
        torch.testing.assert_close(got["scores"], expected["scores"], atol=1e-4, rtol=0)


def test_import_file_writes_a_checkpoint_with_cocos_names_and_both_bn_layouts(tmp_path):
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    state = torchvision_model(arch).state_dict()
    names = coco_class_names(arch)
    assert len(names) == 90 and names[0] == "person" and names[11] == "N/A-12" and names[89] == "toothbrush"
    for layout, sd in (("with", state), ("without", {k: v for k, v in state.items() if "num_batches" not in k})):
        torch.save(sd, tmp_path / f"{layout}.pth")
        out = import_file(arch, tmp_path / f"{layout}.pth", tmp_path / f"{layout}.pt")
        model, ckpt = load_detector(out)
        assert ckpt["class_names"] == names and model.config.backbone == "mobilenet_v3_large_fpn"
    v2 = torchvision_model("fasterrcnn_resnet50_fpn_v2").state_dict()  # its batch norm has the counter
    import_state_dict("fasterrcnn_resnet50_fpn_v2", {k: v for k, v in v2.items() if "num_batches" not in k})
    with pytest.raises(WeightsError, match="not torchvision's fasterrcnn_resnet50_fpn"):
        import_state_dict("fasterrcnn_resnet50_fpn", state)  # the MobileNet's weights
    assert checkpoint.load(tmp_path / "with.pt")["source"]["torchvision"] == arch
