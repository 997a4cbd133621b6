"""The answer-equality check: what "equal output" means between the timed models, and the two comparisons of
detection lists it is made of (exact order; matched by label and IoU). Boxes are xyxy pixels of the input image."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from detector.core.precision import precision_autocast
from detector.evaluation.compare import compare_detections, match_detections, max_diff
from detector.inference.prepare import prepare_for_inference
from detector.tools.bench.models import build_model
from detector.tools.bench.settings import Settings, make_inputs, run_weights


def answer_check(settings: Settings, low_precisions: list[str]) -> dict:
    """What the timed models are checked to answer alike, on the first ``settings.batch`` benchmark images:

    1. ours vs torchvision (fp32, identical weights).
       Feature pyramids (torchvision's own model): the full models' detections, exact order (``ours_vs_torchvision``).
       Other backbones: the resized batch is equal, the trunk features equal, and the RoI heads given the same
       proposals (ours' RPN output) return the same detections. The full models' detections are not compared:
       the RPNs differ by design (torchvision drops proposals under 1e-3 px, ours under ``min_size`` scaled
       to the image; torchvision ranks sigmoid scores per level), so their proposals differ.
    2. ours prepared for inference in fp32 (channels-last) vs ours as built: full detections, exact order.
    3. at each low precision, ours prepared vs ours fp32 and torchvision vs torchvision fp32 (both under autocast):
       detections matched by label and IoU >= 0.5. With random weights the scores sit near the 0.05 threshold
       (VOC backbones: near 1/21), so which boxes pass it is fragile; the trained detector's figures
       (``detector.evaluate --precision``) are the ones to quote.
    """
    device = torch.device(settings.device)
    images = [im.to(device) for im in make_inputs(settings)[0][: settings.batch]]
    weights = run_weights(settings)
    ours, tv = (
        build_model(name, settings.backbone, settings.seed, settings.min_size, weights).to(device).eval()
        for name in ("ours", "torchvision")
    )
    result: dict = {"images": len(images), "backbone": settings.backbone, "size": list(settings.size)}
    with torch.inference_mode():
        if weights is None:
            result.update(_same_proposals_check(ours, tv, images))
        reference, tv_reference = ours(images), tv(images)
        if weights is not None:
            result["ours_vs_torchvision"] = compare_detections(reference, tv_reference)
        for precision in low_precisions:
            with precision_autocast(device, precision):
                result[f"torchvision_{precision}_vs_fp32"] = match_detections(tv_reference, tv(images))
        del tv
        prepared = prepare_for_inference(copy.deepcopy(ours), "fp32")
        result["prepared_fp32_vs_fp32"] = compare_detections(reference, prepared(images))
        del prepared
        for precision in low_precisions:
            prepared = prepare_for_inference(copy.deepcopy(ours), precision)
            with precision_autocast(device, precision):
                result[f"prepared_{precision}_vs_fp32"] = match_detections(reference, prepared(images))
            del prepared
    return result


def _same_proposals_check(ours: nn.Module, tv: nn.Module, images: list[Tensor]) -> dict:
    """Ours vs torchvision assembled on our trunk and head: the resized batch, the trunk features, and the RoI
    heads' detections given the same proposals (ours' RPN output). Under ``inference_mode``."""
    batch, _ = ours.transform(images)
    tv_batch, _ = tv.transform(images)
    result = {
        "transform_equal": batch.image_sizes == tv_batch.image_sizes and torch.equal(batch.tensors, tv_batch.tensors)
    }
    features = ours.backbone(batch.tensors)
    result["features_max_diff"] = max_diff(features, tv.backbone(tv_batch.tensors))
    scales = [h / im.shape[-2] for (h, _), im in zip(batch.image_sizes, images)]
    proposals, _ = ours.rpn(features, batch.image_sizes, scales)
    ours_dets, _ = ours.roi_heads(features, proposals, batch.image_sizes)
    tv_dets, _ = tv.roi_heads({"0": features}, proposals, batch.image_sizes)
    result["roi_heads_same_proposals"] = compare_detections(ours_dets, tv_dets)
    return result


def _exact(name: str, c: dict) -> str:
    return (
        f"  {name}: detections {c['detections']}, same labels in order {c['same_labels_in_order']}, "
        f"max box diff {c['max_box_diff_px']} px, max score diff {c['max_score_diff']}"
        + (" (identical)" if c["identical"] else "")
    )


def _matched(name: str, m: dict) -> str:
    return (
        f"  {name}: {m['matched_fraction']:.1%} of {m['reference_detections']} detections matched (IoU >= 0.5, "
        f"same label), max box diff {m['max_box_diff_px']:.3g} px, max score diff {m['max_score_diff']:.3g}"
    )


def format_check(check: dict) -> str:
    size = f"{check['size'][0]}x{check['size'][1]}"
    lines = [f"answer check ({check['backbone']}, {check['images']} image(s) {size}, random weights):"]
    if "ours_vs_torchvision" in check:
        lines.append(_exact("ours vs torchvision's own model, fp32, same weights", check["ours_vs_torchvision"]))
    else:
        lines += [
            f"  ours vs torchvision: resized batch equal {check['transform_equal']}, "
            f"trunk features max diff {check['features_max_diff']:.3g}",
            _exact("RoI heads on the same proposals", check["roi_heads_same_proposals"]),
        ]
    lines.append(_exact("ours prepared fp32 vs as built", check["prepared_fp32_vs_fp32"]))
    for key, m in check.items():
        if key.startswith("prepared_") and key != "prepared_fp32_vs_fp32":
            lines.append(_matched(f"ours {key.split('_')[1]} (prepared) vs ours fp32", m))
        elif key.startswith("torchvision_"):
            lines.append(_matched(f"torchvision {key.split('_')[1]} vs torchvision fp32", m))
    return "\n".join(lines)
