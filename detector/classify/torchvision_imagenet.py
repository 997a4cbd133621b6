"""torchvision's ImageNet classifier files, served as they are.

``python -m detector.weights fetch resnet50`` downloads ``weights/resnet50-0676ba61.pth``: torchvision's ImageNet-1k
state dict. The file holds weights only, but its name says the rest: torchvision's weight enums map it to the
architecture, the 1000 class names and the evaluation transform its published accuracy was measured with. So
``load_predictor`` and the service take such a file by its name (every classification file of
``TORCHVISION_CLASSIFIERS`` in the enums: IMAGENET1K_V1, the files ``fetch`` downloads, and V2), without a second
100 MB copy of it as a checkpoint.

Evaluation transform (torchvision's ``ImageClassification`` on the uint8 image): shorter side to 256 (232 for the V2
files) with antialiased bilinear resizing, centre 224 x 224 crop, ImageNet mean and std. Our ``vgg`` preset has the
same geometry but resizes with OpenCV's bilinear without antialiasing, which moves a photo's probabilities by about
1e-2 (a ResNet-18 whose top class has 0.37); these files get torchvision's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torchvision import models
from torchvision.models import WeightsEnum

from detector.classify.models import CLASSIFIER_KIND, TORCHVISION_CLASSIFIERS, build_classifier
from detector.core import checkpoint
from detector.models.pretrained import IMAGENET_FILES, WeightsError


def torchvision_imagenet_weights(path: str | Path) -> tuple[str, WeightsEnum] | None:
    """(architecture, torchvision's weights entry) when ``path`` is named as torchvision publishes an ImageNet
    classifier (``resnet50-0676ba61.pth``), else None. Reads the name only."""
    name = Path(path).name
    for arch in TORCHVISION_CLASSIFIERS:
        for weights in models.get_model_weights(arch):
            # VGG16's IMAGENET1K_FEATURES has no trained classifier (and no class names): not a classifier file.
            if weights.meta.get("categories") and weights.url.rsplit("/", 1)[-1] == name:
                return arch, weights
    return None


def fetch_hint(path: str | Path) -> str:
    """How to get the torchvision file that ``path`` names ("" for other names)."""
    path = Path(path)
    found = torchvision_imagenet_weights(path)
    if found is None:
        return ""
    arch, weights = found
    if IMAGENET_FILES.get(arch) == path.name:
        return f"python -m detector.weights fetch {arch} --dir {path.parent} downloads it"
    return f"download {weights.url} into {path.parent}/"


class TorchvisionEvalTransform:
    """uint8 [H, W, 3] RGB -> float [3, crop, crop]: torchvision's evaluation transform of ``weights`` applied to the
    image as a uint8 tensor, as torchvision evaluates it. ``resize_size`` and ``crop_size`` replace its sizes."""

    def __init__(self, weights: WeightsEnum, **sizes: int):
        self.transform = weights.transforms(**sizes)

    def __call__(self, image: np.ndarray) -> Tensor:
        return self.transform(torch.from_numpy(image).permute(2, 0, 1))


def load_torchvision_imagenet(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict, WeightsEnum]:
    """torchvision's network for the ImageNet file ``path``, its ImageNet head kept and ``.class_names`` the 1000
    ImageNet names, in eval mode on ``device``; a checkpoint-like description of it (kind, model_config,
    class_names, torchvision's published metrics, source); and its weights entry. Raises ``CheckpointError``
    naming the file (and the fetch command when it is missing)."""
    path = Path(path)
    found = torchvision_imagenet_weights(path)
    if found is None:
        raise checkpoint.CheckpointError(
            f"{path} is not named as a torchvision ImageNet classifier file: "
            f"{', '.join(sorted(IMAGENET_FILES.values()))}, ..."
        )
    arch, weights = found
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{path} does not exist: {fetch_hint(path)}")
    try:
        model = build_classifier(arch, num_classes=1000, pretrained=path)
    except WeightsError as exc:
        raise checkpoint.CheckpointError(f"{path}: {exc}") from None
    crop = weights.transforms().crop_size[0]
    published = weights.meta["_metrics"]["ImageNet-1K"]  # in percent: {"acc@1": 76.13, "acc@5": 92.862}
    meta = {
        "kind": CLASSIFIER_KIND,
        "model_config": {"name": arch, "input_size": [3, crop, crop], "num_classes": 1000},
        "class_names": list(model.class_names),
        "metrics": {  # as our classifiers record theirs
            "split": "ImageNet-1K val, torchvision's figures",
            "top1": published["acc@1"] / 100,
            "top5": published["acc@5"] / 100,
        },
        "source": {"torchvision": arch, "file": path.name, "weights": str(weights)},
    }
    return model.to(device).eval(), meta, weights
