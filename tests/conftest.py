"""Fixtures more than one test package uses: generated and hand-written datasets, checkpoints built without training,
the models the service tests serve, and a loopback server for weight downloads. Their builders live in
``tests/support``."""

from __future__ import annotations

import pytest

from detector.data.synth import generate
from detector.data.voc import VOCDetection
from tests.support import checkpoints, learning
from tests.support.checkpoints import COLOURS
from tests.support.file_server import serve_folder
from tests.support.images import write_image
from tests.support.paths import DEFAULT_DETECTOR
from tests.support.voc import annotation_xml, make_voc, obj_xml, rgb


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


@pytest.fixture
def voc_root(tmp_path):
    """Two 64x48 images, classes cat and dog; boxes in the XML's 1-based inclusive corners.

    000001: cat [1, 1, 20, 20], dog [30, 10, 60, 40] difficult
    000002: dog [5, 5, 40, 40], cat [41, 1, 64, 30]
    Positives: cat 2, dog 1.
    """
    objects = {
        "000001": [obj_xml("cat", (1, 1, 20, 20)), obj_xml("dog", (30, 10, 60, 40), difficult="1")],
        "000002": [obj_xml("dog", (5, 5, 40, 40)), obj_xml("cat", (41, 1, 64, 30))],
    }
    images = {
        i: (annotation_xml(f"{i}.jpg", (64, 48), objs), rgb(64, 48, (90, 120, 30))) for i, objs in objects.items()
    }
    return make_voc(tmp_path / "voc", images, {"test": "000001\n000002\n"}, labels="cat\ndog\n")


@pytest.fixture
def proposal_voc(tmp_path):
    """A private 6-image VOC-format folder (the proposal tests rewrite its images): trainval = 5 train + 1 val."""
    root = tmp_path / "voc"
    generate(root, train=5, val=1, test=0, seed=7, image_size=(96, 128), max_objects=2, progress=False)
    return root


# --------------------------------------------------------------------------------------------
# Checkpoints built without training (tests/support/checkpoints.py)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_voc):
    """An untrained tiny Faster R-CNN for the tiny dataset's classes, at small inputs."""
    classes = VOCDetection(tiny_voc, "test").classes
    return checkpoints.tiny_detector(tmp_path_factory.mktemp("ckpt") / "tiny.pt", classes)


@pytest.fixture(scope="session")
def kind_checkpoints(tmp_path_factory):
    """An untrained tiny checkpoint of each kind (small inputs), as the trainer writes them."""
    return checkpoints.kind_detectors(tmp_path_factory.mktemp("kinds"))


@pytest.fixture(scope="session")
def channel_classifier(tmp_path_factory):
    """A classifier that names the brightest colour channel of its 8 x 8 input (red, green, blue)."""
    return checkpoints.channel_classifier(tmp_path_factory.mktemp("classifier") / "channels.pt")


@pytest.fixture(scope="session")
def colour_folders(tmp_path_factory):
    """test/red: 3 red images and 1 green one (mislabelled); test/green: 2 green; test/blue: 2 blue.
    The channel classifier is right on 7 of 8: red 3/4, green 2/2, blue 2/2, and the wrong one is red called green."""
    root = tmp_path_factory.mktemp("folders")
    content = {"red": ["red", "red", "red", "green"], "green": ["green", "green"], "blue": ["blue", "blue"]}
    for label, colours in content.items():
        for i, colour in enumerate(colours):
            write_image(root / "test" / label / f"{i}.png", COLOURS[colour], size=(20, 14))
    return root


# --------------------------------------------------------------------------------------------
# Service fixtures: checkpoints to serve.


@pytest.fixture(scope="session")
def tiny_classifier_ckpt(tmp_path_factory):
    """An untrained LeNet-5 classifier checkpoint (32 px input, the six generated shape classes), as the classify
    trainer writes it: enough to exercise serving without training anything."""
    return checkpoints.tiny_classifier(tmp_path_factory.mktemp("classifier") / "tiny-classifier.pt")


@pytest.fixture(scope="session")
def served_models(tiny_classifier_ckpt):
    """The ``models`` setting for tests: the committed default detector and the tiny classifier."""
    return {"default-detector": DEFAULT_DETECTOR, "tiny-classifier": str(tiny_classifier_ckpt)}


# --------------------------------------------------------------------------------------------
# Weight downloads from loopback (tests/support/file_server.py)


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def weights_server(tmp_path, no_proxy):
    """Serves the files of a folder on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    with serve_folder(root) as url:
        yield root, url
