"""Augmentation presets by name, for classification and for (box-aware) detection, and the choice of a detector's
training transform (``detection_transform``: the papers' flip, or a preset).

``PRESETS`` are, in increasing strength (``d4`` aside):

- ``none``: nothing (classification still resizes to the input size and normalises).
- ``basic``: a horizontal flip (classification adds ImageNet mean/std normalisation; detection never normalises,
  the detector does).
- ``alexnet``: Krizhevsky et al. 2012: shorter side 256, centre 256 x 256, random 224 x 224 crops, flip, and
  "fancy PCA" lighting noise along the ImageNet RGB eigenvectors (``ImageNetPCALighting``).
- ``vgg``: Simonyan & Zisserman 2014 multi-scale training: shorter side uniform in [256, 512], random
  224 x 224 crop, flip.
- ``strong``: flip, one affine warp (rotation, shift, zoom 1.0-1.6x, shear, anisotropic stretch 1.0-1.3x) and
  brightness/contrast jitter.
- ``d4``: one of the eight symmetries of the square (flips and quarter turns, ``A.D4``), each equally likely, and
  nothing else: exact (no interpolation, no borders), for images whose class does not depend on their orientation,
  like the generated shapes (``detector.data.synth``) or aerial and microscope pictures. Not for natural scenes.

Classification sizes scale with ``size``: 256 becomes ``round(256 * size / 224)``.

Detection keeps the whole scene at roughly its size instead of a fixed 224 crop: ``alexnet`` and ``vgg`` crop a
random window whose sides are a fraction of the image's (0.875, the paper's 224 / 256, for ``alexnet``; uniform in
[0.5, 1.0] for ``vgg``, VGG's 2x scale range ending at the full image). The detector resizes every image to its
``min_size``, so a window of fraction f is seen zoomed by 1 / f: the crop *is* the scale jitter. Boxes are clipped
to the window and dropped when less than ``MIN_VISIBILITY`` of their area stays in the image or they are smaller
than ``MIN_AREA`` pixels (see ``detection_pipeline``); labels and ``difficult`` follow their boxes.

Images are numpy uint8 H x W x 3 RGB; boxes are ``xyxy`` float in continuous pixel coordinates (albumentations'
``pascal_voc``).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch
from torch import Tensor

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_MEAN_FILL, IMAGENET_STD
from detector.data.transforms import DetectionTransform

__all__ = [
    "PRESETS",
    "MIN_VISIBILITY",
    "MIN_AREA",
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "ImageNetPCALighting",
    "RandomFractionCrop",
    "StretchAffine",
    "ClassificationTransform",
    "classification_transform",
    "detection_preset",
    "detection_pipeline",
    "detection_transform",
]

PRESETS: tuple[str, ...] = ("none", "basic", "alexnet", "vgg", "strong", "d4")

# A box keeps at least a quarter of its area through each geometric step, and at least a 4 x 4 pixel area;
# slivers left at a crop's edge are not objects anyone could recognise.
MIN_VISIBILITY = 0.25
MIN_AREA = 16.0

# ImageNet RGB covariance of pixel values in [0, 1] (as published with fb.resnet.torch and used by most
# re-implementations of AlexNet's lighting noise): eigenvalues, and eigenvectors as *columns*, rows R, G, B.
IMAGENET_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
IMAGENET_EIGVEC = np.array(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ],
    dtype=np.float32,
)

# Affine borders are filled with the ImageNet mean colour, which normalisation (here or in the detector) maps to 0:
# the same value the detector pads batches with.
_MEAN_FILL = IMAGENET_MEAN_FILL


class ImageNetPCALighting(A.ImageOnlyTransform):
    """AlexNet's "fancy PCA": adds ``IMAGENET_EIGVEC @ (alpha * IMAGENET_EIGVAL)`` to every pixel, alpha ~ N(0, std).

    albumentations' ``FancyPCA`` recomputes the eigen-decomposition from each image's own pixels; the paper uses the
    one of the whole training set. With a fixed decomposition the shift is the same for every image of a dataset
    and does not depend on the image content (a flat image gets shifted too), so this class uses ImageNet's.
    The shift is in [0, 1] units and scaled by 255 for uint8 images; a typical shift is a few grey levels.
    """

    def __init__(self, alpha_std: float = 0.1, p: float = 1.0):
        super().__init__(p=p)
        self.alpha_std = alpha_std

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.random_generator.normal(0.0, self.alpha_std, 3).astype(np.float32)}

    def apply(self, img: np.ndarray, alpha: np.ndarray, **params: Any) -> np.ndarray:
        shift = IMAGENET_EIGVEC @ (alpha * IMAGENET_EIGVAL)  # [3] RGB
        if img.dtype == np.uint8:
            return np.clip(img.astype(np.float32) + 255.0 * shift, 0, 255).round().astype(np.uint8)
        return np.clip(img + shift, 0.0, 1.0).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha_std",)


class RandomFractionCrop(A.RandomCropFromBorders):
    """Crops a window whose height and width are the same random fraction f ~ U(scale) of the image's, at a
    uniformly random position; the aspect ratio is kept and the window is not resized. Boxes are clipped and
    filtered by the pipeline's ``BboxParams``.

    Built on ``RandomCropFromBorders`` for its crop (image, boxes, masks, keypoints); only the window is chosen here.
    """

    def __init__(self, scale: tuple[float, float] = (0.875, 0.875), p: float = 1.0):
        super().__init__(p=p)
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"RandomFractionCrop: scale must satisfy 0 < low <= high <= 1, got {scale}")
        self.scale = (float(scale[0]), float(scale[1]))

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        f = self.py_random.uniform(*self.scale)
        h, w = max(1, round(f * height)), max(1, round(f * width))
        y0 = self.py_random.randint(0, height - h)
        x0 = self.py_random.randint(0, width - w)
        return {"crop_coords": (x0, y0, x0 + w, y0 + h)}

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)


class StretchAffine(A.Affine):
    """``A.Affine`` whose scale is an isotropic zoom s ~ U(scale) times a stretch t ~ U(stretch) along x or y
    (chosen with equal probability): scale (s t, s) or (s, s t). ``A.Affine`` alone can only draw x and y scales
    independently from one range, which cannot express "zoom 1.0-1.6x and aspect change at most 1.3x".

    Boxes are moved as albumentations' ``A.Affine`` moves them (``rotate_method="largest_box"``: the box of the
    rotated corners, which contains the object, and is tight for upright rectangles).
    """

    def __init__(self, *, scale: tuple[float, float], stretch: tuple[float, float], **affine_kwargs: Any):
        super().__init__(scale=scale, **affine_kwargs)
        self.zoom = (float(scale[0]), float(scale[1]))
        self.stretch = (float(stretch[0]), float(stretch[1]))

    # A.Affine calls self._get_scale(self.scale, keep_ratio, balanced_scale, py_random) once per call.
    def _get_scale(self, scale, keep_ratio, balanced_scale, random_state) -> dict[str, float]:
        s = random_state.uniform(*self.zoom)
        t = random_state.uniform(*self.stretch)
        return {"x": s * t, "y": s} if random_state.random() < 0.5 else {"x": s, "y": s * t}


def _strong_geometry() -> StretchAffine:
    # Rotation and shift ranges are moderate choices for natural images (upright scenes, objects anywhere);
    # zoom, shear and stretch are the preset's definition.
    return StretchAffine(
        scale=(1.0, 1.6),
        stretch=(1.0, 1.3),
        rotate=(-15.0, 15.0),
        translate_percent=(-0.1, 0.1),
        shear=(-20.0, 20.0),
        border_mode=0,  # cv2.BORDER_CONSTANT: reflected borders would show objects without boxes
        fill=_MEAN_FILL,
        p=1.0,
    )


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")


# --------------------------------------------------------------------------------------------
# Classification


class ClassificationTransform:
    """uint8 numpy [H, W, 3] RGB -> float32 tensor [3, size, size], normalised with the ImageNet mean and std."""

    def __init__(self, transforms: list[A.BasicTransform], *, seed: int | None = None):
        self.pipeline = A.Compose(
            [*transforms, A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0)], seed=seed
        )

    def reseed(self, seed: int) -> None:
        """Makes the next call's random choices a function of ``seed`` alone."""
        self.pipeline.set_random_seed(seed)

    def __call__(self, image: np.ndarray) -> Tensor:
        out = self.pipeline(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32))


