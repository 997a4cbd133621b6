"""Shared fixtures: a tiny generated VOC-format dataset, made once per test session."""

from __future__ import annotations

import pytest

from tests.support import learning


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory):
    """8 train / 2 val / 4 test images of 96-128 px with at most 2 objects each."""
    return learning.tiny_voc(tmp_path_factory.mktemp("tiny_voc"))


@pytest.fixture(scope="session", autouse=True)
def _no_loss_switch():
    """``DETECTOR_TEST_NO_LOSS=1 pytest -m learning`` trains with every loss multiplied by 0: every learning test
    must then fail (tests/support/learning.py)."""
    if learning.NO_LOSS:
        learning.switch_off_the_loss()


# --------------------------------------------------------------------------------------------
# Service fixtures: checkpoints to serve and a real uvicorn process.

DEFAULT_DETECTOR = "weights/default-detector.pt"


@pytest.fixture(scope="session")
def tiny_classifier_ckpt(tmp_path_factory):
    """An untrained LeNet-5 classifier checkpoint (32 px input, the six generated shape classes), as the classify
    trainer writes it: enough to exercise serving without training anything."""
    import torch

    from detector.classify.models import CLASSIFIER_KIND, build_classifier
    from detector.core import checkpoint
    from detector.data.synth import CLASSES

    config = {"name": "lenet5", "num_classes": len(CLASSES), "input_size": [3, 32, 32], "activation": "relu", "init": None,
              "hidden_sizes": [120, 84], "dropout": 0.0, "batch_norm": False}  # fmt: skip
    torch.manual_seed(0)
    model = build_classifier(
        "lenet5", num_classes=len(CLASSES), input_size=(3, 32, 32), hidden_sizes=(120, 84), dropout=0.0
    )
    path = tmp_path_factory.mktemp("classifier") / "tiny-classifier.pt"
    checkpoint.save(
        path,
        checkpoint.model_payload(
            model,
            kind=CLASSIFIER_KIND,
            config=config,
            class_names=list(CLASSES),
            train_config={"augment": "none"},
            metrics={"top1": 0.0},
        ),
    )
    return path


@pytest.fixture(scope="session")
def served_models(tiny_classifier_ckpt):
    """The ``models`` setting for tests: the committed default detector and the tiny classifier."""
    return {"default-detector": DEFAULT_DETECTOR, "tiny-classifier": str(tiny_classifier_ckpt)}
