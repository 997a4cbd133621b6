"""Inference-only preparation of a trained detector: what the benchmark and the service run, not what trains.

``prepare_for_inference(model, precision)`` changes the model in place, once, after loading:

- channels-last memory format for the convolution weights, so oneDNN (CPU) and cuDNN (CUDA) pick their
  NHWC kernels; activations follow the weights' format;
- for "bf16"/"fp16": frozen batch norm folded into the convolution before it (scale and shift computed in
  fp32, then rounded once), and convolution and linear weights stored in the low precision. Under
  ``torch.inference_mode`` autocast does not cache its weight casts, so without this every forward re-casts
  all weights (VGG16's fc6 alone is 102 M parameters) and every frozen batch norm turns the activations
  back to fp32. The prepared model must then run under autocast at that precision, as the service and
  ``detector.bench`` do; the box decoding, NMS and everything after the predictor stay in fp32.

fp32 models keep their weights, so fp32 answers are unchanged (channels-last changes the kernels' summation
order only: outputs agree to float rounding, see ``detector.bench --check``).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detector.core.precision import DTYPES, PRECISIONS

LOW_PRECISION = ("bf16", "fp16")


@torch.no_grad()
def fold_frozen_batch_norm(model: nn.Module) -> int:
    """Folds every ``FrozenBatchNorm2d``, and every ``BatchNorm2d`` of a model in eval mode (its running statistics
    are then constants too: ``resnet50_fpn_v2``'s trunk and heads), that directly follows a ``Conv2d`` (in an
    ``nn.Sequential``, as torchvision's ``Conv2dNormActivation``, or as its ResNet blocks pair ``convN``/``bnN``)
    into that convolution and replaces it by ``nn.Identity``. Returns the number folded."""
    folded = 0
    for module in list(model.modules()):
        pairs: list[tuple[nn.Module, str, nn.Module]] = []  # (conv, name of the bn in module, bn)
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                pairs.append((module._modules[a], b, module._modules[b]))
        else:
            for i in range(1, 4):
                pairs.append((getattr(module, f"conv{i}", None), f"bn{i}", getattr(module, f"bn{i}", None)))
        for conv, bn_name, bn in pairs:
            constant = isinstance(bn, FrozenBatchNorm2d) or (
                isinstance(bn, nn.BatchNorm2d) and not bn.training and bn.running_var is not None
            )
            if isinstance(conv, nn.Conv2d) and constant:
                weight = bn.weight.float() if bn.weight is not None else torch.ones_like(bn.running_var.float())
                bias = bn.bias.float() if bn.bias is not None else torch.zeros_like(bn.running_var.float())
                scale = weight * (bn.running_var.float() + bn.eps).rsqrt()
                shift = bias - bn.running_mean.float() * scale
                if conv.bias is not None:
                    shift = shift + conv.bias.float() * scale
                conv.weight.copy_(conv.weight.float() * scale[:, None, None, None])
                conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


@torch.no_grad()
def prepare_for_inference(model: nn.Module, precision: str = "fp32", *, channels_last: bool = True) -> nn.Module:
    """Puts ``model`` in eval mode and prepares it for inference at ``precision`` ("fp32", "bf16", "fp16"),
    in place (see the module docstring). Returns the model. Not for training: folded batch norm and
    low-precision weights are not what the optimizer should see."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    model.eval()
    if precision in LOW_PRECISION:
        fold_frozen_batch_norm(model)
        dtype = DTYPES[precision]
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.to(dtype)
    if channels_last:
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    model.prepared_precision = precision
    return model
