"""The detector kinds behind one factory (detector.models.factory): R-CNN, Fast R-CNN and Faster R-CNN rebuild from
their checkpoints and share one interface. Behind the same evaluation, predict and service: tests/inference,
tests/cli/test_predict.py, tests/api/test_app.py."""

from __future__ import annotations

import pytest

from detector.models.factory import DETECTOR_KINDS, load_detector
from tests.support.checkpoints import KINDS


def test_every_kind_is_known_to_the_factory():
    assert set(KINDS) == set(DETECTOR_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoints_rebuild_and_proposal_counts_can_be_lowered(kind_checkpoints, kind):
    model, ckpt = load_detector(kind_checkpoints[kind])
    assert model.kind == ckpt["kind"] == kind and not model.training
    model.set_max_proposals(7)
    assert model.max_proposals == 7
    assert model.proposal_source == ("rpn" if kind == "faster_rcnn" else "selective_search")
    with pytest.raises(ValueError):
        model.set_max_proposals(0)
