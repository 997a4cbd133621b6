"""How a backbone is built for training from scratch (trainable GroupNorm, nothing frozen) or with the papers'
ImageNet settings, and that a checkpoint rebuilds the same network from its config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops.misc import FrozenBatchNorm2d

from detector.core import checkpoint
from detector.models.backbones import build_backbone
from detector.models.factory import build_detector, default_config, load_detector


def _norms(module: nn.Module) -> set[type]:
    return {type(m) for m in module.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d, FrozenBatchNorm2d))}


def test_the_papers_resnet_keeps_frozen_batch_norm_and_frozen_early_stages():
    backbone = build_backbone("resnet18")
    assert _norms(backbone) == {FrozenBatchNorm2d}
    stem, res2, res3, res4 = backbone.body
    assert not any(p.requires_grad for p in [*stem.parameters(), *res2.parameters()])
    assert all(p.requires_grad for p in [*res3.parameters(), *res4.parameters(), *backbone.head.parameters()])


@pytest.mark.parametrize("norm, layer", [("gn", nn.GroupNorm), ("bn", nn.BatchNorm2d)])
def test_from_scratch_every_layer_and_every_norm_trains(norm, layer):
    backbone = build_backbone("resnet18", norm=norm, frozen_stages=0)
    assert _norms(backbone) == {layer}
    assert all(p.requires_grad for p in backbone.parameters())
    norms = [m for m in backbone.modules() if isinstance(m, layer)]
    assert norms and all(m.weight.requires_grad for m in norms)
    if norm == "gn":  # statistics of each image alone: one image's features do not depend on its batch-mates
        backbone.eval()
        a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
        torch.testing.assert_close(backbone(torch.cat([a, b]))[:1], backbone(a), rtol=1e-4, atol=1e-5)


def test_vgg16_frozen_stages_counts_conv_stages():
    def frozen_convs(stages: int) -> int:
        body = build_backbone("vgg16", frozen_stages=stages).body
        return sum(1 for m in body if isinstance(m, nn.Conv2d) and not m.weight.requires_grad)

    assert [frozen_convs(n) for n in (0, 1, 2, 3)] == [0, 2, 4, 7]  # conv1: 2 layers, conv2: 2, conv3: 3


def test_mlp_box_head_is_torchvisions_two_layer_head_on_7x7_rois():
    backbone = build_backbone("resnet18", box_head="mlp")
    assert isinstance(backbone.head, TwoMLPHead)
    assert (backbone.pool_size, backbone.representation_size) == (7, 1024)
    assert backbone.head(torch.rand(5, backbone.out_channels, 7, 7)).shape == (5, 1024)
    assert not any(name.startswith("head.0") for name, _ in backbone.named_parameters())  # no res5 kept


def test_gn_refuses_imagenet_batch_norm_weights(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(build_backbone("resnet18", norm="bn", frozen_stages=0).state_dict(), path)  # any state dict
    with pytest.raises(ValueError, match="batch norm"):
        build_backbone("resnet18", path, norm="gn")


def test_a_checkpoint_rebuilds_the_scratch_architecture_and_old_ones_the_papers(tmp_path):
    config = default_config("faster_rcnn", "resnet18", num_classes=2)
    config.norm, config.frozen_stages, config.box_head = "gn", 0, "mlp"
    config.min_size, config.max_size = (96,), 128
    torch.manual_seed(0)
    model = build_detector("faster_rcnn", config).eval()
    path = tmp_path / "m.pt"
    checkpoint.save(
        path, checkpoint.model_payload(model, kind="faster_rcnn", config=config.to_dict(), class_names=["a", "b"])
    )
    loaded, _ = load_detector(path)
    assert _norms(loaded.backbone) == {nn.GroupNorm} and isinstance(loaded.backbone.head, TwoMLPHead)
    image = [torch.rand(3, 96, 120)]
    with torch.no_grad():
        expected, got = model(image)[0], loaded(image)[0]
    torch.testing.assert_close(got["scores"], expected["scores"])
    # A checkpoint written before these settings existed has none of them: it is the papers' network.
    old = {k: v for k, v in config.to_dict().items() if k not in ("norm", "frozen_stages", "box_head")}
    rebuilt = type(config).from_dict(old)
    assert (rebuilt.norm, rebuilt.frozen_stages, rebuilt.box_head) == ("frozen_bn", 2, "trunk")


def test_set_option_reaches_nested_settings_and_checks_their_type():
    config = default_config("faster_rcnn", "resnet18", num_classes=2)
    config.set_option("rpn.allowed_border", "1e4")
    config.set_option("roi_heads.batch_size_per_image", "512")
    config.set_option("rpn.anchor_sizes", "[16, 32]")
    config.set_option("roi_heads.pooler", "roi_align")
    assert config.rpn.allowed_border == 1e4 and config.roi_heads.batch_size_per_image == 512
    assert config.rpn.anchor_sizes == (16, 32) and config.roi_heads.pooler == "roi_align"
    assert dataclasses.asdict(config)["rpn"]["allowed_border"] == 1e4  # stored like any setting
    with pytest.raises(ValueError, match="known: .*allowed_border"):
        config.set_option("rpn.allowed_boarder", "0")
    with pytest.raises(ValueError, match="expected a int"):
        config.set_option("roi_heads.batch_size_per_image", "many")
    with pytest.raises(ValueError, match="not a group"):
        config.set_option("num_classes.x", "1")
