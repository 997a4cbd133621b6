"""Tests for detector.data.synth: VOC layout, annotation rules, pixel conventions, determinism."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from detector.data import synth
from detector.data.synth import CLASSES, Shape, generate, render_image, resolve_visibility, shape_alpha, tight_box
from tests.support.voc import annotation_xml, make_voc, obj_xml

SMALL = dict(train=6, val=2, test=3, seed=0, image_size=(96, 160), max_objects=4, progress=False)
SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _rect(cx, cy, rx, ry, name="rectangle"):
    return Shape(name, (cx, cy), (rx, ry), 0.0, SQUARE)


def _block_means(a, h, w):
    """Means of the 4 x 4 blocks of the top-left h x w pixels of an [H, W, 3] image."""
    return a[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))


def _read_lines(path):
    return path.read_text().splitlines()


def _parse(path):
    root = ET.parse(path).getroot()
    objects = []
    for obj in root.findall("object"):
        box = tuple(int(obj.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax"))
        flags = {k: int(obj.find(k).text) for k in ("truncated", "difficult", "occluded")}
        objects.append({"name": obj.find("name").text, "box": box, **flags})
    size = (int(root.find("size/width").text), int(root.find("size/height").text))
    return root, size, objects


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    return out, generate(out, **SMALL)


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    """40 images at the default image sizes, for properties that need a few objects to show."""
    out = tmp_path_factory.mktemp("forty")
    generate(out, train=40, val=0, test=0, seed=0, progress=False)
    return [_parse(out / "Annotations" / f"{i}.xml") for i in _read_lines(out / "ImageSets/Main/train.txt")]


def test_layout_ids_and_split_files(small):
    out, summary = small
    main = out / "ImageSets" / "Main"
    assert _read_lines(main / "train.txt") == [f"{i:06d}" for i in range(1, 7)]
    assert _read_lines(main / "val.txt") == ["000007", "000008"]
    assert _read_lines(main / "test.txt") == ["000009", "000010", "000011"]
    assert _read_lines(main / "trainval.txt") == _read_lines(main / "train.txt") + _read_lines(main / "val.txt")
    assert sorted(p.stem for p in (out / "JPEGImages").glob("*.jpg")) == [f"{i:06d}" for i in range(1, 12)]
    assert sorted(p.stem for p in (out / "Annotations").glob("*.xml")) == [f"{i:06d}" for i in range(1, 12)]
    assert _read_lines(out / "labels.txt") == list(CLASSES)
    assert len(list(main.glob("*_*.txt"))) == len(CLASSES) * 4
    assert {s: summary["splits"][s]["images"] for s in ("train", "val", "test")} == {"train": 6, "val": 2, "test": 3}
    # Every image is its own draw: no split repeats another's images.
    assert len({p.read_bytes() for p in (out / "JPEGImages").glob("*.jpg")}) == 11


def test_per_class_files_follow_voc_rule(small):
    out, summary = small
    main = out / "ImageSets" / "Main"
    for split in ("train", "val", "trainval", "test"):
        ids = _read_lines(main / f"{split}.txt")
        for name in CLASSES:
            expected = []
            for i in ids:
                mine = [o for o in _parse(out / "Annotations" / f"{i}.xml")[2] if o["name"] == name]
                flag = "  1" if any(not o["difficult"] for o in mine) else ("  0" if mine else " -1")
                expected.append(i + flag)
            assert _read_lines(main / f"{name}_{split}.txt") == expected, (name, split)
    # The summary counts what the XML files hold.
    for split in ("train", "val", "test"):
        counts = dict.fromkeys(CLASSES, 0)
        for i in _read_lines(main / f"{split}.txt"):
            for o in _parse(out / "Annotations" / f"{i}.xml")[2]:
                counts[o["name"]] += 1
        assert summary["splits"][split]["per_class"] == counts


def test_xml_layout_and_boxes_inside_image(small):
    out, _ = small
    for xml in sorted((out / "Annotations").glob("*.xml")):
        root, (width, height), objects = _parse(xml)
        assert root.tag == "annotation"
        assert [c.tag for c in root][:5] == ["folder", "filename", "source", "size", "segmented"]
        assert root.find("filename").text == xml.stem + ".jpg"
        assert root.find("size/depth").text == "3"
        assert Image.open(out / "JPEGImages" / f"{xml.stem}.jpg").size == (width, height)
        assert 96 <= width <= 160 and 96 <= height <= 160
        assert objects and any(not o["difficult"] for o in objects)
        for element in root.findall("object"):
            assert [c.tag for c in element] == ["name", "pose", "truncated", "difficult", "occluded", "bndbox"]
        for o in objects:
            xmin, ymin, xmax, ymax = o["box"]
            assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height
            assert o["name"] in CLASSES
            if min(xmax - xmin + 1, ymax - ymin + 1) < 12:
                assert o["difficult"] == 1
            # A box touching no image border cannot belong to a truncated shape.
            if o["truncated"]:
                assert xmin == 1 or ymin == 1 or xmax == width or ymax == height


def test_box_is_tight_box_of_visible_mask(small):
    out, _ = small
    ids = _read_lines(out / "ImageSets/Main/train.txt") + _read_lines(out / "ImageSets/Main/val.txt")
    splits = ["train"] * 6 + ["val"] * 2
    indices = list(range(6)) + list(range(2))
    for image_id, split, index in zip(ids, splits, indices):
        sample = render_image(0, split, index, image_size=SMALL["image_size"], max_objects=4)
        _, size, objects = _parse(out / "Annotations" / f"{image_id}.xml")
        assert sample.image.shape == (size[1], size[0], 3)
        assert [o.name for o in sample.objects] == [o["name"] for o in objects]
        # Later objects are drawn over earlier ones.
        covered = np.zeros(sample.image.shape[:2], bool)
        for obj, written in zip(reversed(sample.objects), reversed(objects)):
            visible = obj.mask & ~covered
            rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
            x0, y0, x1, y1 = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1  # continuous xyxy
            xmin, ymin, xmax, ymax = written["box"]
            assert (xmin - 1, ymin - 1, xmax, ymax) == (x0, y0, x1, y1)
            covered |= obj.mask
        # The JPEG on disk is this image, up to compression (compared on 4 x 4 block means, since JPEG
        # loses most of the per-pixel noise).
        decoded = np.asarray(Image.open(out / "JPEGImages" / f"{image_id}.jpg").convert("RGB"), np.float32)
        h, w = (size[1] // 4) * 4, (size[0] // 4) * 4
        assert np.abs(_block_means(decoded, h, w) - _block_means(sample.image.astype(np.float32), h, w)).mean() < 3.0


def test_same_seed_same_bytes_other_seed_differs(tmp_path, small):
    out, _ = small
    again = tmp_path / "again"
    generate(again, **SMALL)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path
    other = tmp_path / "other"
    generate(other, **{**SMALL, "seed": 1})
    for i in ("000001", "000007", "000009"):
        assert (other / "Annotations" / f"{i}.xml").read_text() != (out / "Annotations" / f"{i}.xml").read_text()
        assert (other / "JPEGImages" / f"{i}.jpg").read_bytes() != (out / "JPEGImages" / f"{i}.jpg").read_bytes()


def test_splits_do_not_depend_on_other_split_sizes(tmp_path, small):
    out, _ = small
    fewer = tmp_path / "fewer"
    generate(fewer, **{**SMALL, "train": 3})
    # val image 0 is 000007 with 6 training images and 000004 with 3.
    assert (fewer / "JPEGImages/000004.jpg").read_bytes() == (out / "JPEGImages/000007.jpg").read_bytes()
    assert _parse(fewer / "Annotations/000004.xml")[2] == _parse(out / "Annotations/000007.xml")[2]


def test_sizes_classes_and_flags_over_forty_images(forty):
    objects = [o for _, _, objs in forty for o in objs]
    long_sides = [max(o["box"][2] - o["box"][0], o["box"][3] - o["box"][1]) + 1 for o in objects]
    assert min(long_sides) < 32 and max(long_sides) > 100
    assert {o["name"] for o in objects} == set(CLASSES)
    for flag in ("difficult", "truncated", "occluded"):
        assert any(o[flag] for o in objects), flag
        assert not all(o[flag] for o in objects), flag
    assert max(len(objs) for _, _, objs in forty) >= 3
    sizes = [size for _, size, _ in forty]
    assert len(set(sizes)) > 20 and any(w != h for w, h in sizes)
    assert all(192 <= s <= 320 for size in sizes for s in size)


def test_rectangle_mask_covers_its_continuous_extent():
    # Continuous box [40, 35, 60, 45] covers pixel columns 40..59 and rows 35..44.
    alpha, full_area = shape_alpha(_rect(50.0, 40.0, 10.0, 5.0), 100, 80)
    mask = alpha >= 128
    assert full_area == 200 and mask.sum() == 200
    assert tight_box(mask) == (41, 36, 60, 45)
    assert alpha[40, 50] == 255 and alpha[40, 39] == 0 and alpha[34, 50] == 0


def test_ellipse_and_ring_areas():
    rng = np.random.default_rng(0)
    circle, _ = synth.unit_outline("ellipse", rng)
    _, area = shape_alpha(Shape("ellipse", (50.0, 50.0), (20.0, 10.0), 0.7, circle), 100, 100)
    assert area == pytest.approx(np.pi * 20 * 10, rel=0.03)
    outline, hole = synth.unit_outline("ring", rng)
    inner = np.linalg.norm(hole[0])
    alpha, area = shape_alpha(Shape("ring", (50.0, 50.0), (20.0, 20.0), 0.0, outline, hole), 100, 100)
    assert area == pytest.approx(np.pi * 400 * (1 - inner**2), rel=0.05)
    assert alpha[50, 50] == 0 and alpha[50, 50 + int(20 * (1 + inner) / 2)] == 255


def test_visibility_truncation_and_occlusion_by_hand():
    # Square [-5, 15] x [30, 50]: 15 of 20 columns inside the image.
    (cut,) = resolve_visibility([_rect(5.0, 40.0, 10.0, 10.0)], 100, 80)
    assert cut.box == (1, 31, 15, 50) and cut.truncated and not cut.difficult and not cut.occluded
    assert cut.visible_fraction == pytest.approx(0.75)

    # Square [40, 60] x [30, 50] under a rectangle [48, 70] x [20, 60]: 8 of 20 columns stay visible.
    back, front = resolve_visibility([_rect(50.0, 40.0, 10.0, 10.0), _rect(59.0, 40.0, 11.0, 20.0)], 100, 80)
    assert back.box == (41, 31, 48, 50) and back.occluded and back.difficult and not back.truncated
    assert front.box == (49, 21, 70, 60) and not (front.occluded or front.difficult or front.truncated)

    # 4 of 20 columns visible (20 %) is below the 25 % limit: the object is removed altogether.
    kept = resolve_visibility([_rect(50.0, 40.0, 10.0, 10.0), _rect(55.0, 40.0, 11.0, 20.0)], 100, 80)
    assert [o.box for o in kept] == [(45, 21, 66, 60)]

    # A band over rows 34..39 hides 30 %: occluded, but the box and difficulty stay as they were.
    back, _ = resolve_visibility([_rect(50.0, 40.0, 10.0, 10.0), _rect(50.0, 37.0, 11.0, 3.0)], 100, 80)
    assert back.visible_fraction == pytest.approx(0.7) and back.box == (41, 31, 60, 50)
    assert back.occluded and not back.difficult

    # Fully visible but only 10 px wide: difficult by size.
    (thin,) = resolve_visibility([_rect(20.0, 20.0, 5.0, 10.0)], 100, 80)
    assert thin.box == (16, 11, 25, 30) and thin.difficult and not (thin.occluded or thin.truncated)


def test_bad_arguments_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        generate(tmp_path, image_size=(300, 200), progress=False)
    with pytest.raises(ValueError, match="max_objects"):
        generate(tmp_path, max_objects=0, progress=False)
    with pytest.raises(ValueError, match="train"):
        generate(tmp_path, train=-1, progress=False)


def test_classification_crops_one_per_non_difficult_object(small, tmp_path):
    out, _ = small
    summary = synth.write_classification_crops(out, tmp_path / "crops", size=24)
    difficult = 0
    for split in ("train", "val", "test"):
        expected = {name: [] for name in CLASSES}
        for i in _read_lines(out / "ImageSets/Main" / f"{split}.txt"):
            for k, o in enumerate(_parse(out / "Annotations" / f"{i}.xml")[2]):
                if o["difficult"]:
                    difficult += 1
                else:
                    expected[o["name"]].append(f"{i}_{k}.jpg")
        folder = tmp_path / "crops" / split
        assert sorted(p.name for p in folder.iterdir()) == sorted(CLASSES)  # a folder per class, even an empty one
        for name in CLASSES:
            assert sorted(p.name for p in (folder / name).iterdir()) == sorted(expected[name]), (split, name)
        assert summary["splits"][split]["crops"] == sum(len(v) for v in expected.values())
        assert summary["splits"][split]["per_class"] == {name: len(v) for name, v in expected.items()}
    assert sum(s["difficult_skipped"] for s in summary["splits"].values()) == difficult
    with Image.open(next((tmp_path / "crops" / "train").glob("*/*.jpg"))) as crop:
        assert crop.size == (24, 24) and crop.mode == "RGB"


def _write_voc(root, image, objects):
    """One-image VOC folder; objects are (name, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult)."""
    h, w = image.shape[:2]
    xml = annotation_xml("a.png", (w, h), [obj_xml(n, b, difficult=str(int(d))) for n, b, d in objects])
    make_voc(root, {"a": (xml, Image.fromarray(image))}, {"train": "a\n"}, image_ext=".png")


def test_classification_crop_adds_context_and_clips_to_the_image(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 10:20] = 255  # the object: pixels 10..19, VOC box 11..20, continuous [10, 20)
    objects = [
        ("rectangle", (11, 11, 20, 20), False),
        ("star", (51, 1, 60, 10), False),
        ("ring", (30, 30, 35, 35), True),
    ]
    _write_voc(tmp_path / "voc", image, objects)
    summary = synth.write_classification_crops(
        tmp_path / "voc", tmp_path / "crops", size=20, context=0.5, splits=("train",)
    )
    assert summary["splits"]["train"]["crops"] == 2 and summary["splits"]["train"]["difficult_skipped"] == 1
    # [10, 20) grown by 0.5 * 10 on each side is [5, 25): 20 px, written without resampling, object in the middle.
    with Image.open(tmp_path / "crops/train/rectangle/a_0.jpg") as f:
        crop = np.asarray(f.convert("L"), dtype=np.float32)
    assert crop[6:14, 6:14].min() > 200 and crop[:4].max() < 60 and crop[16:].max() < 60
    # The corner object's window [45, 65) x [-5, 15) is clipped to [45, 60) x [0, 15) and stretched to 20 x 20.
    with Image.open(tmp_path / "crops/train/star/a_1.jpg") as f:
        assert f.size == (20, 20)
    assert not list((tmp_path / "crops/train/ring").iterdir())
