"""Image classifiers by name, from softmax regression to ResNet-101, with transfer-learning helpers.

Shape shorthand: N images, C x H x W input (``input_size``), K classes, D features, h x w a score map.
Every model maps images [N, C, H, W] -> logits [N, K]; the softmax lives in the loss.

- ``softmax``: softmax regression, one Linear on the flattened pixels.
- ``mlp``: Linear -> [batch norm] -> activation -> dropout per hidden size, then a Linear head.
- ``lenet5``: conv 6@5x5 - pool - conv 16@5x5 - pool - fc 120 - fc 84 - fc K (LeCun et al. 1998), with
  2x2 average pooling (LeNet's subsampling) and the flatten size computed from ``input_size``.
- ``convnet``: a small VGG-style network: per stage two 3x3 conv - batch norm - activation and a 2x2 max-pool,
  ``channels`` wide (16, 32, 64, 128 by default: 0.3M parameters), then global average pooling and fc K.
- ``vgg16``, ``vgg16_bn``, ``resnet18/34/50/101``: torchvision's networks with a K-way last layer.

Each model has a *head* (the last, K-way layer: :func:`head_module`) and *stages* below it, bottom first
(:func:`backbone_stages`): the ResNet stem and layer1..layer4; VGG's five conv blocks and then fc6-fc7; the
hidden layers of the MLP and LeNet-5; the conv stages of ``convnet``. ``freeze_backbone`` and ``unfreeze_last``
work on that split.

``to_dense`` turns a VGG16's fully connected layers into convolutions (fc6 a 7x7 conv, fc7 and fc8 1x1 convs)
and averages the resulting class score map, so an image larger than 224 px is scored at every 7x7 window of
its conv5 map and the scores averaged (Simonyan & Zisserman 2015, "dense evaluation").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision import models

from detector.classify.init import activation_pieces, default_init_for, init_weights, make_activation
from detector.core import checkpoint
from detector.core.imagenet import imagenet_categories
from detector.models.pretrained import load_checked, load_pretrained_state_dict

CLASSIFIERS = (
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
TORCHVISION_CLASSIFIERS = ("vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "resnet101")
ANY_SIZE_CLASSIFIERS = (*TORCHVISION_CLASSIFIERS, "convnet")  # the others flatten a fixed input_size


class SoftmaxRegression(nn.Module):
    """[N, C, H, W] -> flatten [N, C*H*W] -> Linear -> logits [N, K]. No backbone: the head is the whole model."""

    def __init__(self, *, in_features: int, num_classes: int):
        super().__init__()
        self.stages = nn.ModuleList()
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(images.flatten(1))


def _dense_block(
    in_features: int, out_features: int, *, activation: str, batch_norm: bool = False, dropout: float = 0.0
) -> nn.Sequential:
    """Linear -> [batch norm] -> activation -> [dropout]; [N, in] -> [N, out]. The Linear is ``pieces`` times
    wider than ``out_features`` when the activation is maxout, which folds it back to ``out_features``."""
    width = activation_pieces(activation) * out_features
    layers: list[nn.Module] = [nn.Linear(in_features, width)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(width))
    layers.append(make_activation(activation))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """[N, C, H, W] -> flatten [N, C*H*W] -> one block per hidden size -> Linear head -> logits [N, K]."""

    def __init__(
        self,
        *,
        in_features: int,
        num_classes: int,
        hidden_sizes: tuple[int, ...] = (512, 256),
        activation: str = "relu",
        dropout: float = 0.5,
        batch_norm: bool = False,
    ):
        super().__init__()
        widths = (in_features, *hidden_sizes)
        self.stages = nn.ModuleList(
            _dense_block(a, b, activation=activation, batch_norm=batch_norm, dropout=dropout)
            for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = images.flatten(1)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def lenet5_map_size(size: int) -> int:
    """Side of LeNet-5's last feature map for an input side ``size``: two (5x5 valid conv, 2x2 pool) rounds,
    32 -> 28 -> 14 -> 10 -> 5, and 28 -> 24 -> 12 -> 8 -> 4."""
    return ((size - 4) // 2 - 4) // 2


class LeNet5(nn.Module):
    """[N, C, H, W] -> conv 6@5x5, pool -> conv 16@5x5, pool -> [N, 16 * h * w] -> fc 120 -> fc 84 -> head [N, K],
    with h = ``lenet5_map_size(H)`` (5 for the classic 32 x 32 input)."""

    def __init__(self, *, input_size: tuple[int, int, int], num_classes: int, activation: str = "relu"):
        super().__init__()
        channels, height, width = input_size
        h, w = lenet5_map_size(height), lenet5_map_size(width)
        if h < 1 or w < 1:
            raise ValueError(
                "lenet5 needs inputs of at least 16 x 16 pixels (32 x 32 is the classic size), got "
                f"input_size={tuple(input_size)}"
            )
        k = activation_pieces(activation)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(channels, 6 * k, 5), make_activation(activation), nn.AvgPool2d(2)),
                nn.Sequential(nn.Conv2d(6, 16 * k, 5), make_activation(activation), nn.AvgPool2d(2), nn.Flatten()),
                _dense_block(16 * h * w, 120, activation=activation),
                _dense_block(120, 84, activation=activation),
            ]
        )
        self.head = nn.Linear(84, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def _conv_stage(in_channels: int, out_channels: int, *, activation: str) -> nn.Sequential:
    """Two (3x3 conv -> batch norm -> activation) and a 2x2 max-pool: [N, in, H, W] -> [N, out, H / 2, W / 2].
    The convs have no bias (batch norm's shift replaces it) and are ``pieces`` times wider for maxout."""
    k = activation_pieces(activation)
    layers: list[nn.Module] = []
    for c in (in_channels, out_channels):
        layers += [
            nn.Conv2d(c, out_channels * k, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels * k),
            make_activation(activation),
        ]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class ConvNet(nn.Module):
    """[N, C, H, W] -> one ``_conv_stage`` per width in ``channels`` (each halves H and W) -> global average
    [N, channels[-1]] -> head [N, K]. Any input of at least 2 ** len(channels) pixels a side works; the
    default four stages turn 64 x 64 into a 4 x 4 map."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        activation: str = "relu",
    ):
        super().__init__()
        if not channels:
            raise ValueError("convnet needs at least one stage width in channels")
        widths = (in_channels, *channels)
        self.stages = nn.ModuleList(_conv_stage(a, b, activation=activation) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for stage in self.stages:
            x = stage(x)
        return self.head(x.mean(dim=(2, 3)))


class DenseClassifier(nn.Module):
    """A fully convolutional classifier: ``features`` [N, 3, H, W] -> [N, D, Hf, Wf], ``classifier`` (convs ending
    in the K-way ``head``) -> score map [N, K, h, w], averaged over h x w -> logits [N, K]."""

    def __init__(self, *, features: nn.Module, classifier: nn.Sequential, min_feature_size: int = 1):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.min_feature_size = min_feature_size

    @property
    def head(self) -> nn.Module:
        return self.classifier[-1]

    def score_map(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] -> class scores [N, K, h, w], one K-vector per window of the feature map."""
        f = self.features(images)
        if min(f.shape[-2:]) < self.min_feature_size:
            raise ValueError(
                f"image of {tuple(images.shape[-2:])} px is too small for dense evaluation: its feature map is "
                f"{tuple(f.shape[-2:])}, the first layer of the head needs {self.min_feature_size} x "
                f"{self.min_feature_size} (224 px for VGG16)"
            )
        return self.classifier(f)

    def forward(self, images: Tensor) -> Tensor:
        return self.score_map(images).mean(dim=(2, 3))


def _linear_to_conv(fc: nn.Linear, *, in_channels: int, kernel_size: int) -> nn.Conv2d:
    """A conv computing ``fc`` on every ``kernel_size`` window of a [N, in_channels, h, w] map. Its weight is a
    view of ``fc.weight``: the Linear's inputs are a C x kh x kw block flattened channel-major, exactly the
    order ``torch.flatten`` gives the [N, C, 7, 7] map that VGG feeds its classifier."""
    conv = nn.Conv2d(in_channels, fc.out_features, kernel_size, bias=fc.bias is not None)
    conv.weight = nn.Parameter(
        fc.weight.detach().view(fc.out_features, in_channels, kernel_size, kernel_size),
        requires_grad=fc.weight.requires_grad,
    )
    if fc.bias is not None:
        conv.bias = nn.Parameter(fc.bias.detach(), requires_grad=fc.bias.requires_grad)
    return conv


def to_dense(model: nn.Module) -> DenseClassifier:
    """Converts a torchvision VGG or ResNet classifier into a :class:`DenseClassifier` computing the same function
    at the training size (224 x 224 for VGG) and averaging a grid of predictions on larger images.

    VGG: fc6 (512 x 7 x 7 -> 4096) becomes a 7x7 conv, fc7 and fc8 1x1 convs; the adaptive 7x7 pooling is dropped
    so that a larger image gives a larger score map (a 288 px image: 9 x 9 conv5 map -> 3 x 3 scores). Inputs
    must be at least 224 px. ResNet: fc becomes a 1x1 conv applied before the global average, which by linearity
    gives the same logits at every size; it only exposes the score map.

    The new model shares the feature layers and the weights (as views) with ``model``: no copy is made, and
    ``model`` should not be used as a separate network afterwards. Dropout is kept, so call ``.eval()`` as usual.
    """
    if isinstance(model, models.VGG):
        fc6, relu6, drop6, fc7, relu7, drop7, fc8 = model.classifier
        in_channels = fc6.in_features // 49
        classifier = nn.Sequential(
            _linear_to_conv(fc6, in_channels=in_channels, kernel_size=7), relu6, drop6,
            _linear_to_conv(fc7, in_channels=fc7.in_features, kernel_size=1), relu7, drop7,
            _linear_to_conv(fc8, in_channels=fc8.in_features, kernel_size=1),
        )  # fmt: skip
        dense = DenseClassifier(features=model.features, classifier=classifier, min_feature_size=7)
    elif isinstance(model, models.ResNet):
        m = model
        features = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
        dense = DenseClassifier(
            features=features,
            classifier=nn.Sequential(_linear_to_conv(m.fc, in_channels=m.fc.in_features, kernel_size=1)),
        )
    else:
        raise TypeError(f"to_dense supports torchvision VGG and ResNet classifiers, not {type(model).__name__}")
    dense.class_names = getattr(model, "class_names", None)
    dense.train(model.training)
    return dense


def _head_prefix(name: str) -> str:
    return "fc." if name.startswith("resnet") else "classifier.6."


def _torchvision_classifier(
    name: str, *, num_classes: int, dropout: float, pretrained: str | Path | None, weights_dir: str | Path
) -> nn.Module:
    kwargs = {"dropout": dropout} if name.startswith("vgg") else {}
    model = getattr(models, name)(weights=None, num_classes=num_classes, **kwargs)
    if pretrained is not None:
        state = load_pretrained_state_dict(name, pretrained, weights_dir=weights_dir)
        # ImageNet's 1000-way head fits only a 1000-class model; any other head starts fresh.
        ignore = () if num_classes == 1000 else (_head_prefix(name),)
        load_checked(model, state, source=f"{name} ({pretrained})", ignore_prefixes=ignore)
    return model


def build_classifier(
    name: str,
    *,
    num_classes: int,
    input_size: tuple[int, int, int] = (3, 224, 224),
    activation: str = "relu",
    init: str | None = None,
    hidden_sizes: tuple[int, ...] = (512, 256),
    dropout: float = 0.5,
    batch_norm: bool = False,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    pretrained: str | Path | None = None,
    weights_dir: str | Path = "weights",
    dense: bool = False,
) -> nn.Module:
    """Builds classifier ``name`` (one of :data:`CLASSIFIERS`): images [N, C, H, W] -> logits [N, num_classes].

    ``input_size`` (C, H, W) fixes the input width of softmax, mlp and lenet5; the torchvision networks take any
    size from 32 px (VGG dense evaluation: from 224 px), and so does convnet from 2 ** len(channels) px.
    ``activation`` and ``hidden_sizes`` / ``batch_norm`` shape mlp and lenet5, ``activation`` and ``channels``
    (the stage widths) shape convnet (``activation`` is ignored by softmax; torchvision networks accept only "relu").
    ``dropout`` applies to mlp and to VGG's fc6/fc7.

    ``init`` (a scheme of :mod:`detector.classify.init`): softmax, mlp, lenet5 and convnet default to
    ``default_init_for(activation)``; torchvision networks keep torchvision's initialisation unless ``init``
    is given, in which case it applies to the whole network, or only to the new head when ``pretrained``.

    ``pretrained`` ("imagenet", a path to a torchvision-format state dict, or None) is for the torchvision
    networks: the backbone is loaded (a missing key or a wrong shape raises ``WeightsError``); the ImageNet head
    is kept when ``num_classes == 1000`` and replaced by a fresh one otherwise. ImageNet models
    (``num_classes=1000`` with ``pretrained``) get ``.class_names`` = :func:`imagenet_categories`; every other
    model has ``.class_names = None``. ``dense=True`` returns ``to_dense(model)``.
    """
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if pretrained in ("none", ""):
        pretrained = None
    if name in TORCHVISION_CLASSIFIERS:
        if activation != "relu":
            raise ValueError(
                f"{name} is torchvision's network and uses ReLU; activation={activation!r} is only for softmax, mlp "
                "and lenet5"
            )
        model = _torchvision_classifier(
            name, num_classes=num_classes, dropout=dropout, pretrained=pretrained, weights_dir=weights_dir
        )
        if init is not None:
            init_weights(head_module(model) if pretrained is not None else model, init, activation=activation)
        model.class_names = imagenet_categories() if (pretrained is not None and num_classes == 1000) else None
        return to_dense(model) if dense else model
    if pretrained is not None:
        raise ValueError(f"{name} has no pretrained weights; pretrained= is for {', '.join(TORCHVISION_CLASSIFIERS)}")
    if dense:
        raise ValueError(f"dense evaluation is for the VGG and ResNet networks, not {name}")
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {input_size!r}")
    model = _small_classifier(
        name, num_classes=num_classes, input_size=input_size, activation=activation, hidden_sizes=hidden_sizes,
        dropout=dropout, batch_norm=batch_norm, channels=channels,
    )  # fmt: skip
    # Logits feed softmax regression's softmax directly, with no nonlinearity in between: Xavier unless told
    # otherwise. The others take their activation's own scheme.
    init_weights(
        model, init or ("xavier_normal" if name == "softmax" else default_init_for(activation)), activation=activation
    )
    model.class_names = None
    return model


def _small_classifier(
    name: str,
    *,
    num_classes: int,
    input_size,
    activation: str,
    hidden_sizes,
    dropout: float,
    batch_norm: bool,
    channels,
) -> nn.Module:
    """softmax, mlp, lenet5 or convnet, initialised by torch's defaults (``build_classifier`` re-initialises)."""
    c, h, w = input_size
    if name == "softmax":
        return SoftmaxRegression(in_features=c * h * w, num_classes=num_classes)
    if name == "mlp":
        return MLP(
            in_features=c * h * w, num_classes=num_classes, hidden_sizes=tuple(hidden_sizes), activation=activation,
            dropout=dropout, batch_norm=batch_norm,
        )  # fmt: skip
    if name == "convnet":
        if min(h, w) < 2 ** len(channels):
            raise ValueError(
                f"convnet halves its input once per stage ({len(channels)} stages): it needs at least "
                f"{2 ** len(channels)} px a side, got input_size={tuple(input_size)}"
            )
        return ConvNet(in_channels=c, num_classes=num_classes, channels=tuple(channels), activation=activation)
    return LeNet5(input_size=(c, h, w), num_classes=num_classes, activation=activation)


def head_module(model: nn.Module) -> nn.Module:
    """The K-way last layer: ResNet's ``fc``, VGG's fc8 (``classifier[6]``), ``model.head`` otherwise."""
    if isinstance(model, models.ResNet):
        return model.fc
    if isinstance(model, models.VGG):
        return model.classifier[-1]
    if hasattr(model, "head"):
        return model.head
    raise TypeError(f"cannot tell the head of a {type(model).__name__}; build it with build_classifier")


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(head_module(model).parameters())


def backbone_stages(model: nn.Module) -> list[nn.Module]:
    """The layers below the head in stages, bottom first (the units ``unfreeze_last`` counts from the end).

    ResNet: stem (conv1 + bn1), layer1, layer2, layer3, layer4. VGG: conv blocks 1-5 (each ending at a max-pool)
    then fc6-fc7, which sit between conv5 and the head and so are the first to fine-tune. mlp and lenet5: one
    stage per hidden layer. convnet: its conv stages. softmax: none.
    """
    if isinstance(model, models.ResNet):
        return [nn.ModuleList([model.conv1, model.bn1]), model.layer1, model.layer2, model.layer3, model.layer4]
    if isinstance(model, models.VGG):
        blocks, current = [], []
        for layer in model.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.ModuleList(current))
                current = []
        return [*blocks, model.classifier[:-1]]
    if isinstance(model, (SoftmaxRegression, MLP, LeNet5, ConvNet)):
        return list(model.stages)
    raise TypeError(
        f"{type(model).__name__} has no known stages; fine-tune the model from build_classifier (before to_dense)"
    )


