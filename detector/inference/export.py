"""Export a Faster R-CNN checkpoint as a graph that runs without this library: ONNX (onnxruntime, Triton, TensorRT)
or TorchScript (``torch.jit.load``, TorchServe, C++ libtorch).

    export_checkpoint("weights/default-detector.pt", "detector.onnx", "onnx", dynamic=True)

The exported model follows torchvision's convention for its detection models:

- input ``image``: float32 [1, 3, H, W], RGB in [0, 1], not normalised: the graph resizes and normalises as
  the checkpoint's model does;
- outputs ``boxes`` [D, 4] float32 (``xyxy``, continuous pixels of that image), ``labels`` [D] int64 (1..K:
  ``class_names[label - 1]``, 0 is background) and ``scores`` [D] float32, best first; every detection at or
  above the checkpoint's evaluation threshold (``roi_heads.score_threshold``, 0.05), as ``detector.predict``
  gives before its display threshold.

The class names and thresholds travel with the file: ONNX ``metadata_props`` and a ``detector.json`` extra file in
the TorchScript archive (``torch.jit.load(path, _extra_files=...)``). TorchScript calls torchvision's compiled ops
(nms, roi_align): load it after ``import torchvision``.

How: the predictor's fp32 model (what ``detector.predict`` runs) is traced on one example image, by
``torch.jit.trace`` and by the TorchScript-based ONNX exporter (``dynamo=False``, the exporter torchvision's own
detection models are tested with). Traced, the model keeps its shape-dependent steps graph operations (the resize:
``DetectorTransform._traced_resize``; top-k sizes: ``_topk_min``; NMS without a branch on the example's box count:
``batched_nms_any``), so one graph answers any image size; ONNX fixes H and W unless ``dynamic``. Exporting checks
itself: the file's answers on two images of other sizes against the eager model's (``verify_export``).

Not exportable: Fast R-CNN and R-CNN, whose proposals come from selective search (OpenCV's CPU segmentation,
outside any tensor graph), and classifiers (not yet).
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from detector.core import checkpoint
from detector.core.images import open_image
from detector.evaluation.compare import match_detections
from detector.inference.predictor import DetectionPredictor

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[Format, ...] = ("onnx", "torchscript")
EXPORTABLE_KINDS = ("faster_rcnn",)
DEFAULT_OPSET = 17
MIN_OPSET_ALIGNED = 16  # RoiAlign-16: coordinate_transformation_mode="half_pixel" (our roi_align pooler)
INPUT_NAMES, OUTPUT_NAMES = ["image"], ["boxes", "labels", "scores"]
# What verify_export accepts: the graph's answers against the eager model's (the contract).
BOX_TOLERANCE_PX, SCORE_TOLERANCE = 1e-2, 1e-4


class ExportError(RuntimeError):
    """The checkpoint cannot be exported as asked; the message says why."""


def _optional(name: str):
    """onnx and onnxruntime are export-only dependencies (pyproject's ``export`` extra; the service image has
    neither): imported when used, with the fix when missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ExportError(f"ONNX export needs {name}: pip install 'detector[export]' (onnx, onnxruntime)") from exc


class ExportedDetector(nn.Module):
    """The graph's signature around a detector: image [1, 3, H, W] -> (boxes [D, 4], labels [D], scores [D])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        (out,) = self.model([image[0]])
        return out["boxes"], out["labels"], out["scores"]


def example_image(height: int, width: int, seed: int = 0) -> Tensor:
    """A smooth random RGB image [1, 3, height, width] in [0, 1] to trace with (any content works: no step of the
    traced graph depends on what the example shows)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=g)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def default_size(predictor: DetectionPredictor) -> tuple[int, int]:
    """(H, W) of a 4:3 landscape image at the model's test size: the example, and the fixed ONNX input."""
    short, cap = predictor.model.input_size
    return short, min(round(short * 4 / 3), cap)


def metadata(predictor: DetectionPredictor) -> dict[str, str]:
    """What a deployment needs besides the graph, as strings (ONNX metadata_props)."""
    model = predictor.model
    return {
        "kind": model.kind,
        "backbone": model.config.backbone,
        "class_names": json.dumps(list(predictor.class_names)),
        "score_threshold": str(model.config.roi_heads.score_threshold),
        "display_score_threshold": str(predictor.display_threshold),
        "input": "image: float32 [1, 3, H, W], RGB in [0, 1], not normalised",
        "outputs": "boxes [D, 4] xyxy pixels, labels [D] (class_names[label - 1]), scores [D], best first",
        "source": str(predictor.source) if predictor.source else "",
    }


def exportable(predictor: DetectionPredictor) -> None:
    """Raises ``ExportError`` for a kind that has no graph to export."""
    if predictor.kind not in EXPORTABLE_KINDS:
        raise ExportError(
            f"a {predictor.kind} model cannot be exported: its proposals come from selective search (OpenCV's "
            "segmentation, run on the CPU outside any tensor graph); export a Faster R-CNN, whose RPN is in the graph"
        )


