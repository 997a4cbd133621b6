"""Tests for detector.core.checkpoint and detector.models.factory.load_detector: atomic writes, format checks,
rebuilding a model from the file alone, RNG state, export."""

import dataclasses
import os
import random
import stat

import numpy as np
import pytest
import torch

from detector.core import checkpoint, rng
from detector.core.checkpoint import CheckpointError
from detector.models.factory import build_detector, load_detector
from detector.models.faster_rcnn import tiny_config
from tests.support.checkpoints import save_detector

CLASSES = ("circle", "square", "triangle")


def _config():
    cfg = tiny_config(num_classes=len(CLASSES))
    return dataclasses.replace(
        cfg,
        min_size=(96,),
        max_size=160,
        rpn=dataclasses.replace(cfg.rpn, pre_nms_top_n_test=200, post_nms_top_n_test=20),
    )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(0)
    cfg = _config()
    model = build_detector("faster_rcnn", cfg).eval()
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(1000, 100)}}}  # resume state export drops
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_detector(path, model, CLASSES, metrics={"mAP": 0.5}, optimizer=optimizer)
    return model, path


def _image():
    return torch.rand(3, 90, 120, generator=torch.Generator().manual_seed(0))


def test_save_writes_marker_and_leaves_no_temp_files(tmp_path):
    path = checkpoint.save(tmp_path / "sub" / "a.pt", {"x": torch.arange(3)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.pt"]
    ckpt = checkpoint.load(path)
    assert ckpt["format"] == checkpoint.FORMAT and ckpt["format_version"] == checkpoint.FORMAT_VERSION
    assert set(ckpt["versions"]) == {"detector", "torch", "torchvision", "python"}
    assert torch.equal(ckpt["x"], torch.arange(3))


def test_failed_save_leaves_existing_file_untouched(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path / "a.pt", {"x": torch.arange(3)})
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"x": torch.arange(5)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_save_gives_the_mode_a_plain_open_would(tmp_path, umask, mode):
    # mkstemp alone makes 0600, which the service's container (another uid) cannot read.
    old = os.umask(umask)
    try:
        path = checkpoint.save(tmp_path / "a.pt", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_remove_partial_saves_removes_only_what_a_killed_save_left(tmp_path):
    checkpoint.save(tmp_path / "last.pt", {"x": 1})
    for name in (".last.pt.k2j4h1x0.tmp", ".best.pt.abcdefgh.tmp", ".notes.txt.tmp", "mine.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    removed = checkpoint.remove_partial_saves(tmp_path)
    assert sorted(p.name for p in removed) == [".best.pt.abcdefgh.tmp", ".last.pt.k2j4h1x0.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.tmp", "last.pt", "mine.tmp"]


def test_load_rejects_a_non_detector_file(tmp_path):
    plain = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not a detector checkpoint") as err:
        checkpoint.load(plain)
    assert str(plain) in str(err.value)

    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(garbage)
    assert str(garbage) in str(err.value)

    with pytest.raises(CheckpointError, match="does not exist") as err:
        checkpoint.load(tmp_path / "missing.pt")
    assert "missing.pt" in str(err.value)


def test_load_detector_rejects_another_kind(tmp_path):
    path = checkpoint.save(tmp_path / "cls.pt", {"kind": "classifier", "model": {}})
    with pytest.raises(CheckpointError, match="not a detector") as err:
        load_detector(path)
    assert str(path) in str(err.value)


def test_load_detector_rebuilds_identical_model_from_file_alone(saved_model):
    model, path = saved_model
    rebuilt, ckpt = load_detector(path)
    assert not rebuilt.training
    assert rebuilt.class_names == CLASSES
    assert "model" not in ckpt and ckpt["metrics"] == {"mAP": 0.5}
    assert rebuilt.config == _config()  # tuples restored from the stored lists/tuples
    with torch.no_grad():
        (a,), (b,) = model([_image()]), rebuilt([_image()])
    assert len(a["boxes"]) > 0
    for key in ("boxes", "labels", "scores"):
        assert torch.equal(a[key], b[key]), key


def test_export_half_is_smaller_and_loads(saved_model, tmp_path):
    model, path = saved_model
    out = checkpoint.export(path, tmp_path / "small.pt", half=True)
    full = checkpoint.export(path, tmp_path / "full.pt")
    # About half: the RoI head shared by backbone.head and roi_heads.head must stay stored once.
    assert out.stat().st_size < 0.6 * full.stat().st_size
    assert full.stat().st_size < path.stat().st_size  # the optimizer state was dropped
    raw = checkpoint.load(out)
    assert "optimizer" not in raw
    assert all(v.dtype == torch.float16 for v in raw["model"].values() if v.is_floating_point())
    shared = [k for k in raw["model"] if k.startswith("backbone.head.")]
    assert shared and all(
        raw["model"][k] is raw["model"]["roi_heads.head." + k[len("backbone.head.") :]] for k in shared
    )
    rebuilt, _ = load_detector(out)
    assert all(p.dtype == torch.float32 for p in rebuilt.parameters())
    ref = model.state_dict()
    for name, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, ref[name], atol=1e-3, rtol=1e-3)
    with torch.no_grad():
        (det,) = rebuilt([_image()])
    assert len(det["boxes"]) > 0


def test_export_full_precision_keeps_weights_exactly(saved_model, tmp_path):
    model, path = saved_model
    out = checkpoint.export(path, tmp_path / "full.pt")
    raw = checkpoint.load(out)
    assert "optimizer" not in raw and raw["class_names"] == list(CLASSES)
    for name, value in model.state_dict().items():
        assert torch.equal(raw["model"][name], value), name


def _draws():
    return torch.rand(4).tolist(), random.random(), np.random.rand(3).tolist()


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    _draws()  # move away from the seeded start
    state = rng.rng_state()
    expected = _draws()
    assert _draws() != expected  # the generators did move on
    rng.set_rng_state(state)
    assert _draws() == expected
    # Through a checkpoint file too (lists instead of tuples, tensors for numpy's key).
    path = checkpoint.save(tmp_path / "rng.pt", {"rng": state})
    _draws()
    rng.set_rng_state(checkpoint.load(path)["rng"])
    assert _draws() == expected
