"""Backbones split the way the two-stage papers split them: a trunk (stride 16) and an RoI head.

Shape shorthand: N images, C trunk channels, Hf x Wf = H/16 x W/16 feature map, R RoIs, P pooled size,
D head representation size.

- VGG16: conv1_1..conv5_3 (last max-pool dropped) is the trunk, C=512; fc6/fc7 of the ImageNet classifier
  are the head on 7x7 pooled RoIs, D=4096; conv1-conv2 frozen by default (as py-faster-rcnn).
- ResNet "C4": stem..res4 is the trunk (C=1024, or 256 for ResNet-18/34), res5 + global average pooling is
  the head on 14x14 pooled RoIs (D=2048, or 512); batch norm frozen everywhere, stem and res2 frozen.
- tiny: a narrow stride-8 trunk trained from scratch, for tests and the small default model.

Training from scratch (``pretrained=None``) changes two things the papers fix for ImageNet weights, both chosen in
the model's config (so a checkpoint rebuilds the same network): ``frozen_stages=0`` trains every layer (frozen
random filters are noise), and ``norm="gn"`` gives the ResNets GroupNorm, whose statistics come from each
image alone (a detection batch of 1-4 images is too few for batch norm's). ``box_head="mlp"`` replaces the trunk's
own top layers as the RoI head by torchvision's two 1024-d fully connected layers on 7x7 RoIs (``TwoMLPHead``), a
tenth of res5's cost per RoI.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from torchvision import models
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.ops.misc import FrozenBatchNorm2d

from detector.models.pretrained import load_checked, load_pretrained_state_dict

BACKBONES = ("vgg16", "resnet18", "resnet34", "resnet50", "resnet101", "tiny")
# The trunk's stride, where the RPN places its anchors (tests check it against the built trunks).
STRIDES = {name: 8 if name == "tiny" else 16 for name in BACKBONES}
NORMS = ("frozen_bn", "bn", "gn")  # the ResNets' normalisation layers (VGG16 has none; tiny always GroupNorm)
BOX_HEADS = ("trunk", "mlp")  # the RoI head: the trunk's own top layers, or torchvision's TwoMLPHead
MLP_POOL, MLP_SIZE = 7, 1024


class Backbone(nn.Module):
    """``body``: images [N, 3, H, W] -> features [N, C, Hf, Wf]; ``head``: pooled RoIs [R, C, P, P] -> [R, D]."""

    def __init__(
        self,
        *,
        body: nn.Module,
        head: nn.Module,
        out_channels: int,
        representation_size: int,
        pool_size: int,
        stride: int = 16,
    ):
        super().__init__()
        self.body = body
        self.head = head
        self.out_channels = out_channels
        self.representation_size = representation_size
        self.pool_size = pool_size
        self.stride = stride

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


# Index in vgg16().features of the first layer of each conv stage: frozen_stages=2 freezes conv1-conv2.
_VGG_STAGE_STARTS = (0, 5, 10, 17, 24)


def _mlp_backbone(body: nn.Module, out_channels: int, stride: int = 16) -> Backbone:
    head = TwoMLPHead(out_channels * MLP_POOL**2, MLP_SIZE)  # flattens [R, C, 7, 7] itself
    return Backbone(
        body=body, head=head, out_channels=out_channels, representation_size=MLP_SIZE, pool_size=MLP_POOL, stride=stride
    )


def vgg16_backbone(state_dict: dict | None = None, *, frozen_stages: int = 2, box_head: str = "trunk") -> Backbone:
    """``frozen_stages``: how many of the five conv stages keep their weights (2 = conv1-conv2, py-faster-rcnn)."""
    vgg = models.vgg16(weights=None)
    if state_dict is not None:
        load_checked(vgg, state_dict, source="vgg16")
    body = vgg.features[:30]  # up to relu5_3; pool5 is replaced by RoI pooling
    trainable_from = _VGG_STAGE_STARTS[frozen_stages] if frozen_stages < len(_VGG_STAGE_STARTS) else len(body)
    for layer in list(body)[:trainable_from]:
        _freeze(layer)
    if box_head == "mlp":
        return _mlp_backbone(body, 512)
    head = nn.Sequential(nn.Flatten(), *list(vgg.classifier)[:6])  # fc6, relu, dropout, fc7, relu, dropout
    return Backbone(body=body, head=head, out_channels=512, representation_size=4096, pool_size=7)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)  # Wu & He (2018): 32 groups; ResNet-18's 64-channel stem gets groups of 2


_NORM_LAYERS = {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "gn": _group_norm}


def resnet_c4_backbone(
    name: str,
    state_dict: dict | None = None,
    *,
    frozen_stages: int = 2,
    norm: str = "frozen_bn",
    box_head: str = "trunk",
) -> Backbone:
    """``frozen_stages``: 1 = stem, 2 = stem + res2 (default), 0 = nothing frozen; ``norm``: one of ``NORMS``
    (frozen_bn: batch norm frozen at its loaded statistics, the papers' choice with ImageNet weights)."""
    resnet = getattr(models, name)(weights=None, norm_layer=_NORM_LAYERS[norm])
    if state_dict is not None:
        if norm == "gn":
            raise ValueError("ImageNet weights come with batch norm; use norm='frozen_bn' or 'bn' to load them")
        if norm == "frozen_bn":  # FrozenBatchNorm2d has no num_batches_tracked; torchvision's checkpoints do.
            state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
        load_checked(resnet, state_dict, source=name)
    stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
    body = nn.Sequential(stem, resnet.layer1, resnet.layer2, resnet.layer3)
    for stage in list(body)[:frozen_stages]:
        _freeze(stage)
    c4 = resnet.layer4[0].conv1.in_channels  # res4's output width, for basic and bottleneck blocks alike
    if box_head == "mlp":
        return _mlp_backbone(body, c4)
    head = nn.Sequential(resnet.layer4, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Backbone(body=body, head=head, out_channels=c4, representation_size=resnet.fc.in_features, pool_size=14)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    # GroupNorm rather than BatchNorm: detection batches are 1-4 images, too few for batch statistics.
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.GroupNorm(8, cout),
        nn.ReLU(inplace=True),
    ]


def tiny_backbone(width: int = 32) -> Backbone:
    """A narrow stride-8 network trained from scratch (about 1.6 M parameters at width 32).

    Stride 8 rather than 16: the generated dataset has objects from 12 px, which a stride-16 map on a 320 px
    image barely resolves. Dilated last convolutions widen the receptive field (about 150 px) for the large
    objects without the cost of another downsampling stage.
    """
    w = width
    body = nn.Sequential(
        *_conv(3, w, stride=2),
        *_conv(w, 2 * w, stride=2),
        *_conv(2 * w, 2 * w),
        *_conv(2 * w, 3 * w, stride=2),
        *_conv(3 * w, 3 * w),
        *_conv(3 * w, 4 * w, dilation=2),
        *_conv(4 * w, 4 * w, dilation=4),
    )
    head = nn.Sequential(
        *_conv(4 * w, 6 * w),
        *_conv(6 * w, 6 * w, stride=2),  # 7x7 -> 4x4
        nn.Flatten(),
        nn.Linear(6 * w * 16, 16 * w),
        nn.ReLU(inplace=True),
    )
    return Backbone(body=body, head=head, out_channels=4 * w, representation_size=16 * w, pool_size=7, stride=8)


def build_backbone(
    name: str,
    pretrained: str | Path | None = None,
    *,
    weights_dir: str | Path = "weights",
    norm: str = "frozen_bn",
    frozen_stages: int = 2,
    box_head: str = "trunk",
) -> Backbone:
    """Builds a backbone by name; ``pretrained`` is ``None``/"none", "imagenet" (torchvision's file looked up in
    ``weights_dir`` and torch's hub cache) or a path to a torchvision-format state dict. ``norm``, ``frozen_stages``
    and ``box_head``: see the module docstring (the tiny backbone has its own and ignores them)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if box_head not in BOX_HEADS:
        raise ValueError(f"unknown box head {box_head!r}; choose one of {', '.join(BOX_HEADS)}")
    if name == "tiny":
        if pretrained not in (None, "none"):
            raise ValueError("the tiny backbone has no ImageNet weights; use --pretrained none")
        return tiny_backbone()
    state_dict = None
    if pretrained not in (None, "none"):
        state_dict = load_pretrained_state_dict(name, pretrained, weights_dir=weights_dir)
    if name == "vgg16":
        return vgg16_backbone(state_dict, frozen_stages=frozen_stages, box_head=box_head)
    return resnet_c4_backbone(name, state_dict, frozen_stages=frozen_stages, norm=norm, box_head=box_head)