def classification_transform(
    preset: str, *, train: bool, size: int = 224, seed: int | None = None
) -> ClassificationTransform:
    """The ``preset``'s classification pipeline; the result maps uint8 [H, W, 3] RGB to float [3, size, size].

    Evaluation: shorter side ``round(256 * size / 224)`` then a centre ``size`` crop for ``alexnet`` and ``vgg`` (as
    in their papers' single-crop evaluation); a plain resize to ``size`` x ``size`` for the others, which train on
    whole images.
    """
    _check_preset(preset)
    base = round(256 * size / 224)
    if preset in ("alexnet", "vgg") and not train:
        ops = [A.SmallestMaxSize(max_size=base), A.CenterCrop(size, size)]
    elif preset == "alexnet":
        # The paper rescales to 256 on the shorter side, takes the central 256 x 256 and trains on 224 crops of it.
        ops = [
            A.SmallestMaxSize(max_size=base),
            A.CenterCrop(base, base),
            A.RandomCrop(size, size),
            A.HorizontalFlip(p=0.5),
            ImageNetPCALighting(alpha_std=0.1),
        ]
    elif preset == "vgg":
        scales = list(range(base, 2 * base + 1))  # SmallestMaxSize draws one of these uniformly
        ops = [A.SmallestMaxSize(max_size=scales), A.RandomCrop(size, size), A.HorizontalFlip(p=0.5)]
    elif preset == "strong" and train:
        # Warp at the original resolution, then resize: zooming after a downscale would blur.
        ops = [
            _strong_geometry(),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8),
            A.Resize(size, size),
        ]
    elif preset == "basic" and train:
        ops = [A.Resize(size, size), A.HorizontalFlip(p=0.5)]
    elif preset == "d4" and train:
        ops = [A.Resize(size, size), A.D4(p=1.0)]
    else:  # none; basic, strong and d4 at evaluation
        ops = [A.Resize(size, size)]
    return ClassificationTransform(ops, seed=seed)


