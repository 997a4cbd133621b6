"""The one place that turns an image into model input and the model's output into an answer, for every consumer:
``detector.predict``, ``detector.evaluate``, validation during training, the service's batch workers, export.

    predictor = load_predictor("weights/default-detector.pt", device="auto", precision="auto")
    (result,) = predictor([image])   # image: PIL image or uint8 array [H, W, 3], RGB
    load_predictor("weights/resnet50-0676ba61.pth")   # torchvision's ImageNet file, known by its name: 1000 classes

A predictor holds a model in eval mode on its device, prepared for its precision (``prepare_for_inference``:
channels-last; bf16/fp16 weights with frozen batch norm folded), the class names and the thresholds the checkpoint
records. Its three steps can also be called apart, as the service does (decoding and ``to_input`` in a request's
thread, ``predict_batch`` in the model's worker, naming in the response):

    to_input(image) -> tensor           (CPU)
    predict_batch([tensor, ...]) -> raw outputs on the CPU, in fp32
    detections(output, ...) / top_k(probs, k) -> named answers

Detection: boxes are ``xyxy`` float in continuous pixel coordinates of the input image; labels index
``class_names`` from 1 (0 is background). Classification: probabilities [K] over ``class_names``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from detector.classify.models import ANY_SIZE_CLASSIFIERS, CLASSIFIER_KIND, classifier_from_checkpoint
from detector.classify.torchvision_imagenet import (
    TorchvisionEvalTransform,
    load_torchvision_imagenet,
    torchvision_imagenet_weights,
)
from detector.core import checkpoint
from detector.core.devices import device_from_name
from detector.core.precision import Precision, precision_autocast, resolve_precision
from detector.data.augment import classification_transform
from detector.inference.prepare import prepare_for_inference
from detector.inference.tta import classify_tta, detect_flip_tta, tta_sizes, tta_source_transform
from detector.models.base import Detector
from detector.models.factory import DETECTOR_KINDS, detector_from_checkpoint

Task = Literal["detect", "classify"]
ImageLike = Image.Image | np.ndarray


@dataclass(frozen=True)
class NamedDetection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the image's pixels


def _resolve(device: str | torch.device, precision: str | Precision) -> tuple[torch.device, Precision]:
    device = device_from_name(device) if isinstance(device, str) else torch.device(device)
    if isinstance(precision, str):
        precision = resolve_precision(precision, device)
    return device, precision


def _rgb_array(image: ImageLike) -> np.ndarray:
    """uint8 [H, W, 3], a writable copy (``torch.from_numpy`` shares memory with it)."""
    if isinstance(image, Image.Image):
        image = image.convert("RGB") if image.mode != "RGB" else image
    return np.array(image, dtype=np.uint8)


class Predictor:
    """What both tasks' predictors share: the model on its device at its precision, names, the checkpoint's meta."""

    task: Task

    def __init__(self, model: nn.Module, *, device: str | torch.device = "cpu", precision: str | Precision = "fp32"):
        self.device, self.precision = _resolve(device, precision)
        self.model = model.to(self.device).eval()
        self.class_names: tuple[str, ...] = tuple(getattr(model, "class_names", None) or ())
        self.meta: dict[str, Any] = {}  # the checkpoint without its weights, when loaded from one
        self.source: Path | None = None

    def autocast(self):
        return precision_autocast(self.device, self.precision.name)

    def info(self) -> dict[str, Any]:
        """What the service's ``/models`` shows of this model."""
        config = self.meta.get("model_config") or {}
        return {
            "task": self.task,
            "kind": self.meta.get("kind"),
            "classes": list(self.class_names),
            "backbone": config.get("backbone") or config.get("name"),
            "device": str(self.device),
            "precision": self.precision.name,
            "precision_reason": self.precision.reason,
            "checkpoint": str(self.source) if self.source else None,
        }

    def warm_up(self) -> None:
        """One forward on a blank image (first-call allocations and kernel choices out of the way)."""
        blank = Image.new("RGB", (320, 240), (127, 127, 127))
        self.predict_batch([self.to_input(blank)])

    def to_input(self, image: ImageLike, tta: str = "none") -> Tensor:
        raise NotImplementedError

    @property
    def decode_bounds(self) -> tuple[float, float]:
        """(shorter side, longer side) an image needs at most to give the model what it uses: larger uploads can
        be decoded smaller (the service does)."""
        raise NotImplementedError

    def predict_batch(self, inputs: list[Tensor], tta: Hashable = "none") -> list[Any]:
        raise NotImplementedError


