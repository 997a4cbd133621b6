"""ImageNet's normalisation and class names: what every ImageNet-initialised network expects of its input."""

from __future__ import annotations

from torchvision import models

# Per-channel mean and standard deviation of ImageNet's training images (RGB, in [0, 1]), as torchvision's weights
# were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The mean as a 0-255 fill colour: borders filled with it become zeros once the image is normalised, the value
# the detector pads its batches with.
IMAGENET_MEAN_FILL = tuple(float(round(m * 255)) for m in IMAGENET_MEAN)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names in torchvision's label order ('tench', 'goldfish', ...); no download needed."""
    return list(models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
