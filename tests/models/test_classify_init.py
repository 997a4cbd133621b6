"""Tests for detector.classify.init: each initialiser's variance against its formula, activations by name and
their values at hand-picked points, maxout's grouping, and the scale of activations through deep networks."""

import math

import pytest
import torch
from torch import nn

from detector.classify.init import (
    ACTIVATIONS,
    Maxout,
    activation_pieces,
    default_init_for,
    init_weights,
    make_activation,
)

# Linear(2000, 500): weight [500, 2000], fan_in 2000, fan_out 500, 1e6 samples. Fan-in and fan-out differ so
# that swapping them changes every expected variance. The sample variance of 1e6 draws has a relative standard
# error of sqrt(2 / 1e6) = 0.14% (normal) or 0.09% (uniform), so 3% is far outside sampling error.
FAN_IN, FAN_OUT = 2000, 500
EXPECTED_VAR = {
    "he_normal": 2 / 2000,
    "kaiming_normal": 2 / 2000,
    "he_uniform": 2 / 2000,
    "kaiming_uniform": 2 / 2000,
    "xavier_normal": 2 / 2500,
    "glorot_normal": 2 / 2500,
    "xavier_uniform": 2 / 2500,
    "glorot_uniform": 2 / 2500,
    "lecun": 1 / 2000,
    "lecun_normal": 1 / 2000,
    "naive": 0.01**2 / 3,  # U(-a, a) has variance a^2 / 3
}


def _linear(scheme, activation="relu"):
    torch.manual_seed(0)
    return init_weights(nn.Linear(FAN_IN, FAN_OUT), scheme, activation=activation)


@pytest.mark.parametrize("scheme", sorted(EXPECTED_VAR))
def test_linear_weight_variance_matches_the_formula(scheme):
    layer = _linear(scheme)
    assert layer.weight.var().item() == pytest.approx(EXPECTED_VAR[scheme], rel=0.03)
    assert abs(layer.weight.mean().item()) < 1e-4
    assert torch.equal(layer.bias, torch.zeros(FAN_OUT))  # nn.Linear's own bias init is nonzero


@pytest.mark.parametrize("scheme", ["he_uniform", "xavier_uniform", "naive"])
def test_uniform_schemes_are_bounded_by_sqrt_3_var(scheme):
    w = _linear(scheme).weight
    bound = math.sqrt(3 * EXPECTED_VAR[scheme])
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.999 * bound  # 1e6 draws reach the edge


@pytest.mark.parametrize("scheme", ["he_normal", "xavier_normal", "lecun"])
def test_normal_schemes_have_gaussian_tails(scheme):
    # A uniform with the same variance never exceeds sqrt(3) standard deviations; 1e6 Gaussian draws do.
    w = _linear(scheme).weight
    assert w.abs().max().item() > 3 * math.sqrt(EXPECTED_VAR[scheme])


def test_he_gain_depends_on_the_negative_slope():
    # He et al. 2015: var = 2 / ((1 + a^2) fan_in); a = 0.25 for prelu (its initial slope), 0.01 for leaky_relu.
    assert _linear("he_normal", "prelu").weight.var().item() == pytest.approx(2 / (1.0625 * 2000), rel=0.03)
    assert _linear("he_normal", "leaky_relu").weight.var().item() == pytest.approx(2 / (1.0001 * 2000), rel=0.03)
    assert _linear("he_normal", "elu").weight.var().item() == pytest.approx(2 / 2000, rel=0.03)


def test_conv_fans_count_the_kernel():
    # Conv2d(256, 128, 3): fan_in = 256 * 9 = 2304, fan_out = 128 * 9 = 1152; 295k samples (error 0.26%).
    torch.manual_seed(0)
    conv = nn.Conv2d(256, 128, 3)
    init_weights(conv, "he_normal")
    assert conv.weight.var().item() == pytest.approx(2 / 2304, rel=0.03)
    init_weights(conv, "xavier_uniform")
    assert conv.weight.var().item() == pytest.approx(2 / (2304 + 1152), rel=0.03)
    assert torch.equal(conv.bias, torch.zeros(128))


def test_init_weights_reaches_nested_layers_and_leaves_others_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.PReLU(init=0.25), nn.Sequential(nn.Linear(8, 2)))
    init_weights(net, "naive", activation="prelu")
    assert net[0].weight.abs().max() <= 0.01 and net[3][0].weight.abs().max() <= 0.01
    assert torch.equal(net[1].weight, torch.ones(4))
    assert torch.equal(net[2].weight, torch.tensor([0.25]))


def test_scheme_none_means_the_default_for_the_activation():
    torch.manual_seed(0)
    layer = init_weights(nn.Linear(FAN_IN, FAN_OUT), None, activation="selu")
    assert layer.weight.var().item() == pytest.approx(1 / 2000, rel=0.03)


