"""Shared fixtures: a tiny generated VOC-format dataset, made once per test session."""

from __future__ import annotations

import pytest

from detector.data.synth import generate


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory):
    """8 train / 2 val / 4 test images of 96-128 px with at most 2 objects each."""
    root = tmp_path_factory.mktemp("tiny_voc")
    generate(root, train=8, val=2, test=4, seed=3, image_size=(96, 128), max_objects=2, progress=False)
    return root
