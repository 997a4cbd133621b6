"""The answer-equality check: what "equal output" means between the timed models, and the two comparisons of
detection lists it is made of (exact order; matched by label and IoU). Boxes are xyxy pixels of the input image."""

from __future__ import annotations

import copy

import torch
import torchvision
from torch import Tensor

from detector.core.precision import precision_autocast
from detector.inference.prepare import prepare_for_inference
from detector.tools.bench.models import build_model
from detector.tools.bench.settings import Settings, make_inputs


def _max_diff(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def compare_detections(a: list[dict[str, Tensor]], b: list[dict[str, Tensor]]) -> dict:
    """Exact-order comparison of two detectors' outputs on the same images: whether every image has the same
    labels in the same order, and the largest box-coordinate (pixels) and score differences."""
    same = all(torch.equal(x["labels"], y["labels"]) for x, y in zip(a, b))
    return {
        "detections": [len(x["labels"]) for x in a],
        "same_labels_in_order": same,
        "max_box_diff_px": max((_max_diff(x["boxes"], y["boxes"]) for x, y in zip(a, b)), default=0.0)
        if same
        else None,
        "max_score_diff": max((_max_diff(x["scores"], y["scores"]) for x, y in zip(a, b)), default=0.0)
        if same
        else None,
    }


def match_detections(
    reference: list[dict[str, Tensor]], other: list[dict[str, Tensor]], *, min_score: float = 0.0, iou: float = 0.5
) -> dict:
    """Low precision against fp32, where the order and the detections near the score threshold may change:
    each reference detection (score >= ``min_score``) is matched to the same-label detection of ``other``
    with the highest IoU (>= ``iou``). Returns the matched fraction and, over matches, the largest
    box-coordinate (pixels) and score differences."""
    matched = total = 0
    box_diff = score_diff = 0.0
    for ref, oth in zip(reference, other):
        keep = ref["scores"] >= min_score
        for box, label, score in zip(ref["boxes"][keep].float(), ref["labels"][keep], ref["scores"][keep].float()):
            total += 1
            same = oth["labels"] == label
            if not same.any():
                continue
            ious = torchvision.ops.box_iou(box[None], oth["boxes"][same].float())[0]
            j = int(ious.argmax())
            if ious[j] >= iou:
                matched += 1
                box_diff = max(box_diff, _max_diff(box, oth["boxes"][same][j]))
                score_diff = max(score_diff, abs(float(score) - float(oth["scores"][same][j])))
    return {
        "reference_detections": total,
        "matched_fraction": matched / total if total else 1.0,
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
    }


def answer_check(settings: Settings, low_precisions: list[str]) -> dict:
    """What the timed models are checked to answer alike, on the first ``settings.batch`` benchmark images:

    1. ours vs torchvision (fp32, identical weights): the resized batch is equal, the trunk features equal,
       and the RoI heads given the same proposals (ours' RPN output) return the same detections: same
       labels in the same order, boxes and scores compared. The full models' detections are not compared:
       the RPNs differ by design (torchvision drops proposals under 1e-3 px, ours under ``min_size`` scaled
       to the image; torchvision ranks sigmoid scores per level), so their proposals differ.
    2. ours prepared for inference in fp32 (channels-last) vs ours as built: full detections, exact order.
    3. ours prepared at each low precision vs ours fp32: detections matched by label and IoU >= 0.5.
       With random weights the scores sit near 1/21, so which boxes pass the 0.05 threshold is fragile;
       the trained detector's figures (``detector.evaluate --precision``) are the ones to quote.
    """
    device = torch.device(settings.device)
    images = [im.to(device) for im in make_inputs(settings)[0][: settings.batch]]
    ours = build_model("ours", settings.backbone, settings.seed, settings.min_size).to(device).eval()
    tv = build_model("torchvision", settings.backbone, settings.seed, settings.min_size).to(device).eval()
    result: dict = {"images": len(images), "backbone": settings.backbone, "size": list(settings.size)}
    with torch.inference_mode():
        batch, _ = ours.transform(images)
        tv_batch, _ = tv.transform(images)
        result["transform_equal"] = batch.image_sizes == tv_batch.image_sizes and torch.equal(
            batch.tensors, tv_batch.tensors
        )
        features = ours.backbone(batch.tensors)
        result["features_max_diff"] = _max_diff(features, tv.backbone(tv_batch.tensors))
        scales = [h / im.shape[-2] for (h, _), im in zip(batch.image_sizes, images)]
        proposals, _ = ours.rpn(features, batch.image_sizes, scales)
        ours_dets, _ = ours.roi_heads(features, proposals, batch.image_sizes)
        tv_dets, _ = tv.roi_heads({"0": features}, proposals, batch.image_sizes)
        result["roi_heads_same_proposals"] = compare_detections(ours_dets, tv_dets)
        del tv
        reference = ours(images)
        prepared = prepare_for_inference(copy.deepcopy(ours), "fp32")
        result["prepared_fp32_vs_fp32"] = compare_detections(reference, prepared(images))
        del prepared
        for precision in low_precisions:
            prepared = prepare_for_inference(copy.deepcopy(ours), precision)
            with precision_autocast(device, precision):
                result[f"prepared_{precision}_vs_fp32"] = match_detections(reference, prepared(images))
            del prepared
    return result


def format_check(check: dict) -> str:
    roi = check["roi_heads_same_proposals"]
    size = f"{check['size'][0]}x{check['size'][1]}"
    lines = [
        f"answer check ({check['backbone']}, {check['images']} image(s) {size}, random weights):",
        f"  ours vs torchvision: resized batch equal {check['transform_equal']}, "
        f"trunk features max diff {check['features_max_diff']:.3g}",
        f"  RoI heads on the same proposals: detections {roi['detections']}, "
        f"same labels in order {roi['same_labels_in_order']}, "
        f"max box diff {roi['max_box_diff_px']} px, max score diff {roi['max_score_diff']}",
    ]
    fp32 = check["prepared_fp32_vs_fp32"]
    lines.append(
        f"  ours prepared fp32 vs as built: same labels in order {fp32['same_labels_in_order']}, "
        f"max box diff {fp32['max_box_diff_px']} px, max score diff {fp32['max_score_diff']}"
    )
    for key, m in check.items():
        if key.startswith("prepared_") and key != "prepared_fp32_vs_fp32":
            lines.append(
                f"  ours {key.split('_')[1]} vs fp32: {m['matched_fraction']:.1%} of {m['reference_detections']} "
                "detections matched (IoU >= 0.5, same label), "
                f"max box diff {m['max_box_diff_px']:.3g} px, max score diff {m['max_score_diff']:.3g}"
            )
    return "\n".join(lines)
