"""The detectors' input transform: torchvision's resize, except that no side ever becomes 0 pixels."""

import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detector.core.imagenet import IMAGENET_MEAN, IMAGENET_STD
from detector.models.transform import detector_transform


def _pair(min_size=(600,), max_size=1000):
    ours = detector_transform(min_size, max_size).eval()
    theirs = GeneralizedRCNNTransform(min_size, max_size, list(IMAGENET_MEAN), list(IMAGENET_STD), size_divisible=32)
    return ours, theirs.eval()


@pytest.mark.parametrize("shape", [(1, 740), (740, 1), (10, 7400), (1, 40000)])
def test_thin_images_keep_at_least_one_pixel_per_side(shape):
    ours, theirs = _pair(max_size=736)
    image = torch.rand(3, *shape)
    with pytest.raises(RuntimeError):  # torchvision's own resize asks for a side of 0 pixels
        theirs([image])
    batch, _ = ours([image])
    (h, w) = batch.image_sizes[0]
    assert h >= 1 and w >= 1 and max(h, w) <= 736
    assert torch.isfinite(batch.tensors).all()


def test_thin_images_boxes_follow_the_image():
    ours, _ = _pair(max_size=736)
    ours.train()
    target = {"boxes": torch.tensor([[0.0, 0.0, 740.0, 1.0]]), "labels": torch.tensor([1])}
    batch, (out,) = ours([torch.rand(3, 1, 740)], [target])
    h, w = batch.image_sizes[0]
    assert out["boxes"].tolist() == [[0.0, 0.0, float(w), float(h)]]


@pytest.mark.parametrize("shape", [(375, 500), (500, 333), (37, 700), (1200, 1600), (1, 700)])
def test_every_other_image_is_resized_exactly_as_torchvision_does(shape):
    ours, theirs = _pair()
    image = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    mine, _ = ours([image])
    ref, _ = theirs([image])
    assert mine.image_sizes == ref.image_sizes
    assert torch.equal(mine.tensors, ref.tensors)
