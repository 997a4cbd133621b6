"""Image classification: classifiers by name (softmax regression to ResNet-101), activations and initialisers by
name, and transfer-learning helpers (freeze the backbone, unfreeze the last stages, dense VGG evaluation)."""

from detector.classify.init import (
    ACTIVATIONS,
    INIT_SCHEMES,
    Maxout,
    activation_pieces,
    default_init_for,
    init_weights,
    make_activation,
)
from detector.classify.models import (
    CLASSIFIERS,
    DenseClassifier,
    backbone_stages,
    build_classifier,
    freeze_backbone,
    head_module,
    head_parameters,
    imagenet_categories,
    load_classifier,
    to_dense,
    unfreeze_last,
)

__all__ = [
    "ACTIVATIONS",
    "CLASSIFIERS",
    "INIT_SCHEMES",
    "DenseClassifier",
    "Maxout",
    "activation_pieces",
    "backbone_stages",
    "build_classifier",
    "default_init_for",
    "freeze_backbone",
    "head_module",
    "head_parameters",
    "imagenet_categories",
    "init_weights",
    "load_classifier",
    "make_activation",
    "to_dense",
    "unfreeze_last",
]
