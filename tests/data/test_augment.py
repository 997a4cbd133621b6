"""Augmentation presets (detector.data.augment); their preview grids: tests/data/test_preview.py."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from detector.data.augment import (
    PRESETS,
    ImageNetPCALighting,
    classification_transform,
    detection_pipeline,
    detection_preset,
    detection_transform,
)

H, W = 200, 300
# Two rectangles in different colour channels, so each box can be checked against its own pixels.
RED_BOX = [50.0, 40.0, 150.0, 120.0]  # label 1, not difficult
BLUE_BOX = [200.0, 130.0, 270.0, 180.0]  # label 2, difficult


def two_rectangles() -> tuple[np.ndarray, dict]:
    image = np.zeros((H, W, 3), np.uint8)
    image[40:120, 50:150, 0] = 255
    image[130:180, 200:270, 2] = 255
    target = {
        "boxes": torch.tensor([RED_BOX, BLUE_BOX]),
        "labels": torch.tensor([1, 2]),
        "difficult": torch.tensor([False, True]),
    }
    return image, target


def tight_box(mask: np.ndarray) -> np.ndarray | None:
    """Continuous xyxy box of the True pixels of an [H, W] mask, or None."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("preset", PRESETS)
def test_detection_presets_move_boxes_with_the_objects(preset):
    image, target = two_rectangles()
    kept = cut = 0
    for seed in range(30):
        out, t = detection_pipeline(preset, train=True, seed=seed)(image, target)
        assert out.dtype == torch.float32 and out.shape[0] == 3
        assert len(t["boxes"]) == len(t["labels"]) == len(t["difficult"])
        h, w = out.shape[1:]
        pixels = out.numpy() * 255
        # Channel differences: brightness shifts, the mean-colour fill and lighting noise move all channels together.
        masks = {1: pixels[0] - pixels[1] > 100, 2: pixels[2] - pixels[1] > 100}
        for label, mask in masks.items():
            visible = tight_box(mask)
            rows = (t["labels"] == label).nonzero().flatten()
            assert len(rows) <= 1
            touches_border = visible is not None and (visible[:2].min() <= 0 or visible[2] >= w or visible[3] >= h)
            if len(rows) == 0:
                # Dropped: gone, or cut by the border (then less than MIN_VISIBILITY of it was left).
                assert visible is None or touches_border, (preset, seed, label, visible)
                continue
            kept += 1
            cut += touches_border
            box = t["boxes"][rows[0]].numpy()
            assert bool(t["difficult"][rows[0]]) == (label == 2), "difficult must stay with its box"
            assert visible is not None, (preset, seed, label, box)
            if preset == "strong" and touches_border:
                # A rotated box clipped to the image is the clipped box of the rotated corners, which can be
                # looser than the visible part; it must still contain it.
                assert (box[:2] <= visible[:2] + 2).all() and (box[2:] >= visible[2:] - 2).all(), (seed, box, visible)
            else:
                np.testing.assert_allclose(box, visible, atol=2.0, err_msg=f"{preset} seed {seed} label {label}")
    assert kept >= 40  # of 60: the check above was not vacuous
    if preset in ("vgg", "strong"):
        assert cut > 0  # and some boxes were cut by a crop or warp


def test_alexnet_detection_crop_keeps_seven_eighths_of_each_side():
    image, target = two_rectangles()
    for seed in range(5):
        out, _ = detection_pipeline("alexnet", train=True, seed=seed)(image, target)
        assert out.shape == (3, 175, 262)  # 0.875 * 200, round(0.875 * 300 = 262.5) -> 262


def test_detection_presets_do_nothing_at_evaluation():
    for preset in PRESETS:
        assert detection_preset(preset, train=False) == []


def test_detection_transform_default_is_still_just_a_horizontal_flip():
    image, target = two_rectangles()
    transform = detection_transform(True, hflip=1.0)
    assert [type(t) for t in transform.pipeline.transforms] == [A.HorizontalFlip]
    out, t = transform(image, target)
    # x' = W - x: [50, 150] -> [150, 250] and [200, 270] -> [30, 100] on W = 300.
    torch.testing.assert_close(t["boxes"], torch.tensor([[150.0, 40.0, 250.0, 120.0], [30.0, 130.0, 100.0, 180.0]]))
    torch.testing.assert_close(out, torch.from_numpy(image[:, ::-1].copy()).permute(2, 0, 1).float() / 255)
    by_name = detection_transform(True, preset="alexnet", seed=0)
    assert by_name(image, target)[0].shape == (3, 175, 262)


