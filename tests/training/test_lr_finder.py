"""The learning-rate range test's suggestion (detector.training.lr_finder); the test run inside training:
tests/training/test_classification.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.training.lr_finder import _suggest


def test_suggestion_is_the_steepest_decade_before_the_minimum():
    lrs = [float(x) for x in np.logspace(-7, 1, 81)]  # 10 points per decade
    # Falls fastest at 1e-3, bottoms out at 1e-1 and then diverges; the steep rise after the minimum is ignored.
    loss = [
        2.0 - math.tanh(2 * (math.log10(lr) + 3)) + (50.0 * (math.log10(lr) + 1) if lr > 0.1 else 0.0) for lr in lrs
    ]
    suggestion, method = _suggest(lrs, loss)
    assert method == "steepest" and suggestion == pytest.approx(1e-3, rel=0.3)
    # Less than a decade before the minimum: a tenth of the min-loss rate, kept inside the sweep.
    assert _suggest(lrs[:5], [3.0, 1.0, 2.0, 4.0, 8.0]) == (lrs[0], "min_loss/10")
