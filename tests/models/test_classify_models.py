"""Tests for detector.classify.models: every architecture's output shape and parameter count, activations and
maxout widths in the small networks, freezing and staged unfreezing, dense VGG evaluation, pretrained loading.

Full-size networks are built once each; VGG16 is shared by a module fixture.
"""

import pytest
import torch
from torch import nn
from torchvision import models

from detector.classify.init import ACTIVATIONS, Maxout
from detector.classify.models import (
    CLASSIFIERS,
    backbone_stages,
    build_classifier,
    freeze_backbone,
    head_module,
    imagenet_categories,
    to_dense,
    unfreeze_last,
)
from detector.models.pretrained import WeightsError
from detector.training.optim import OptimConfig, build_optimizer

SMALL = (3, 32, 32)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def _head_swap(total_1000, d, k):
    """Parameter count of an ImageNet network of ``total_1000`` parameters with its D x 1000 head made D x K."""
    return total_1000 - (d * 1000 + 1000) + (d * k + k)


@pytest.fixture(scope="module")
def vgg16():
    torch.manual_seed(0)
    return build_classifier("vgg16", num_classes=10).eval()


@pytest.fixture
def resnet18():
    torch.manual_seed(0)
    return build_classifier("resnet18", num_classes=3)


# ---- small networks -------------------------------------------------------------------------------------------


def test_softmax_regression_is_one_linear_layer():
    model = build_classifier("softmax", num_classes=4, input_size=SMALL)
    layers = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    assert len(layers) == 1 and isinstance(layers[0], nn.Linear)
    assert (layers[0].in_features, layers[0].out_features) == (3 * 32 * 32, 4)
    assert model(torch.randn(1, *SMALL)).shape == (1, 4)


def test_mlp_shapes_and_parameter_count():
    model = build_classifier("mlp", num_classes=4, input_size=SMALL, hidden_sizes=(512, 256))
    assert model(torch.randn(1, *SMALL)).shape == (1, 4)
    assert _num_params(model) == (3072 * 512 + 512) + (512 * 256 + 256) + (256 * 4 + 4)


def test_mlp_batch_norm_and_dropout_flags():
    model = build_classifier("mlp", num_classes=4, input_size=SMALL, hidden_sizes=(8,), batch_norm=True, dropout=0.2)
    assert [type(m) for m in model.stages[0]] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert model.stages[0][3].p == 0.2
    assert model(torch.randn(2, *SMALL)).shape == (2, 4)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_each_activation_builds_a_working_mlp(activation):
    torch.manual_seed(0)
    model = build_classifier(
        "mlp", num_classes=4, input_size=SMALL, hidden_sizes=(32, 16), activation=activation, dropout=0.0
    )
    out = model(torch.randn(2, *SMALL))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    modules = {"swish": nn.SiLU, "silu": nn.SiLU, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU,
               "elu": nn.ELU, "selu": nn.SELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "maxout": Maxout}  # fmt: skip
    expected = modules[activation]
    assert all(type(stage[1]) is expected for stage in model.stages)