def test_none_classification_on_a_constant_image_is_the_normalised_constant():
    image = np.full((150, 200, 3), 128, np.uint8)
    # (128 / 255 - mean) / std = (0.501961 - 0.485) / 0.229, (0.501961 - 0.456) / 0.224, (0.501961 - 0.406) / 0.225
    expected = torch.tensor([0.074065, 0.205183, 0.426493]).view(3, 1, 1).expand(3, 224, 224)
    for train in (True, False):
        out = classification_transform("none", train=train)(image)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_classification_presets_give_normalised_square_inputs(preset):
    image = np.empty((150, 200, 3), np.uint8)
    image[:] = (124, 116, 104)  # the ImageNet mean colour, normalising to about 0
    # Lighting noise moves a flat image by a few grey levels; brightness jitter by up to 0.2 / std.
    bound = {"alexnet": 0.3, "strong": 1.0}.get(preset, 0.01)
    for train in (True, False):
        transform = classification_transform(preset, train=train, seed=0)
        for seed in range(3):
            transform.reseed(seed)
            out = transform(image)
            assert out.shape == (3, 224, 224) and out.dtype == torch.float32
            assert out.mean(dim=(1, 2)).abs().max() < bound
    assert classification_transform(preset, train=True, size=64)(image).shape == (3, 64, 64)


def test_classification_eval_crops_the_centre_for_alexnet_and_vgg():
    # Columns 0..199 of a 100 x 200 image hold their column index; shorter side 100 -> 256 (x2.56), so the centre
    # 224 crop of the 512-wide image starts at (512 - 224) / 2 = 144, i.e. original column 144 / 2.56 = 56.25.
    image = np.broadcast_to(np.arange(200, dtype=np.uint8)[None, :, None], (100, 200, 3)).copy()
    for preset in ("alexnet", "vgg"):
        out = classification_transform(preset, train=False)(image)
        first_column = out[0, 112, 0] * 0.229 + 0.485  # back to [0, 1]
        assert abs(float(first_column) * 255 - 56.25) < 1.0


def test_d4_classification_draws_each_symmetry_of_the_square_and_nothing_else():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3) * 5  # no symmetry of its own
    plain = classification_transform("none", train=False, size=4)(image)
    symmetries = [torch.rot90(t, k, dims=(1, 2)) for t in (plain, plain.flip(2)) for k in range(4)]
    assert len({tuple(s.flatten().tolist()) for s in symmetries}) == 8
    transform = classification_transform("d4", train=True, size=4, seed=0)
    seen = set()
    for seed in range(64):
        transform.reseed(seed)
        out = transform(image)
        matches = [i for i, s in enumerate(symmetries) if torch.equal(out, s)]
        assert len(matches) == 1, seed  # exact: no interpolation, no colour change
        seen.add(matches[0])
    assert seen == set(range(8))
    torch.testing.assert_close(classification_transform("d4", train=False, size=4)(image), plain)


def test_pca_lighting_moves_pixels_along_the_imagenet_eigenvectors():
    image = np.full((2, 2, 3), 128, np.uint8)
    # alpha = (1, 0, 0): shift = 255 * 0.2175 * (-0.5675, -0.5808, -0.5836) = (-31.475, -32.213, -32.368)
    out = ImageNetPCALighting().apply(image, alpha=np.array([1.0, 0.0, 0.0], np.float32))
    np.testing.assert_array_equal(out[0, 0], [97, 96, 96])  # 96.525, 95.787, 95.632 rounded
    t = A.Compose([ImageNetPCALighting(alpha_std=0.1)], seed=0)
    shifts = []
    for seed in range(20):
        t.set_random_seed(seed)
        shifts.append(t(image=image)["image"][0, 0].astype(int) - 128)
    assert np.abs(shifts).max() > 0 and np.abs(shifts).max() < 20  # a few grey levels, not nothing
