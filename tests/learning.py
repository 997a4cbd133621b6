"""Shared by the Fast R-CNN and R-CNN learning tests: train on the tiny dataset, compare with the untrained model."""

from __future__ import annotations

import torch

from detector.data.voc import VOCDetection
from detector.data.with_proposals import with_cached_proposals
from detector.engine import evaluate
from detector.models.factory import build_detector, load_detector
from detector.train import main as train_main


def train_and_score(tiny_voc, out, kind: str, options: list[str]) -> tuple[float, float]:
    """Trains ``kind`` on the tiny dataset's train split (no flips, seed 0) and returns the VOC07 mAP on those
    training images of (an untrained model with the same config, the trained one): the test is that the model
    learns, not that it generalises from 8 images."""
    train_main([
        "--data", str(tiny_voc), "--train-split", "train", "--val-split", "none", "--out", str(out), "--model", kind,
        "--backbone", "tiny", "--workers", "0", "--no-progress", "--checkpoint-every", "0", "--hflip", "0", "--seed", "0", *options,
    ])  # fmt: skip
    trained, ckpt = load_detector(out / "last.pt")
    assert ckpt["kind"] == kind and trained.kind == kind
    data = with_cached_proposals(VOCDetection(tiny_voc, "train", keep_difficult=True), trained.config, progress=False)
    torch.manual_seed(0)
    untrained = build_detector(kind, trained.config).eval()
    device = torch.device("cpu")
    before, _ = evaluate(untrained, data, device=device, progress=False)
    after, _ = evaluate(trained, data, device=device, progress=False)
    return before.map, after.map