def test_maxout_doubles_the_layer_before_it():
    mlp = build_classifier("mlp", num_classes=4, input_size=SMALL, hidden_sizes=(512, 256), activation="maxout")
    assert [(s[0].in_features, s[0].out_features) for s in mlp.stages] == [(3072, 1024), (512, 512)]
    assert mlp.head.in_features == 256
    lenet = build_classifier("lenet5", num_classes=10, input_size=SMALL, activation="maxout")
    convs = [m for m in lenet.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [(c.weight.shape[1], c.weight.shape[0]) for c in convs] == [
        (3, 12),
        (6, 32),
        (400, 240),
        (120, 168),
        (84, 10),
    ]
    assert lenet(torch.randn(1, *SMALL)).shape == (1, 10)


def test_lenet5_flatten_size_follows_the_input():
    classic = build_classifier("lenet5", num_classes=10, input_size=SMALL)
    assert classic(torch.randn(1, *SMALL)).shape == (1, 10)
    # 3-channel LeNet-5: conv1 3*6*25+6, conv2 6*16*25+16, fc 400*120+120, 120*84+84, 84*10+10 (61,706 for 1 channel).
    assert _num_params(classic) == 456 + 2416 + 48120 + 10164 + 850
    mnist = build_classifier("lenet5", num_classes=10, input_size=(1, 28, 28))
    assert mnist.stages[2][0].in_features == 16 * 4 * 4  # 28 -> 24 -> 12 -> 8 -> 4
    assert mnist(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 16 x 16"):
        build_classifier("lenet5", num_classes=10, input_size=(3, 15, 15))


def test_convnet_shapes_parameter_count_and_stages():
    model = build_classifier("convnet", num_classes=6, input_size=(3, 64, 64))
    # Per stage: conv a->b 3x3 (no bias) + BN (2b) + conv b->b 3x3 + BN (2b); head 128*6+6.
    stages = [9 * a * b + 2 * b + 9 * b * b + 2 * b for a, b in [(3, 16), (16, 32), (32, 64), (64, 128)]]
    assert stages == [2800, 13952, 55552, 221696]
    assert _num_params(model) == sum(stages) + 128 * 6 + 6 == 294_774
    assert len(backbone_stages(model)) == 4 and head_module(model).in_features == 128
    model.eval()
    with torch.no_grad():
        for side in (16, 48, 64, 100):  # global average pooling: any size from 2 ** 4 px
            assert model(torch.randn(2, 3, side, side)).shape == (2, 6)
    narrow = build_classifier("convnet", num_classes=3, input_size=(1, 8, 8), channels=(4, 8), activation="maxout")
    convs = [m for m in narrow.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (4, 8), (4, 16), (8, 16)]  # maxout: 2 pieces
    assert narrow(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match="at least 16 px"):
        build_classifier("convnet", num_classes=3, input_size=(3, 15, 15))


# ---- torchvision networks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "total_1000", "d"),
    [("resnet18", 11_689_512, 512), ("resnet34", 21_797_672, 512), ("resnet50", 25_557_032, 2048),
     ("resnet101", 44_549_160, 2048), ("vgg16_bn", 138_365_992, 4096)],
)  # fmt: skip
def test_full_size_network_shapes(name, total_1000, d):
    model = build_classifier(name, num_classes=7).eval()
    assert _num_params(model) == _head_swap(total_1000, d, 7)
    assert head_module(model).out_features == 7
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_vgg16_dense_head_equals_fc_head(vgg16):
    assert _num_params(vgg16) == _head_swap(138_357_544, 4096, 10)
    torch.manual_seed(1)
    x = torch.randn(1, 3, 224, 224)
    dense = to_dense(vgg16)
    assert not dense.training
    assert dense.classifier[0].weight.shape == (4096, 512, 7, 7)
    assert dense.classifier[0].weight.data_ptr() == vgg16.classifier[0].weight.data_ptr()  # a view, not a copy
    with torch.no_grad():
        fc_logits = vgg16(x)
        assert fc_logits.shape == (1, 10)
        torch.testing.assert_close(dense(x), fc_logits, atol=1e-4, rtol=0)
        maps = []
        hook = dense.classifier.register_forward_hook(lambda _m, _i, out: maps.append(out))
        logits = dense(torch.randn(1, 3, 288, 288))
        hook.remove()
    assert logits.shape == (1, 10)
    assert maps[0].shape == (1, 10, 3, 3)  # 288 / 32 = 9 conv5 cells, 9 - 7 + 1 = 3 windows per side
    torch.testing.assert_close(logits, maps[0].mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="too small for dense evaluation"), torch.no_grad():
        dense(torch.randn(1, 3, 64, 64))


def test_vgg_stages_end_with_fc6_fc7(vgg16):
    stages = backbone_stages(vgg16)
    assert len(stages) == 6
    groups = unfreeze_last(vgg16, 2, lr=1.0)
    trainable = {n.rsplit(".", 1)[0] for n, p in vgg16.named_parameters() if p.requires_grad}
    # conv5_1..conv5_3 are features.24/26/28; fc6, fc7, fc8 are classifier.0/3/6.
    assert trainable == {"features.24", "features.26", "features.28", "classifier.0", "classifier.3", "classifier.6"}
    assert [g["lr"] for g in groups] == [pytest.approx(0.1), 1.0]


def test_resnet_dense_head_equals_fc_head_at_any_size():
    torch.manual_seed(0)
    model = build_classifier("resnet18", num_classes=5).eval()
    dense = to_dense(model)
    with torch.no_grad():
        for size in (64, 96):
            x = torch.randn(1, 3, size, size)
            torch.testing.assert_close(dense(x), model(x), atol=1e-5, rtol=1e-5)


# ---- freezing -------------------------------------------------------------------------------------------------


def test_freeze_backbone_trains_only_the_head(resnet18):
    freeze_backbone(resnet18)
    before = {n: p.detach().clone() for n, p in resnet18.named_parameters()}
    opt = build_optimizer(resnet18.parameters(), OptimConfig(optimizer="momentum", lr=0.1, weight_decay=1e-4))
    loss = nn.functional.cross_entropy(resnet18(torch.randn(2, 3, 64, 64)), torch.tensor([0, 2]))
    loss.backward()
    opt.step()
    assert resnet18.fc.weight.grad.abs().sum() > 0
    for name, p in resnet18.named_parameters():
        if name.startswith("fc."):
            assert not torch.equal(p, before[name]), name
        else:
            assert p.grad is None and torch.equal(p, before[name]), name


def test_unfreeze_last_one_stage(resnet18):
    groups = unfreeze_last(resnet18, 1, lr=0.01)  # lr_mult 0.1
    trainable = {n for n, p in resnet18.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in resnet18.named_parameters() if n.startswith(("layer4.", "fc."))}
    assert [g["lr"] for g in groups] == [pytest.approx(0.001), 0.01]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in resnet18.layer4.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in resnet18.fc.parameters()}
    opt = build_optimizer(groups, OptimConfig(lr=0.5))
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.001), 0.01]

    unfreeze_last(resnet18, 2, lr=0.01)
    assert resnet18.layer3[0].conv1.weight.requires_grad
    assert not resnet18.layer2[0].conv1.weight.requires_grad
    assert len(unfreeze_last(resnet18, 0, lr=0.01)) == 1
    with pytest.raises(ValueError, match="n must be in 0..5"):
        unfreeze_last(resnet18, 6, lr=0.01)


