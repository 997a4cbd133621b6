"""The real-data benchmark's dataset step: DeepForest's labelled photographs cut into a VOC folder of tiles that our
loaders read, with crowns cut by a tile's edge clipped and, when mostly outside, marked difficult."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from detector.data.convert import voc_xml
from detector.data.formats import open_detection
from detector.data.voc.annotations import VOCObject
from detector.tools.realdata import dataset
from detector.tools.realdata.dataset import _cuts, find_wheel, prepare


def test_tiles_cover_the_image_without_overlap_and_at_most_tile_px():
    for size, tile in ((2299, 400), (1035, 400), (400, 400), (399, 400), (801, 400)):
        cuts = _cuts(size, tile)
        assert cuts[0][0] == 0 and sum(n for _, n in cuts) == size and max(n for _, n in cuts) <= tile
        assert all(a + n == b for (a, n), (b, _) in zip(cuts, cuts[1:]))
        assert max(n for _, n in cuts) - min(n for _, n in cuts) <= 1


def _tree(x1, y1, x2, y2, name="Tree"):
    return VOCObject(name, (x1, y1, x2, y2), difficult=False, truncated=False, occluded=False, pose="Unspecified")


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A wheel laid out like deepforest's: one 500 x 300 photo (two tiles of 250 x 300) with three crowns, and a
    400 x 400 photo labelled Alive/Dead."""
    wheel = tmp_path / "deepforest-0-py3-none-any.whl"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(wheel, "w") as zf:
        for stem, (w, h), objects in (
            ("big", (500, 300), [_tree(10, 10, 60, 60), _tree(230, 100, 280, 150), _tree(200, 200, 260, 240)]),
            ("small", (400, 400), [_tree(5, 5, 40, 40, "Dead"), _tree(100, 100, 150, 140, "Alive")]),
        ):
            path = tmp_path / f"{stem}.png"
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
            zf.write(path, f"deepforest/data/{stem}.png")
            zf.writestr(f"deepforest/data/{stem}.xml", voc_xml(f"{stem}.png", w, h, objects))
        zf.writestr("deepforest-0.dist-info/licenses/LICENSE", "MIT License\n")
    monkeypatch.setattr(dataset, "SOURCES", ("big.xml", "small.xml"))
    return wheel


def test_prepare_writes_a_voc_folder_our_loaders_read(fake_wheel, tmp_path):
    out = tmp_path / "trees"
    counts = prepare(fake_wheel, out, tile=400)
    assert counts == {"images": 3, "boxes": 7, "difficult": 2}
    assert (out / "LICENSE.deepforest").read_text().startswith("MIT")
    data = open_detection(out, "all", keep_difficult=True)
    assert data.classes == ("tree",) and len(data) == 3
    targets = {t["image_id"]: t for t in (data[i][1] for i in range(len(data)))}
    left, right = targets["big_0_0"], targets["big_250_0"]
    # Cut at x = 250: the crown at x 230..280 is 40% in the left tile (difficult there) and 60% in the right; the
    # one at 200..260 is 5/6 in the left one and 1/6 (difficult) in the right.
    assert left["boxes"].tolist() == [[10, 10, 60, 60], [230, 100, 250, 150], [200, 200, 250, 240]]
    assert left["difficult"].tolist() == [False, True, False]
    assert right["boxes"].tolist() == [[0, 100, 30, 150], [0, 200, 10, 240]]
    assert right["difficult"].tolist() == [False, True]
    assert targets["small"]["labels"].tolist() == [1, 1]  # Alive and Dead are both trees


def test_find_wheel_says_what_to_do_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset.subprocess, "run", lambda *a, **k: type("R", (), {"returncode": 1})())
    with pytest.raises(SystemExit, match="pip download deepforest==2.1.0 --no-deps"):
        find_wheel(None, tmp_path / "cache")
    with pytest.raises(SystemExit, match="no such file"):
        find_wheel(tmp_path / "missing.whl", tmp_path / "cache")


def test_prepare_leaves_a_prepared_folder_alone(fake_wheel, tmp_path):
    out = tmp_path / "trees"
    first = prepare(fake_wheel, out, tile=400)
    stamp = (out / "Annotations" / "small.xml").stat().st_mtime_ns
    assert prepare(fake_wheel, out, tile=400) == first
    assert (out / "Annotations" / "small.xml").stat().st_mtime_ns == stamp
    assert prepare(fake_wheel, out, tile=300)["images"] == 6  # other settings: rewritten (2 x 1 + 2 x 2 tiles)
