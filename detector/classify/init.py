"""Activations and weight initialisation, both chosen by name.

Shape shorthand: N samples, C features (channels for a conv layer), k maxout pieces.

An initialiser draws a layer's weights with a variance set from its fan-in (inputs per output unit:
``in_features`` for Linear, ``in_channels / groups * kh * kw`` for a conv) and fan-out (``out_features``, or
``out_channels * kh * kw``):

=================  ==========================================  ===========================================
scheme             weight distribution                          variance
=================  ==========================================  ===========================================
xavier_normal      N(0, s^2)                                    2 / (fan_in + fan_out)
xavier_uniform     U(-a, a), a = sqrt(6 / (fan_in + fan_out))   2 / (fan_in + fan_out)
he_normal          N(0, s^2)                                    2 / ((1 + slope^2) * fan_in)
he_uniform         U(-a, a), a = sqrt(3 * variance)             2 / ((1 + slope^2) * fan_in)
lecun              N(0, s^2)                                    1 / fan_in
naive              U(-0.01, 0.01), whatever the layer's size    0.01^2 / 3
=================  ==========================================  ===========================================

``glorot_*`` are aliases of ``xavier_*``, ``kaiming_*`` of ``he_*``, ``lecun_normal`` of ``lecun``. ``slope`` is
the activation's slope for negative inputs at initialisation: 0.01 for leaky_relu, 0.25 for prelu (PyTorch's
starting value), 0 otherwise (He et al. 2015, eq. 10). Biases are set to zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "selu", "swish", "silu", "tanh", "sigmoid", "maxout")
INIT_SCHEMES = (
    "xavier_normal", "xavier_uniform", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform", "kaiming_normal", "kaiming_uniform",
    "lecun", "lecun_normal", "naive",
)  # fmt: skip

LEAKY_RELU_SLOPE = 0.01
PRELU_INIT_SLOPE = 0.25
NAIVE_BOUND = 0.01

_ALIASES = {
    "glorot_normal": "xavier_normal",
    "glorot_uniform": "xavier_uniform",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "lecun_normal": "lecun",
    "silu": "swish",
}


class Maxout(nn.Module):
    """Maximum over ``pieces`` groups of features (Goodfellow et al. 2013).

    Input [N, k * C, ...] -> output [N, C, ...]: output feature c is the maximum of input features
    c * k, c * k + 1, ..., c * k + k - 1 (consecutive features form a group). Works on dim 1, so the same module
    follows a Linear ([N, k * C]) or a conv ([N, k * C, H, W]); the layer before it must therefore produce k times
    the width that the layer after it consumes (see :func:`activation_pieces`).
    """

    def __init__(self, pieces: int = 2):
        super().__init__()
        if pieces < 2:
            raise ValueError(f"maxout needs at least 2 pieces, got {pieces}")
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        n, kc = x.shape[:2]
        if kc % self.pieces:
            raise ValueError(
                f"maxout with {self.pieces} pieces needs a feature count divisible by {self.pieces}, got {kc}"
            )
        return x.reshape(n, kc // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


def _canonical_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return _ALIASES.get(name, name)


def make_activation(name: str = "relu") -> nn.Module:
    """A fresh activation module by name (a new one per layer, so prelu's slopes are not shared between layers)."""
    name = _canonical_activation(name)
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_RELU_SLOPE)
    if name == "prelu":
        return nn.PReLU(init=PRELU_INIT_SLOPE)
    if name == "elu":
        return nn.ELU()
    if name == "selu":
        return nn.SELU()
    if name == "swish":
        return nn.SiLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    return Maxout(pieces=2)


def activation_pieces(name: str) -> int:
    """How many times wider the layer before ``name`` must be than the layer after it: 2 for maxout, else 1."""
    return 2 if _canonical_activation(name) == "maxout" else 1


def default_init_for(activation: str) -> str:
    """The scheme that keeps the scale of activations steady from layer to layer under ``activation``.

    - ReLU family (relu, leaky_relu, prelu, elu, swish/silu): He. A rectifier zeroes (or nearly) half its
      inputs, halving the second moment, which He's factor 2 restores.
    - maxout (2 pieces): LeCun, not He. The maximum of two independent zero-mean Gaussians has the same second
      moment as either of them, so nothing is lost to undo; He's factor 2 would double the variance per layer.
    - selu: LeCun, the initialisation SELU's self-normalising fixed point is derived for.
    - tanh, sigmoid: Xavier, derived for activations that are roughly linear around 0.
    """
    name = _canonical_activation(activation)
    if name in ("selu", "maxout"):
        return "lecun"
    if name in ("tanh", "sigmoid"):
        return "xavier_normal"
    return "he_normal"


def _fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear [out, in] or conv [out, in / groups, *kernel] weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _negative_slope(activation: str) -> float:
    name = _canonical_activation(activation)
    return {"leaky_relu": LEAKY_RELU_SLOPE, "prelu": PRELU_INIT_SLOPE}.get(name, 0.0)


@torch.no_grad()
def init_tensor_(weight: Tensor, scheme: str, *, activation: str = "relu") -> Tensor:
    """Fills one Linear or conv weight in place by ``scheme`` (table in the module docstring); returns it."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    scheme = _ALIASES.get(scheme, scheme)
    fan_in, fan_out = _fans(weight)
    if scheme == "naive":
        return weight.uniform_(-NAIVE_BOUND, NAIVE_BOUND)
    if scheme.startswith("xavier"):
        var = 2.0 / (fan_in + fan_out)
    elif scheme.startswith("he"):
        var = 2.0 / ((1.0 + _negative_slope(activation) ** 2) * fan_in)
    else:  # lecun
        var = 1.0 / fan_in
    if scheme.endswith("uniform"):
        bound = math.sqrt(3.0 * var)  # U(-a, a) has variance a^2 / 3
        return weight.uniform_(-bound, bound)
    return weight.normal_(0.0, math.sqrt(var))


def init_weights(module: nn.Module, scheme: str | None = None, *, activation: str = "relu") -> nn.Module:
    """Initialises every Linear and Conv1d/2d/3d inside ``module`` (itself included) by ``scheme`` and zeroes
    their biases; ``scheme=None`` means ``default_init_for(activation)``. Other layers (batch norm, PReLU's
    slopes) keep their own initialisation. Returns ``module``."""
    scheme = default_init_for(activation) if scheme is None else scheme
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            init_tensor_(m.weight, scheme, activation=activation)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