# --------------------------------------------------------------------------------------------
# Detection


def detection_preset(preset: str, *, train: bool) -> list[A.BasicTransform]:
    """The ``preset``'s box-aware albumentations transforms for detection, for ``DetectionTransform(transforms)``.

    No normalisation and no fixed-size crop (the detector normalises and resizes). Nothing at evaluation. Wrap the
    list with ``detection_pipeline`` (or pass ``min_visibility=MIN_VISIBILITY, min_area=MIN_AREA`` to
    ``DetectionTransform``) so that boxes mostly cut away by a crop or warp are dropped.
    """
    _check_preset(preset)
    if not train or preset == "none":
        return []
    flip = A.HorizontalFlip(p=0.5)
    if preset == "basic":
        return [flip]
    if preset == "alexnet":
        return [RandomFractionCrop(scale=(0.875, 0.875)), flip, ImageNetPCALighting(alpha_std=0.1)]
    if preset == "vgg":
        return [RandomFractionCrop(scale=(0.5, 1.0)), flip]
    if preset == "d4":
        return [A.D4(p=1.0)]  # quarter turns swap the image's height and width; the detector resizes anyway
    return [flip, _strong_geometry(), A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8)]


def detection_pipeline(preset: str, *, train: bool, seed: int | None = None) -> DetectionTransform:
    """``DetectionTransform`` of ``detection_preset(preset, train=train)`` with the box filter this module
    recommends (``MIN_VISIBILITY``, ``MIN_AREA``)."""
    return DetectionTransform(
        detection_preset(preset, train=train), seed=seed, min_visibility=MIN_VISIBILITY, min_area=MIN_AREA
    )


def detection_transform(
    train: bool, *, hflip: float = 0.5, seed: int | None = None, preset: str | None = None
) -> DetectionTransform:
    """The papers' augmentation: a horizontal flip in training (resizing is the model's); nothing at test.

    With ``preset`` (a name in ``PRESETS``) that preset's pipeline instead, ``hflip`` unused.
    """
    if preset is not None:
        return detection_pipeline(preset, train=train, seed=seed)
    return DetectionTransform([A.HorizontalFlip(p=hflip)] if train and hflip > 0 else [], seed=seed)