def set_train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, except batch-norm layers whose parameters are all frozen: they stay in eval mode, so a
    frozen backbone keeps its running statistics as well as its weights."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
    return model


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Leaves only the head trainable (``requires_grad``); returns ``model``.

    Batch-norm layers of the backbone still update their running statistics in train mode; put them in eval
    mode as well if those must stay fixed too.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head_parameters(model):
        p.requires_grad_(True)
    return model


def unfreeze_last(model: nn.Module, n: int, *, lr: float, lr_mult: float = 0.1) -> list[dict]:
    """Makes the head and the last ``n`` backbone stages trainable and everything else frozen.

    Returns optimizer parameter groups: ``[{"params": stages, "lr": lr * lr_mult}, {"params": head, "lr": lr}]``
    (the first left out when ``n == 0``), so pretrained layers move more slowly than the new head. Pass them to
    ``detector.optim.build_optimizer``.
    """
    stages = backbone_stages(model)
    if not 0 <= n <= len(stages):
        raise ValueError(
            f"{type(model).__name__} has {len(stages)} backbone stages; n must be in 0..{len(stages)}, got {n}"
        )
    freeze_backbone(model)
    head_ids = {id(p) for p in head_parameters(model)}
    backbone = [p for stage in stages[len(stages) - n :] for p in stage.parameters() if id(p) not in head_ids]
    for p in backbone:
        p.requires_grad_(True)
    groups = [{"params": backbone, "lr": lr * lr_mult}] if backbone else []
    return [*groups, {"params": head_parameters(model), "lr": lr}]


