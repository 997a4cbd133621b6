"""Two detectors' answers on the same images, compared: exactly in order (same model, other code), or matched
box to box (another precision, an exported graph, where the order of near-ties may differ).

Each answer is a list over images of ``{"boxes": [D, 4], "labels": [D], "scores": [D]}``.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor


def max_diff(a: Tensor, b: Tensor) -> float:
    """The largest absolute difference of two same-shaped tensors (0 when empty)."""
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def compare_detections(a: list[dict[str, Tensor]], b: list[dict[str, Tensor]]) -> dict:
    """Exact-order comparison of two detectors' outputs on the same images: whether every image has the same
    labels in the same order, the largest box-coordinate (pixels) and score differences, and whether the outputs
    are identical (same labels, both differences 0)."""
    same = all(torch.equal(x["labels"], y["labels"]) for x, y in zip(a, b))
    box_diff = max((max_diff(x["boxes"], y["boxes"]) for x, y in zip(a, b)), default=0.0) if same else None
    score_diff = max((max_diff(x["scores"], y["scores"]) for x, y in zip(a, b)), default=0.0) if same else None
    return {
        "detections": [len(x["labels"]) for x in a],
        "same_labels_in_order": same,
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
        "identical": same and box_diff == 0.0 and score_diff == 0.0,
    }


def match_detections(
    reference: list[dict[str, Tensor]], other: list[dict[str, Tensor]], *, min_score: float = 0.0, iou: float = 0.5
) -> dict:
    """Where the order and the detections near the score threshold may change: each reference detection (score
    >= ``min_score``) is matched to the same-label detection of ``other`` with the highest IoU (>= ``iou``).
    Returns the counts, the matched fraction and, over matches, the largest box-coordinate (pixels) and score
    differences."""
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
                box_diff = max(box_diff, max_diff(box, oth["boxes"][same][j]))
                score_diff = max(score_diff, abs(float(score) - float(oth["scores"][same][j])))
    return {
        "reference_detections": total,
        "other_detections": sum(int((o["scores"] >= min_score).sum()) for o in other),
        "matched_fraction": matched / total if total else 1.0,
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
    }
