"""Tests for detector.models.pretrained: verified downloads from a loopback HTTP server (tests/support/file_server.py),
clear errors for missing or unfit weights, loading torchvision-format state dicts into the backbones. The
``detector.weights`` command line: tests/cli/test_weights.py."""

import pytest
import torch
from torch import nn
from torchvision import models

from detector.models import pretrained
from detector.models.backbones import build_backbone
from detector.models.pretrained import WeightsError, fetch, load_checked, load_pretrained_state_dict
from tests.support.file_server import closed_port, serve_weights


def test_fetch_downloads_and_verifies(weights_server, tmp_path, monkeypatch):
    root, url = weights_server
    name, data = serve_weights(root, monkeypatch)
    dest = tmp_path / "weights"
    path = fetch("fakenet", weights_dir=dest, base_url=url, progress=False)
    assert path == dest / name
    assert path.read_bytes() == data
    assert [p.name for p in dest.iterdir()] == [name]
    # The downloaded file is a usable state dict.
    assert torch.equal(load_pretrained_state_dict("fakenet", path)["fc.weight"], torch.arange(6.0).reshape(2, 3))


def test_fetch_skips_a_verified_copy(weights_server, tmp_path, monkeypatch):
    root, url = weights_server
    name, data = serve_weights(root, monkeypatch)
    dest = tmp_path / "weights"
    dest.mkdir()
    (dest / name).write_bytes(data)
    # Nothing listens there: a download attempt would fail.
    assert (
        fetch("fakenet", weights_dir=dest, base_url=f"http://127.0.0.1:{closed_port()}/", progress=False) == dest / name
    )


def test_fetch_hash_mismatch_raises_and_leaves_nothing(weights_server, tmp_path, monkeypatch):
    root, url = weights_server
    name, _ = serve_weights(root, monkeypatch, corrupt=True)
    dest = tmp_path / "weights"
    with pytest.raises(WeightsError, match="SHA-256 mismatch") as err:
        fetch("fakenet", weights_dir=dest, base_url=url, progress=False)
    assert name in str(err.value)
    assert list(dest.iterdir()) == []  # neither the file nor a .part leftover


def test_fetch_missing_file_on_server_raises(weights_server, tmp_path, monkeypatch):
    _, url = weights_server
    monkeypatch.setitem(pretrained.IMAGENET_FILES, "ghostnet", "ghostnet-12345678.pth")
    with pytest.raises(WeightsError, match="could not download .*ghostnet-12345678.pth"):
        fetch("ghostnet", weights_dir=tmp_path / "w", base_url=url, progress=False)
    assert list((tmp_path / "w").iterdir()) == []


def test_fetch_unreachable_server_raises_clear_error(tmp_path, no_proxy, monkeypatch):
    monkeypatch.setitem(pretrained.IMAGENET_FILES, "fakenet", "fakenet-12345678.pth")
    url = f"http://127.0.0.1:{closed_port()}/models"
    with pytest.raises(WeightsError) as err:
        fetch("fakenet", weights_dir=tmp_path, base_url=url, progress=False, timeout=5)
    message = str(err.value)
    assert f"could not download {url}/fakenet-12345678.pth" in message
    assert "copy fakenet-12345678.pth into" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []


def test_fetch_unknown_arch():
    with pytest.raises(WeightsError, match="unknown architecture 'vgg19'"):
        fetch("vgg19", progress=False)


def test_missing_imagenet_weights_error_names_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(WeightsError) as err:
        load_pretrained_state_dict("vgg16", "imagenet", weights_dir=empty)
    message = str(err.value)
    assert str(empty / "vgg16-397923af.pth") in message
    assert f"python -m detector.weights fetch vgg16 --dir {empty}" in message
    assert "--pretrained none" in message
    # build_backbone surfaces the same error.
    with pytest.raises(WeightsError, match="vgg16-397923af.pth"):
        build_backbone("vgg16", "imagenet", weights_dir=empty)


def test_imagenet_weights_found_in_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    state = load_pretrained_state_dict("resnet18", "imagenet", weights_dir=tmp_path / "nowhere")
    assert torch.equal(state["w"], torch.ones(2))


def test_pretrained_path_errors_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist") as err:
        load_pretrained_state_dict("resnet18", tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x00\x01 truncated")
    with pytest.raises(WeightsError, match="could not read weights file") as err:
        load_pretrained_state_dict("resnet18", broken)
    assert str(broken) in str(err.value)
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_pretrained_state_dict("resnet18", tensor_only)


def test_training_checkpoint_weights_are_taken_from_model_key(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.ones(1)}, "epoch": 3}, path)
    assert list(load_pretrained_state_dict("resnet18", path)) == ["w"]


def test_load_checked_reports_missing_and_mismatched_keys():
    module = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    with pytest.raises(WeightsError) as err:
        load_checked(
            module,
            {"0.weight": torch.zeros(2, 4), "0.bias": torch.zeros(2), "1.weight": torch.zeros(1, 2)},
            source="toy",
        )
    message = str(err.value)
    assert "weights for toy do not fit" in message
    assert "missing keys (1): 1.bias" in message
    assert "shape mismatches (1): 0.weight: file (2, 4) vs model (2, 3)" in message


def test_load_checked_loads_and_ignores_prefixes():
    module = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    state = {"0.weight": torch.full((2, 3), 2.0), "0.bias": torch.full((2,), 3.0), "extra": torch.zeros(1)}
    load_checked(module, state, source="toy", ignore_prefixes=("1.",))
    assert torch.equal(module[0].weight.detach(), torch.full((2, 3), 2.0))
    assert torch.equal(module[0].bias.detach(), torch.full((2,), 3.0))


def test_build_backbone_loads_a_torchvision_resnet18_state_dict(tmp_path):
    torch.manual_seed(0)
    reference = models.resnet18(weights=None)
    with torch.no_grad():  # non-default statistics, so a skipped load would show
        reference.bn1.running_mean.uniform_(-1, 1)
        reference.layer3[1].bn2.running_var.uniform_(1, 2)
    state = reference.state_dict()
    assert "bn1.num_batches_tracked" in state  # torchvision's files carry it; FrozenBatchNorm2d does not
    path = tmp_path / "resnet18-custom.pth"
    torch.save(state, path)
    backbone = build_backbone("resnet18", pretrained=path)
    stem, layer1, layer2, layer3 = backbone.body
    assert torch.equal(stem[0].weight, state["conv1.weight"])
    assert torch.equal(stem[1].running_mean, state["bn1.running_mean"])
    assert torch.equal(layer3[1].bn2.running_var, state["layer3.1.bn2.running_var"])
    assert torch.equal(backbone.head[0][1].conv2.weight, state["layer4.1.conv2.weight"])
    assert backbone.out_channels == 256 and backbone.representation_size == 512


def test_build_backbone_rejects_weights_of_another_network(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(WeightsError) as err:
        build_backbone("resnet18", pretrained=path)
    message = str(err.value)
    assert "weights for resnet18 do not fit" in message
    # Bottleneck blocks: 1x1 where resnet18's basic blocks have 3x3, and 2048 features into fc instead of 512.
    assert "layer1.0.conv1.weight: file (64, 64, 1, 1) vs model (64, 64, 3, 3)" in message