class DetectionPredictor(Predictor):
    """A detector of any kind (``detector.models.base.Detector``). ``tta="flip"`` merges the mirror's detections."""

    task = "detect"
    model: Detector

    @classmethod
    def from_checkpoint(
        cls,
        source: str | Path | dict,
        *,
        device: str | torch.device = "cpu",
        precision: str | Precision = "fp32",
        max_proposals: int | None = None,
    ) -> DetectionPredictor:
        """Rebuilds the detector from its checkpoint (a path, or a dict ``checkpoint.load`` read) and prepares it for
        ``precision`` ("auto": what the hardware runs fastest, see ``detector.core.precision``)."""
        ckpt, path = (checkpoint.load(source), Path(source)) if not isinstance(source, dict) else (source, None)
        device, precision = _resolve(device, precision)
        model, meta = detector_from_checkpoint(ckpt, device, source=path or "the checkpoint")
        if max_proposals is not None:
            model.set_max_proposals(max_proposals)
        prepare_for_inference(model, precision.name)
        predictor = cls(model, device=device, precision=precision)
        predictor.meta, predictor.source = meta, path
        return predictor

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def display_threshold(self) -> float:
        """The score drawings and the service show by default (evaluation keeps everything above 0.05)."""
        return self.model.display_score_threshold

    @property
    def decode_bounds(self) -> tuple[float, float]:
        return self.model.input_size

    def to_input(self, image: ImageLike, tta: str = "none") -> Tensor:
        """RGB image -> float [3, H, W] in [0, 1] on the CPU; the model resizes and normalises it itself."""
        return torch.from_numpy(_rgb_array(image)).permute(2, 0, 1).float().div_(255)

    @torch.inference_mode()
    def predict_batch(
        self, inputs: list[Tensor], tta: Hashable = "none", *, proposals: list[Tensor] | None = None
    ) -> list[dict[str, Tensor]]:
        """Per input ``{"boxes": [D, 4] float32, "labels": [D] int64, "scores": [D] float32}`` on the CPU, best
        first. ``proposals`` (selective-search kinds, per image [P, 4]): precomputed proposals, e.g. a dataset's
        cache; without them those kinds run selective search on each image."""
        images = [x.to(self.device, non_blocking=True) for x in inputs]
        extra = {"proposals": [p.to(self.device) for p in proposals]} if proposals is not None else {}
        with self.autocast():
            if tta == "flip":
                outputs = detect_flip_tta(self.model, images)
            elif tta == "none":
                outputs = self.model(images, **extra)
            else:
                raise ValueError(f"unknown detection TTA {tta!r}; use 'none' or 'flip'")
        return [{k: (v.float() if v.is_floating_point() else v).cpu() for k, v in out.items()} for out in outputs]

    def detections(
        self,
        output: dict[str, Tensor],
        *,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        scale: tuple[float, float] = (1.0, 1.0),
    ) -> list[NamedDetection]:
        """One image's output with class names, at or above ``score_threshold`` (default: the display threshold),
        best first, at most ``max_detections``; boxes multiplied by ``scale`` (x, y): from the pixels of the image the
        model saw to those of the image the user sent, when it was decoded smaller."""
        threshold = self.display_threshold if score_threshold is None else score_threshold
        keep = (output["scores"] >= threshold).nonzero().flatten()[:max_detections]  # already sorted by score
        factors = torch.tensor([scale[0], scale[1], scale[0], scale[1]])
        boxes, scores = (output["boxes"][keep] * factors).tolist(), output["scores"][keep].tolist()
        labels = output["labels"][keep]
        return [
            NamedDetection(self.class_names[int(lbl) - 1], float(s), tuple(b))
            for b, s, lbl in zip(boxes, scores, labels.tolist())
        ]

    def __call__(self, images: Sequence[ImageLike], *, tta: str = "none") -> list[dict[str, Tensor]]:
        return self.predict_batch([self.to_input(im) for im in images], tta)


