"""Test-time augmentation (detector.inference.tta)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from detector.inference.tta import classify_tta, detect_flip_tta, flip_boxes, multiscale, ten_crop
from detector.models.factory import build_detector
from detector.models.faster_rcnn import tiny_config


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """[3, h, w]: channel 0 holds each pixel's column, channel 1 its row."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)])


def test_ten_crop_takes_corners_centre_and_their_mirrors():
    image = coordinate_image(8, 12)
    crops = ten_crop(image, resize=8, crop=4)  # shorter side already 8: no resampling
    assert crops.shape == (10, 3, 4, 4)
    # (first column, first row) of views 0-4: top-left, top-right, bottom-left, bottom-right, centre.
    # The centre crop starts at ((12 - 4) / 2, (8 - 4) / 2) = (4, 2).
    starts = [(0, 0), (8, 0), (0, 4), (8, 4), (4, 2)]
    for view, (x0, y0) in enumerate(starts):
        torch.testing.assert_close(crops[view], image[:, y0 : y0 + 4, x0 : x0 + 4])
    for view in range(5):
        torch.testing.assert_close(crops[5 + view], crops[view].flip(-1))
    assert crops[5, 0, 0, 0] == 3  # view 5's first column is view 0's last


def test_ten_crop_resizes_the_shorter_side_first():
    crops = ten_crop(torch.rand(3, 20, 30), resize=10, crop=6)  # 20 x 30 -> 10 x 15
    assert crops.shape == (10, 3, 6, 6)
    with pytest.raises(ValueError, match="crop"):
        ten_crop(torch.rand(3, 20, 30), resize=4, crop=6)


def test_multiscale_resizes_the_shorter_side_to_each_scale():
    image = torch.rand(3, 10, 20)
    assert [tuple(v.shape) for v in multiscale(image, (4, 8))] == [(3, 4, 8), (3, 8, 16)]
    assert [tuple(v.shape) for v in multiscale(image, (4, 8), center_crop=True)] == [(3, 4, 4), (3, 8, 8)]


class FixedLogits(nn.Module):
    def __init__(self, logits: list[float]):
        super().__init__()
        self.logits = torch.tensor(logits)
        self.batch_sizes: list[int] = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        return self.logits.expand(len(x), -1)


def test_classify_tta_with_fixed_logits_gives_their_softmax():
    probs = torch.tensor([0.1, 0.2, 0.7])
    model = FixedLogits(probs.log().tolist())
    image = torch.rand(3, 40, 50)
    for mode in ("none", "10crop", "multiscale"):
        torch.testing.assert_close(classify_tta(model, image, mode, resize=32, crop=24, scales=(16, 24)), probs)
    assert model.batch_sizes == [1, 10, 1, 1]
    with pytest.raises(ValueError, match="10crop"):
        classify_tta(model, image, "5crop")


def test_multiscale_tta_averages_probabilities_not_logits():
    class HeightLogits(nn.Module):  # logits (log h, 0): p(class 0) = h / (h + 1)
        def forward(self, x):
            return torch.tensor([[math.log(x.shape[-2]), 0.0]])

    probs = classify_tta(HeightLogits(), torch.rand(3, 6, 6), "multiscale", scales=(1, 3))
    # (1/2 + 3/4) / 2 = 0.625; averaged logits would give sqrt(3) / (sqrt(3) + 1) = 0.634.
    torch.testing.assert_close(probs, torch.tensor([0.625, 0.375]))


class BrightBoxDetector(nn.Module):
    """Detects the tight box of the pixels with channel 0 > 0.5 as class 1. Score 0.9 when the marker pixel
    (channel 2 at the top-left corner) is set, i.e. on the unflipped image, else 0.6; ``only`` restricts the
    detection to the "plain" or "mirrored" pass. An extra class-2 box on the same pixels when ``second_class``."""

    def __init__(self, *, only: str | None = None, second_class: bool = False, max_dets: int = 100):
        super().__init__()
        self.only, self.second_class = only, second_class
        self.config = SimpleNamespace(roi_heads=SimpleNamespace(nms_threshold=0.5, detections_per_image=max_dets))
        self.eval()

    def forward(self, images):
        outputs = []
        for img in images:
            plain = bool(img[2, 0, 0] > 0.5)
            ys, xs = (img[0] > 0.5).nonzero(as_tuple=True)
            box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            wanted = self.only is None or self.only == ("plain" if plain else "mirrored")
            n = int(wanted) * (2 if self.second_class else 1)
            outputs.append(
                {
                    "boxes": box.expand(n, 4),
                    "labels": torch.tensor([1, 2][:n]),
                    "scores": torch.tensor([0.9 if plain else 0.6, 0.8][:n]),
                }
            )
        return outputs


def marked_image() -> torch.Tensor:
    image = torch.zeros(3, 20, 30)
    image[0, 5:12, 3:10] = 1.0  # box [3, 5, 10, 12]; mirrored on W = 30: [20, 5, 27, 12]
    image[2, 0, 0] = 1.0
    return image


def test_flip_boxes_maps_mirrored_coordinates_back():
    torch.testing.assert_close(
        flip_boxes(torch.tensor([[20.0, 5.0, 27.0, 12.0]]), 30), torch.tensor([[3.0, 5.0, 10.0, 12.0]])
    )


@pytest.mark.parametrize("only", ["plain", "mirrored"])
def test_detect_flip_tta_returns_boxes_in_original_coordinates_from_either_pass(only):
    (out,) = detect_flip_tta(BrightBoxDetector(only=only), [marked_image()])
    torch.testing.assert_close(out["boxes"], torch.tensor([[3.0, 5.0, 10.0, 12.0]]))
    torch.testing.assert_close(out["scores"], torch.tensor([0.9 if only == "plain" else 0.6]))
    assert out["labels"].tolist() == [1]


def test_detect_flip_tta_merges_duplicates_per_class():
    images = [marked_image(), marked_image()[:, :, :25]]  # two images, widths 30 and 25
    outs = detect_flip_tta(BrightBoxDetector(second_class=True), images)
    assert len(outs) == 2
    for out in outs:
        # Four detections (2 classes x 2 passes) on one box: NMS keeps one per class, the best score first.
        assert out["labels"].tolist() == [1, 2]
        torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.8]))
        torch.testing.assert_close(out["boxes"], torch.tensor([[3.0, 5.0, 10.0, 12.0]] * 2))
    (capped,) = detect_flip_tta(BrightBoxDetector(second_class=True, max_dets=1), [marked_image()])
    assert capped["labels"].tolist() == [1]


def test_detect_flip_tta_refuses_a_training_mode_model():
    model = BrightBoxDetector().train()
    with pytest.raises(ValueError, match="eval"):
        detect_flip_tta(model, [marked_image()])


def test_detect_flip_tta_runs_the_faster_rcnn():
    torch.manual_seed(0)
    cfg = tiny_config(3)
    cfg.min_size, cfg.max_size = (64,), 96
    model = build_detector("faster_rcnn", cfg).eval()
    (out,) = detect_flip_tta(model, [torch.rand(3, 48, 64)])
    assert set(out) == {"boxes", "labels", "scores"}
    assert 0 < len(out["boxes"]) <= cfg.roi_heads.detections_per_image  # untrained, but above the 0.05 threshold
    assert (out["boxes"] >= 0).all() and (out["boxes"][:, [0, 2]] <= 64).all() and (out["boxes"][:, [1, 3]] <= 48).all()
    assert (out["scores"][:-1] >= out["scores"][1:]).all()