def test_freeze_works_on_the_small_networks():
    model = freeze_backbone(build_classifier("lenet5", num_classes=10, input_size=SMALL))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert len(backbone_stages(model)) == 4


# ---- pretrained weights ---------------------------------------------------------------------------------------


@pytest.fixture
def resnet18_file(tmp_path):
    torch.manual_seed(0)
    state = models.resnet18().state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    return path, state


def test_pretrained_backbone_loads_and_head_is_replaced(resnet18_file):
    path, state = resnet18_file
    model = build_classifier("resnet18", num_classes=5, pretrained=path)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert model.fc.out_features == 5
    assert model.class_names is None


def test_pretrained_imagenet_model_keeps_its_head_and_names(resnet18_file):
    path, state = resnet18_file
    model = build_classifier("resnet18", num_classes=1000, pretrained=path)
    assert torch.equal(model.fc.weight, state["fc.weight"])
    assert len(model.class_names) == 1000
    assert model.class_names[0] == "tench" and model.class_names[-1] == "toilet tissue"
    assert imagenet_categories() == model.class_names


def test_init_with_pretrained_touches_only_the_head(resnet18_file):
    path, state = resnet18_file
    model = build_classifier("resnet18", num_classes=5, pretrained=path, init="naive")
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert model.fc.weight.abs().max() <= 0.01
    assert torch.equal(model.fc.bias, torch.zeros(5))


def test_missing_imagenet_file_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(WeightsError, match="python -m detector.weights fetch resnet18"):
        build_classifier("resnet18", num_classes=5, pretrained="imagenet", weights_dir=tmp_path)


# ---- argument errors ------------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors():
    assert CLASSIFIERS == (
        "softmax",
        "mlp",
        "lenet5",
        "convnet",
        "vgg16",
        "vgg16_bn",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
    )
    with pytest.raises(ValueError, match="unknown classifier"):
        build_classifier("alexnet", num_classes=3)
    with pytest.raises(ValueError, match="uses ReLU"):
        build_classifier("resnet18", num_classes=3, activation="tanh")
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_classifier("mlp", num_classes=3, pretrained="imagenet")
    with pytest.raises(ValueError, match="dense evaluation"):
        build_classifier("lenet5", num_classes=3, input_size=SMALL, dense=True)
    with pytest.raises(TypeError, match="to_dense supports"):
        to_dense(build_classifier("mlp", num_classes=3, input_size=SMALL))