class ClassificationPredictor(Predictor):
    """An image classifier: the evaluation transform of its training preset, probabilities per class.
    ``tta``: "10crop" or "multiscale" average the softmax over views (the latter needs an any-size network).
    ``transforms`` (uint8 [H, W, 3] -> input, per TTA mode) replaces the preset's."""

    task = "classify"

    def __init__(
        self,
        model: nn.Module,
        *,
        preset: str,
        input_size: int,
        name: str,
        transforms: dict[str, Callable[[np.ndarray], Tensor]] | None = None,
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        self.input_size, self.name = input_size, name
        if transforms is None:
            source = tta_source_transform(preset, input_size=input_size)
            transforms = {"none": classification_transform(preset, train=False, size=input_size)}
            transforms.update({"10crop": source, "multiscale": source})
        self.transforms = transforms

    @classmethod
    def from_checkpoint(
        cls, source: str | Path | dict, *, device: str | torch.device = "cpu", precision: str | Precision = "fp32"
    ) -> ClassificationPredictor:
        """Rebuilds the classifier from its checkpoint (a path, or a dict ``checkpoint.load`` read), or from a
        torchvision ImageNet file (``from_torchvision_imagenet``)."""
        if not isinstance(source, dict) and torchvision_imagenet_weights(source) is not None:
            return cls.from_torchvision_imagenet(source, device=device, precision=precision)
        ckpt, path = (checkpoint.load(source), Path(source)) if not isinstance(source, dict) else (source, None)
        device, precision = _resolve(device, precision)
        model, meta = classifier_from_checkpoint(ckpt, device, source=path or "the checkpoint")
        config = meta.get("model_config") or {}
        preset = (meta.get("train_config") or {}).get("augment", "none")
        size = int(config.get("input_size", [3, 224, 224])[-1])
        predictor = cls(
            model, preset=preset, input_size=size, name=config.get("name"), device=device, precision=precision
        )
        predictor.meta, predictor.source = meta, path
        return predictor

    @classmethod
    def from_torchvision_imagenet(
        cls, path: str | Path, *, device: str | torch.device = "cpu", precision: str | Precision = "fp32"
    ) -> ClassificationPredictor:
        """torchvision's ImageNet classifier file (``python -m detector.weights fetch resnet50``: its name says the
        network) with the 1000 ImageNet names and the evaluation transform torchvision published for it; the TTA
        views come from the same transform at R x R (``detector.classify.torchvision_imagenet``)."""
        device, precision = _resolve(device, precision)
        model, meta, weights = load_torchvision_imagenet(path, device)
        size = meta["model_config"]["input_size"][-1]
        side = tta_sizes(size)["resize"]
        source = TorchvisionEvalTransform(weights, resize_size=side, crop_size=side)
        transforms = {"none": TorchvisionEvalTransform(weights), "10crop": source, "multiscale": source}
        name = meta["model_config"]["name"]
        predictor = cls(
            model, preset="vgg", input_size=size, name=name, transforms=transforms, device=device, precision=precision
        )
        predictor.meta, predictor.source = meta, Path(path)
        return predictor

    @property
    def fixed_input_size(self) -> bool:
        """softmax, mlp and lenet5 flatten an input of their training size; the others pool any size."""
        return self.name not in ANY_SIZE_CLASSIFIERS

    @property
    def decode_bounds(self) -> tuple[float, float]:
        # The transforms resize to R = round(256 S / 224) at most; twice that keeps their own antialiasing the
        # one that matters.
        return 2 * tta_sizes(self.input_size)["resize"], math.inf

    def to_input(self, image: ImageLike, tta: str = "none") -> Tensor:
        """RGB image -> the evaluation transform's [3, S, S] (TTA: the views' source, [3, R, R])."""
        return self.transforms[tta](_rgb_array(image))

    @torch.inference_mode()
    def predict_batch(self, inputs: list[Tensor], tta: Hashable = "none") -> list[Tensor]:
        """Per input the class probabilities [K] (fp32, CPU)."""
        with self.autocast():
            if tta == "none":
                batch = torch.stack(inputs).to(self.device, non_blocking=True)
                return list(self.model(batch).float().softmax(dim=1).cpu())
            sizes = tta_sizes(self.input_size)
            return [
                classify_tta(
                    self.model, x.to(self.device), str(tta), resize=sizes["resize"], crop=self.input_size,
                    scales=sizes["scales"],
                ).float().cpu()
                for x in inputs
            ]  # fmt: skip

    def top_k(self, probs: Tensor, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes (at most K), best first, with their probabilities."""
        values, indices = probs.topk(min(k, len(probs)))
        return [(self.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


def load_predictor(
    source: str | Path | dict, *, device: str | torch.device = "cpu", precision: str | Precision = "fp32"
) -> DetectionPredictor | ClassificationPredictor:
    """The predictor a checkpoint calls for: its ``kind`` says detector or classifier; a torchvision ImageNet
    classifier file (``resnet50-0676ba61.pth``, named as torchvision publishes it) gives that classifier. Raises
    ``checkpoint.CheckpointError`` naming the file for anything else."""
    if not isinstance(source, dict) and torchvision_imagenet_weights(source) is not None:
        return ClassificationPredictor.from_torchvision_imagenet(source, device=device, precision=precision)
    ckpt = checkpoint.load(source) if not isinstance(source, dict) else source
    kind = ckpt.get("kind")
    if kind in DETECTOR_KINDS:
        predictor = DetectionPredictor.from_checkpoint(ckpt, device=device, precision=precision)
    elif kind == CLASSIFIER_KIND:
        predictor = ClassificationPredictor.from_checkpoint(ckpt, device=device, precision=precision)
    else:
        raise checkpoint.CheckpointError(f"{source} holds a {kind!r} model, neither a detector nor a classifier")
    predictor.source = Path(source) if not isinstance(source, dict) else None
    return predictor