# --------------------------------------------------------------------------------------------
# Checkpoints

CLASSIFIER_KIND = "classifier"  # the checkpoint's "kind"; "model_config" holds build_classifier's arguments and "name"


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuilds a classifier from a checkpoint written by ``python -m detector.train --task classify``, from the
    file alone (no ImageNet weights needed). Returns (model in eval mode on ``device`` with ``.class_names``, the
    checkpoint dict without the weights)."""
    return classifier_from_checkpoint(checkpoint.load(path), device, source=path)


def classifier_from_checkpoint(
    ckpt: dict, device: str | torch.device = "cpu", *, source: str | Path = "the checkpoint"
) -> tuple[nn.Module, dict]:
    """``load_classifier`` for a checkpoint dict already read (``checkpoint.load``); ``source`` names it in errors.
    Takes the weights out of ``ckpt``."""
    if ckpt.get("kind") != CLASSIFIER_KIND:
        raise checkpoint.CheckpointError(
            f"{source} holds a {ckpt.get('kind')!r} model, not a classifier; train one with --task classify"
        )
    config = dict(ckpt["model_config"])
    name = config.pop("name")
    config["input_size"] = tuple(config["input_size"])
    config["hidden_sizes"] = tuple(config["hidden_sizes"])
    if "channels" in config:  # absent from checkpoints written before convnet existed
        config["channels"] = tuple(config["channels"])
    config["init"] = None  # every weight comes from the file
    model = build_classifier(name, **config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt.pop("model").items()})
    model.class_names = tuple(ckpt["class_names"])
    return model.to(device).eval(), ckpt
