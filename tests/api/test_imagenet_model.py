"""torchvision's ImageNet classifier file, as ``python -m detector.weights fetch resnet18`` leaves it, is served as it
is (DETECTOR_API_MODELS='{"imagenet": "weights/resnet18-f37072fd.pth"}'): /classify answers with the 1000 ImageNet
names and torchvision's own probabilities, computed here with its published evaluation transform written out."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision.transforms.functional as TF
from fastapi.testclient import TestClient
from PIL import Image
from torchvision import models

from api.config import Settings
from api.main import create_app
from api.registry import ModelLoadError, load_served_model
from detector.classify.torchvision_imagenet import torchvision_imagenet_weights
from detector.core import checkpoint
from detector.core.imagenet import imagenet_categories
from detector.core.precision import resolve_precision
from detector.inference.predictor import load_predictor
from detector.models.pretrained import IMAGENET_FILES
from tests.support.images import photo


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """torchvision's ResNet-18 with random weights, saved under the name of its ImageNet file."""
    torch.manual_seed(0)
    model = models.resnet18(weights=None).eval()
    # Spread the logits: chelsea's top class gets 0.37 instead of 0.01, so a wrong input or head moves the
    # probabilities by 1e-2 or more (OpenCV's resize instead of the antialiased one: 8e-3; no normalisation: 0.35).
    model.fc.weight.data.mul_(4.0)
    path = tmp_path_factory.mktemp("weights") / IMAGENET_FILES["resnet18"]
    torch.save(model.state_dict(), path)
    return model, path


def torchvision_probs(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """torchvision's evaluation of its IMAGENET1K_V1 weights on a uint8 [3, H, W] image: shorter side 256
    (antialiased bilinear), centre 224 x 224 crop, ImageNet mean and std."""
    x = TF.center_crop(TF.resize(image, [256], antialias=True), [224, 224])
    x = TF.normalize(x.float() / 255, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    with torch.no_grad():
        return model(x[None]).softmax(dim=1)[0]


def test_the_fetched_file_answers_classify_with_imagenet_names_and_torchvision_probabilities(resnet18_file):
    model, path = resnet18_file
    image = (photo("chelsea") * 255).round().byte()
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    expected = torchvision_probs(model, image)
    names = imagenet_categories()

    settings = Settings(models={"imagenet": path}, precision="fp32", max_wait_ms=0, warmup=False)
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/classify", params={"model": "imagenet", "top_k": 10}, files={"image": ("cat.png", buffer.getvalue())}
        )
        listed = client.get("/models").json()
        tta = client.post("/classify", params={"tta": "10crop"}, files={"image": ("cat.png", buffer.getvalue())})
    assert r.status_code == 200, r.text
    found = r.json()["predictions"]
    top = expected.topk(10)
    assert found[0]["score"] > 0.3  # far from uniform (0.001): the comparison below can tell inputs apart
    assert [p["label"] for p in found] == [names[i] for i in top.indices.tolist()]
    assert [p["score"] for p in found] == pytest.approx(top.values.tolist(), abs=1e-5)
    (served,) = listed["models"]
    assert served["classes"] == names and served["task"] == "classify" and served["backbone"] == "resnet18"
    assert tta.status_code == 200 and {p["label"] for p in tta.json()["predictions"]} <= set(names)

    predictor = load_predictor(path)
    assert predictor.class_names == tuple(names) and len(names) == 1000
    (probs,) = predictor.predict_batch([predictor.to_input(Image.open(buffer))])
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-5)


def test_a_missing_file_names_the_fetch_command(tmp_path):
    missing = tmp_path / IMAGENET_FILES["resnet50"]
    fetch = f"python -m detector.weights fetch resnet50 --dir {tmp_path}"
    with pytest.raises(ModelLoadError, match=fetch):
        load_served_model("imagenet", missing, torch.device("cpu"), resolve_precision("fp32", torch.device("cpu")))
    with pytest.raises(checkpoint.CheckpointError, match=fetch):
        load_predictor(missing)


def test_every_fetched_file_is_recognised_by_its_name():
    assert {arch: torchvision_imagenet_weights(name)[0] for arch, name in IMAGENET_FILES.items()} == {
        arch: arch for arch in IMAGENET_FILES
    }
    assert torchvision_imagenet_weights("weights/default-classifier.pt") is None
    assert torchvision_imagenet_weights("vgg16_features-amdegroot-88682ab5.pth") is None  # no classifier in it