def _trace_quietly(fn):
    # Tracing warns at every Python number taken from a tensor; the ones left are constants on purpose (thresholds,
    # top-n counts), and verify_export checks the graph on other sizes.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def export_onnx(
    predictor: DetectionPredictor, out: Path, example: Tensor, *, opset: int = DEFAULT_OPSET, dynamic: bool = False
) -> None:
    onnx = _optional("onnx")

    if opset < MIN_OPSET_ALIGNED and predictor.model.config.roi_heads.pooler == "roi_align":
        raise ExportError(
            f"this model pools with RoIAlign on half-pixel centres (aligned=True), which ONNX has from opset "
            f"{MIN_OPSET_ALIGNED} (RoiAlign's coordinate_transformation_mode); at opset {opset} torchvision's "
            f"exporter approximates it and the answers change: use --opset {MIN_OPSET_ALIGNED} or higher"
        )
    wrapper = ExportedDetector(predictor.model).eval()
    axes = {name: {0: "detections"} for name in OUTPUT_NAMES}
    if dynamic:
        axes["image"] = {2: "height", 3: "width"}
    with torch.no_grad():
        _trace_quietly(
            lambda: torch.onnx.export(
                wrapper,
                (example,),
                str(out),
                dynamo=False,
                opset_version=opset,
                input_names=INPUT_NAMES,
                output_names=OUTPUT_NAMES,
                dynamic_axes=axes,
            )  # fmt: skip
        )
    graph = onnx.load(str(out))
    for key, value in metadata(predictor).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(out))


def export_torchscript(predictor: DetectionPredictor, out: Path, example: Tensor) -> None:
    wrapper = ExportedDetector(predictor.model).eval()
    with torch.no_grad():
        traced = _trace_quietly(lambda: torch.jit.trace(wrapper, (example,), check_trace=False))
    traced.save(str(out), _extra_files={"detector.json": json.dumps(metadata(predictor))})


def load_exported(path: Path, fmt: Format, *, threads: int | None = None) -> Callable[[Tensor], dict[str, Tensor]]:
    """The exported file, loaded once, as a function: image [1, 3, H, W] -> ``{"boxes", "labels", "scores"}``.
    ``threads``: onnxruntime's intra-op threads (default: its own choice)."""
    if fmt == "onnx":
        onnxruntime = _optional("onnxruntime")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run_onnx(image: Tensor) -> dict[str, Tensor]:
            outputs = session.run(None, {"image": image.numpy()})
            return {name: torch.from_numpy(x) for name, x in zip(OUTPUT_NAMES, outputs)}

        return run_onnx
    with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; deployments still load it
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path))

    def run_torchscript(image: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            return dict(zip(OUTPUT_NAMES, module(image)))

    return run_torchscript


def run_exported(path: Path, fmt: Format, image: Tensor) -> dict[str, Tensor]:
    """The exported file's answer on ``image`` [1, 3, H, W]: ``{"boxes", "labels", "scores"}``."""
    return load_exported(path, fmt)(image)


def verify_export(
    predictor: DetectionPredictor, path: Path, fmt: Format, images: list[Tensor]
) -> dict[str, float | int | bool]:
    """The file's answers against the eager predictor's on ``images`` (each [1, 3, H, W]): every eager detection
    matched (same label, IoU >= 0.99) and as many detections, boxes within ``BOX_TOLERANCE_PX`` and scores within
    ``SCORE_TOLERANCE``. Returns ``match_detections``' figures and ``ok``."""
    eager = [predictor.predict_batch([im[0]])[0] for im in images]  # one at a time, as the graph runs
    run = load_exported(path, fmt)
    graph = [run(im) for im in images]
    result = {"images": len(images), **match_detections(eager, graph, iou=0.99)}
    result["ok"] = (
        result["matched_fraction"] == 1.0
        and result["reference_detections"] == result["other_detections"]
        and result["max_box_diff_px"] <= BOX_TOLERANCE_PX
        and result["max_score_diff"] <= SCORE_TOLERANCE
    )
    return result


def _photo_input(predictor: DetectionPredictor, path: str | Path, size: tuple[int, int] | None) -> Tensor:
    """An image file as the graph's input [1, 3, H, W] (resized to ``size`` (H, W) when given)."""
    image = open_image(path, exif_transpose=True)  # as detector.predict reads files
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return predictor.to_input(image)[None]


def export_checkpoint(
    source: str | Path,
    out: str | Path,
    fmt: Format,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    size: tuple[int, int] | None = None,
    verify: bool = True,
    check_images: list[str | Path] = (),
) -> dict:
    """Writes ``out`` from the checkpoint ``source``; returns what was done: the input size (None where dynamic),
    and with ``verify`` the check of ``verify_export`` on ``check_images`` (the user's photographs; a fixed-size
    ONNX graph gets them resized to its size) or, without them, two smooth random images of other shapes, on which
    a trained model may find nothing (``check["reference_detections"] == 0``: the check then compared no box).
    Raises ``ExportError`` (a kind without a graph, a failed check) and ``checkpoint.CheckpointError``."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    predictor = DetectionPredictor.from_checkpoint(checkpoint.load(source), device="cpu", precision="fp32")
    predictor.source = Path(source)
    exportable(predictor)
    height, width = size or default_size(predictor)
    example = example_image(height, width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        export_onnx(predictor, out, example, opset=opset, dynamic=dynamic)
    else:
        export_torchscript(predictor, out, example)
    any_size = fmt == "torchscript" or dynamic
    report = {"format": fmt, "out": str(out), "input_size": None if any_size else [height, width]}
    if verify:
        if check_images:
            images = [_photo_input(predictor, path, None if any_size else (height, width)) for path in check_images]
        else:
            shapes = [(height * 3 // 4, width), (width, height * 5 // 4)] if any_size else [(height, width)] * 2
            images = [example_image(h, w, seed=i + 1) for i, (h, w) in enumerate(shapes)]
        report["check"] = verify_export(predictor, out, fmt, images)
        if not report["check"]["ok"]:
            raise ExportError(f"{out} does not answer as the checkpoint's model does: {report['check']}")
    return report