def test_default_init_for():
    for act in ("relu", "leaky_relu", "prelu", "elu", "swish", "silu"):
        assert default_init_for(act) == "he_normal"
    for act in ("tanh", "sigmoid"):
        assert default_init_for(act) == "xavier_normal"
    assert default_init_for("selu") == "lecun"
    assert default_init_for("maxout") == "lecun"  # see test_maxout_keeps_scale_with_lecun_and_grows_with_he


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weights(nn.Linear(2, 2), "orthogonal")
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation("gelu")
    with pytest.raises(ValueError, match="unknown activation"):
        default_init_for("gelu")


E = math.e
SELU_LAMBDA, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772
ACTIVATION_VALUES = {  # f(-1), f(2)
    "relu": (0.0, 2.0),
    "leaky_relu": (-0.01, 2.0),
    "prelu": (-0.25, 2.0),
    "elu": (1 / E - 1, 2.0),
    "selu": (SELU_LAMBDA * SELU_ALPHA * (1 / E - 1), SELU_LAMBDA * 2),
    "swish": (-1 / (1 + E), 2 / (1 + E**-2)),
    "silu": (-1 / (1 + E), 2 / (1 + E**-2)),
    "tanh": (-(E - 1 / E) / (E + 1 / E), (E**2 - E**-2) / (E**2 + E**-2)),
    "sigmoid": (1 / (1 + E), 1 / (1 + E**-2)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_VALUES))
def test_activation_values(name):
    out = make_activation(name)(torch.tensor([-1.0, 2.0]))
    assert out.tolist() == pytest.approx(ACTIVATION_VALUES[name], abs=1e-6)


def test_every_activation_is_covered():
    assert set(ACTIVATIONS) == set(ACTIVATION_VALUES) | {"maxout"}


def test_prelu_modules_are_not_shared():
    assert make_activation("prelu").weight is not make_activation("prelu").weight


def test_maxout_groups_consecutive_features():
    x = torch.tensor([[5.0, 1.0, 2.0, 3.0, -1.0, -3.0]])
    assert Maxout(pieces=2)(x).tolist() == [[5.0, 3.0, -1.0]]
    assert Maxout(pieces=3)(x).tolist() == [[5.0, 3.0]]
    maps = torch.arange(4 * 2 * 2, dtype=torch.float32).reshape(1, 4, 2, 2)  # channel c holds 4c .. 4c + 3
    assert torch.equal(Maxout(pieces=2)(maps), maps[:, [1, 3]])
    assert activation_pieces("maxout") == 2 and activation_pieces("relu") == 1
    with pytest.raises(ValueError, match="divisible by 2"):
        Maxout(pieces=2)(torch.zeros(1, 5))


def _layer_stds(activation, scheme, *, depth=10, width=256, n=512):
    """Root mean square of each layer's activations in a ``depth``-layer MLP fed N(0, 1) inputs."""
    torch.manual_seed(0)
    x, out = torch.randn(n, width), []
    with torch.no_grad():
        for _ in range(depth):
            layer = init_weights(nn.Linear(width, activation_pieces(activation) * width), scheme, activation=activation)
            x = make_activation(activation)(layer(x))
            out.append(x.pow(2).mean().sqrt().item())
    return out


def test_xavier_keeps_deep_tanh_alive_where_naive_init_collapses():
    xavier, naive = _layer_stds("tanh", "xavier_normal"), _layer_stds("tanh", "naive")
    # Xavier on a square layer: pre-activation variance = previous activation variance, and tanh only trims its
    # tails, so the scale decays slowly (about 1 / sqrt(layer)): no layer loses more than 30% on the one before.
    assert all(b > 0.7 * a for a, b in zip(xavier, xavier[1:]))
    assert xavier[-1] > xavier[0] / 3
    # Naive: each layer multiplies the scale by at most sqrt(256 * 0.01^2 / 3) = 0.092, so 10 layers give < 1e-10.
    assert all(b < 0.1 * a for a, b in zip(naive, naive[1:]))
    assert naive[-1] < 1e-8


def test_he_keeps_deep_relu_steady():
    stds = _layer_stds("relu", "he_normal")
    assert max(stds) < 2 * min(stds)
    # LeCun (half He's variance) halves the second moment per layer: 10 layers lose a factor 2^(9/2) = 23 in scale.
    lecun = _layer_stds("relu", "lecun")
    assert lecun[-1] < lecun[0] / 10


def test_maxout_keeps_scale_with_lecun_and_grows_with_he():
    # max of two independent N(0, s^2) has second moment s^2, so LeCun's var = 1 / fan_in is the steady choice.
    lecun = _layer_stds("maxout", "lecun")
    assert all(0.8 < s < 1.25 for s in lecun)
    he = _layer_stds("maxout", "he_normal")
    assert he[-1] > 10 * he[0]  # x sqrt(2) per layer: 2^(9/2) = 23 over 10 layers


def test_lecun_keeps_deep_selu_normalised():
    assert all(0.9 < s < 1.1 for s in _layer_stds("selu", "lecun"))
