"""Augmentation previews (detector.data.preview): a grid of samples, each as the original and its augmented views."""

from __future__ import annotations

import numpy as np

from detector.data.preview import augmentation_grid
from tests.support.images import write_image


def test_draws_a_detection_grid(tiny_voc):
    grid = augmentation_grid(tiny_voc, task="detect", preset="strong", n=2, views=2, cell=64)
    image = np.asarray(grid.image.convert("RGB"))
    assert image.shape[0] == 2 * (64 + 4) + 4  # two rows of 64 px tiles with 4 px gaps
    assert image.shape[1] >= 4 + 3 * (64 + 4)  # original + 2 views per row, each at least 64 px wide
    assert image[4:68, 4:68].std() > 10  # a picture, not the background


def test_draws_a_classification_grid_from_image_folders(tmp_path):
    colours = {"cat": (200, 30, 30), "dog": (30, 30, 200)}
    for name, colour in colours.items():
        write_image(tmp_path / "data" / "train" / name / "a.png", colour, size=(40, 40))
    grid = augmentation_grid(tmp_path / "data", task="classify", preset="none", views=1, cell=32, size=32)
    image = np.asarray(grid.image.convert("RGB")).astype(int)
    assert image.shape == (2 * (32 + 4) + 4, 4 + 2 * (32 + 4), 3)
    # Row r, view tile: x 40..71, y 4 + 36 r ..; "none" shows the resized image, normalisation undone.
    for row, colour in enumerate(colours.values()):
        np.testing.assert_allclose(image[4 + 36 * row + 16, 56], colour, atol=1)
