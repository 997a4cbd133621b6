"""Tests for detector.data.voc, on tiny VOC-format folders written by hand in tmp_path (tests/support/voc.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.data.synth import generate
from detector.data.voc import (
    VOC_CLASSES,
    AnnotationError,
    AnnotationWarning,
    VOCAnnotation,
    VOCDetection,
    VOCObject,
    parse_voc_xml,
    read_labels_file,
)
from tests.support.voc import annotation_xml, make_voc, obj_xml, rgb

# --------------------------------------------------------------------------------------------
# Helpers that write VOC-format files (the others are in tests/support/voc.py)


def write_xml(tmp_path: Path, text: str, name: str = "000001.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# parse_voc_xml


def test_voc_classes_are_the_devkit_order():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person" and VOC_CLASSES[-1] == "tvmonitor"


def test_one_based_inclusive_box_becomes_continuous(tmp_path):
    path = write_xml(tmp_path, annotation_xml("000001.jpg", (50, 40), [obj_xml("dog", (1, 1, 10, 20))]))
    ann = parse_voc_xml(path)
    assert ann == VOCAnnotation(
        image_id="000001",
        filename="000001.jpg",
        width=50,
        height=40,
        objects=(VOCObject("dog", (0.0, 0.0, 10.0, 20.0), False, False, False, "Left"),),
    )


def test_decimal_coordinates(tmp_path):
    path = write_xml(
        tmp_path, annotation_xml("a.jpg", (500, 400), [obj_xml("dog", ("273.5", "10.25", "300.0", " 45 "))])
    )
    assert parse_voc_xml(path).objects[0].box == (272.5, 9.25, 300.0, 45.0)


def test_missing_or_empty_flags_default_to_zero_and_unspecified(tmp_path):
    missing = (
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    )
    empty = (
        "<object><name>cat</name><difficult></difficult><truncated/><occluded> </occluded><pose></pose>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    )
    set_ = (
        "<object><name>cow</name><difficult>1</difficult><truncated>1</truncated><occluded>1</occluded>"
        "<pose>Frontal</pose><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    )
    objects = parse_voc_xml(write_xml(tmp_path, annotation_xml("a.jpg", (10, 10), [missing, empty, set_]))).objects
    for obj in objects[:2]:
        assert (obj.difficult, obj.truncated, obj.occluded, obj.pose) == (False, False, False, "Unspecified")
    assert (objects[2].difficult, objects[2].truncated, objects[2].occluded, objects[2].pose) == (
        True,
        True,
        True,
        "Frontal",
    )


def test_element_order_does_not_matter(tmp_path):
    text = """<annotation>
      <object>
        <bndbox><ymax>30</ymax><xmax>20</xmax><ymin>11</ymin><xmin>6</xmin></bndbox>
        <difficult>1</difficult>
        <name>bird</name>
      </object>
      <size><depth>3</depth><height>40</height><width>50</width></size>
      <filename>x.jpg</filename>
    </annotation>"""
    ann = parse_voc_xml(write_xml(tmp_path, text))
    assert (ann.width, ann.height, ann.filename) == (50, 40, "x.jpg")
    assert ann.objects[0].name == "bird" and ann.objects[0].difficult
    assert ann.objects[0].box == (5.0, 10.0, 20.0, 30.0)


def test_part_boxes_are_ignored(tmp_path):
    # The parts come before the person's own <bndbox>, so a recursive search would find them first.
    person = """<object><name>person</name>
      <part><name>head</name><bndbox><xmin>3</xmin><ymin>3</ymin><xmax>6</xmax><ymax>6</ymax></bndbox></part>
      <part><name>hand</name><bndbox><xmin>7</xmin><ymin>7</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></part>
      <bndbox><xmin>2</xmin><ymin>2</ymin><xmax>40</xmax><ymax>30</ymax></bndbox>
    </object>"""
    ann = parse_voc_xml(write_xml(tmp_path, annotation_xml("a.jpg", (50, 40), [person])), classes=VOC_CLASSES)
    assert len(ann.objects) == 1
    assert ann.objects[0].name == "person" and ann.objects[0].box == (1.0, 1.0, 40.0, 30.0)


def test_person_with_parts_only_is_missing_its_bndbox(tmp_path):
    person = (
        "<object><name>person</name><part><name>head</name>"
        "<bndbox><xmin>3</xmin><ymin>3</ymin><xmax>6</xmax><ymax>6</ymax></bndbox></part></object>"
    )
    path = write_xml(tmp_path, annotation_xml("a.jpg", (50, 40), [person]))
    with pytest.raises(AnnotationError, match="object\\[1\\]/bndbox") as info:
        parse_voc_xml(path)
    assert info.value.field == "object[1]/bndbox" and info.value.path == path


def test_names_are_stripped_and_matched_case_insensitively(tmp_path):
    path = write_xml(
        tmp_path,
        annotation_xml("a.jpg", (50, 40), [obj_xml("  Dog ", (1, 1, 5, 5)), obj_xml("\nTVMonitor\t", (1, 1, 5, 5))]),
    )
    assert [o.name for o in parse_voc_xml(path, classes=VOC_CLASSES).objects] == ["dog", "tvmonitor"]
    # Without a class list names are only stripped.
    assert [o.name for o in parse_voc_xml(path).objects] == ["Dog", "TVMonitor"]
    # The class list's spelling wins.
    assert [o.name for o in parse_voc_xml(path, classes=["DOG", "TvMonitor"]).objects] == ["DOG", "TvMonitor"]


def test_missing_size_gives_zero(tmp_path):
    ann = parse_voc_xml(write_xml(tmp_path, annotation_xml("a.jpg", None, [])))
    assert (ann.width, ann.height, ann.objects) == (0, 0, ())


MALFORMED = {
    "syntax": ("<annotation><object><name>dog</name></annotation>", "XML"),
    "no bndbox": ("<annotation><object><name>dog</name></object></annotation>", "object[1]/bndbox"),
    "no xmin": (
        "<annotation><object><name>dog</name><bndbox><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>",
        "object[1]/bndbox/xmin",
    ),
    "empty ymax": (
        "<annotation><object><name>dog</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax> </ymax></bndbox></object></annotation>",
        "object[1]/bndbox/ymax",
    ),
    "non-numeric xmin": (
        annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (1, 1, 5, 5)), obj_xml("dog", ("abc", 1, 5, 5))]),
        "object[2]/bndbox/xmin",
    ),
    "nan xmax": (annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (1, 1, "nan", 5))]), "object[1]/bndbox/xmax"),
    "xmin > xmax": (annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (8, 1, 5, 5))]), "object[1]/bndbox/xmin"),
    "ymin > ymax": (annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (1, 6, 5, 5))]), "object[1]/bndbox/ymin"),
    "no name": (
        "<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>",
        "object[1]/name",
    ),
    "empty name": (annotation_xml("a.jpg", (10, 10), [obj_xml("  ", (1, 1, 5, 5))]), "object[1]/name"),
    "bad flag": (
        annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (1, 1, 5, 5), difficult="maybe")]),
        "object[1]/difficult",
    ),
    "bad size": (annotation_xml("a.jpg", ("wide", 10), []), "size/width"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_names_file_and_field(tmp_path, case):
    text, field = MALFORMED[case]
    path = write_xml(tmp_path, text, name="broken_17.xml")
    with pytest.raises(AnnotationError) as info:
        parse_voc_xml(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert info.value.field == field


def test_unknown_class_names_file_name_and_known_classes(tmp_path):
    path = write_xml(
        tmp_path, annotation_xml("a.jpg", (10, 10), [obj_xml("dog", (1, 1, 5, 5)), obj_xml("zebra", (1, 1, 5, 5))])
    )
    with pytest.raises(AnnotationError) as info:
        parse_voc_xml(path, classes=["dog", "cat"])
    message = str(info.value)
    assert str(path) in message and "'zebra'" in message and "dog, cat" in message


# --------------------------------------------------------------------------------------------
# labels.txt


def test_read_labels_file_ignores_blanks_and_whitespace(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n  cat \n\ndog\t\n   \nsea lion\n")
    assert read_labels_file(path) == ("cat", "dog", "sea lion")


def test_read_labels_file_rejects_duplicates(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n Cat\n")
    with pytest.raises(AnnotationError) as info:
        read_labels_file(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value) and "line 1" in str(info.value)


# --------------------------------------------------------------------------------------------
# VOCDetection: layout, splits, classes


def small_dataset(root: Path, **kwargs) -> VOCDetection:
    make_voc(
        root,
        {
            "000001": (
                annotation_xml(
                    "000001.jpg",
                    (40, 30),
                    [obj_xml("dog", (1, 1, 10, 20)), obj_xml("cat", (5, 6, 40, 30), difficult="1")],
                ),
                rgb(40, 30),
            ),
            "000002": (annotation_xml("000002.jpg", (20, 24), []), rgb(20, 24)),
        },
        {"trainval": "000001\n000002\n"},
    )
    return VOCDetection(root, **kwargs)


def test_default_classes_and_target(tmp_path):
    ds = small_dataset(tmp_path)
    assert ds.classes == VOC_CLASSES
    assert len(ds) == 2 and ds.image_ids == ["000001", "000002"]
    target = ds.target(0)
    assert target["boxes"].dtype == torch.float32
    assert target["boxes"].tolist() == [[0.0, 0.0, 10.0, 20.0], [4.0, 5.0, 40.0, 30.0]]
    assert target["labels"].dtype == torch.int64
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog") + 1, VOC_CLASSES.index("cat") + 1]
    assert target["difficult"].dtype == torch.bool and target["difficult"].tolist() == [False, True]
    assert target["image_id"] == "000001"
    assert target["orig_size"].dtype == torch.int64 and target["orig_size"].tolist() == [30, 40]
    assert ds.image_size(0) == (30, 40) and ds.image_size(1) == (24, 20)
    assert ds.image_path(1) == tmp_path / "JPEGImages" / "000002.jpg"
    assert ds.warnings == []


def test_image_without_objects_has_empty_target(tmp_path):
    target = small_dataset(tmp_path).target(1)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["difficult"].shape == (0,)


def test_keep_difficult_false_drops_difficult_objects(tmp_path):
    ds = small_dataset(tmp_path, keep_difficult=False)
    target = ds.target(0)
    assert target["boxes"].tolist() == [[0.0, 0.0, 10.0, 20.0]]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog") + 1]
    assert target["difficult"].tolist() == [False]
    # The annotation itself still has both objects.
    assert len(ds.annotation(0).objects) == 2


def test_annotation_is_parsed_once(tmp_path):
    ds = small_dataset(tmp_path)
    first = ds.annotation(0)
    (tmp_path / "Annotations" / "000001.xml").write_text("not xml at all")
    assert ds.annotation(0) is first
    assert ds.target(0)["boxes"].shape == (2, 4)


def test_targets_are_fresh_tensors(tmp_path):
    ds = small_dataset(tmp_path)
    ds.target(0)["boxes"].zero_()
    assert ds.target(0)["boxes"][0].tolist() == [0.0, 0.0, 10.0, 20.0] and ds.target(0)["boxes"].sum() > 0


def test_split_lines_with_whitespace_extra_columns_and_blanks(tmp_path):
    make_voc(
        tmp_path,
        {i: (annotation_xml(f"{i}.jpg", (8, 8), []), rgb(8, 8)) for i in ("a", "b", "c")},
        {"train": "a   \n\n  b extra column\r\n\t\nc\n", "val": "c\nb\n"},
    )
    assert VOCDetection(tmp_path, "train").image_ids == ["a", "b", "c"]
    # A tuple of splits is their union, in order, without repeats.
    assert VOCDetection(tmp_path, ("val", "train")).image_ids == ["c", "b", "a"]


def test_split_train_reads_train_txt_not_class_files(tmp_path):
    images = {
        i: (annotation_xml(f"{i}.jpg", (8, 8), [obj_xml("train", (1, 1, 4, 4))]), rgb(8, 8))
        for i in ("a", "b", "c", "d")
    }
    make_voc(
        tmp_path,
        images,
        {
            "train": "a\nb\n",
            "val": "c\n",
            "trainval": "a\nb\nc\n",
            # Per-class files of the class called "train", next to the split files.
            "train_train": "a  1\nb -1\nd  0\n",
            "train_val": "c  1\n",
            "train_trainval": "a  1\nb -1\nc  1\nd  0\n",
            "dog_train": "a -1\nb -1\nd -1\n",
        },
        labels="dog\ntrain\n",
    )
    ds = VOCDetection(tmp_path, "train")
    assert ds.classes == ("dog", "train")
    assert ds.image_ids == ["a", "b"]
    assert ds.target(0)["labels"].tolist() == [2]
    assert VOCDetection(tmp_path, "val").image_ids == ["c"]
    # Asking for a per-class file by name is refused rather than read as an image list.
    with pytest.raises(ValueError, match="per-class file"):
        VOCDetection(tmp_path, "train_train")
    with pytest.raises(ValueError, match="per-class file"):
        VOCDetection(tmp_path, "dog_train")


def test_missing_split_lists_existing_splits_only(tmp_path):
    make_voc(
        tmp_path,
        {"a": (annotation_xml("a.jpg", (8, 8), []), rgb(8, 8))},
        {"train": "a\n", "val": "a\n", "dog_train": "a 1\n", "train_val": "a -1\n", "my_split": "a\n"},
    )
    with pytest.raises(FileNotFoundError) as info:
        VOCDetection(tmp_path, "test")
    message = str(info.value)
    assert str(tmp_path / "ImageSets" / "Main" / "test.txt") in message
    assert message.endswith("my_split, train, val")


def test_labels_txt_custom_classes(tmp_path):
    make_voc(
        tmp_path,
        {
            "a": (
                annotation_xml("a.jpg", (30, 30), [obj_xml("Sea Lion", (1, 1, 4, 4)), obj_xml(" kayak", (2, 2, 9, 9))]),
                rgb(30, 30),
            )
        },
        {"trainval": "a\n"},
        labels="kayak\nsea lion\n",
    )
    ds = VOCDetection(tmp_path)
    assert ds.classes == ("kayak", "sea lion")
    assert ds.target(0)["labels"].tolist() == [2, 1]
    assert [o.name for o in ds.annotation(0).objects] == ["sea lion", "kayak"]
    # The classes argument overrides labels.txt.
    assert VOCDetection(tmp_path, classes=("sea lion", "kayak")).target(0)["labels"].tolist() == [1, 2]


def test_unknown_class_error_points_at_labels_txt(tmp_path):
    make_voc(
        tmp_path,
        {
            "a": (
                annotation_xml("a.jpg", (30, 30), [obj_xml("dog", (1, 1, 4, 4)), obj_xml("zebra", (1, 1, 4, 4))]),
                rgb(30, 30),
            )
        },
        {"trainval": "a\n"},
        labels="dog\ncat\n",
    )
    ds = VOCDetection(tmp_path)
    with pytest.raises(AnnotationError) as info:
        ds.target(0)
    message = str(info.value)
    assert str(tmp_path / "Annotations" / "a.xml") in message
    assert "'zebra'" in message and "dog, cat" in message and "labels.txt" in message


def test_vocdevkit_union_over_years(tmp_path):
    devkit = tmp_path / "VOCdevkit"
    make_voc(
        devkit / "VOC2007",
        {
            i: (annotation_xml(f"{i}.jpg", (10, 10), [obj_xml("dog", (1, 1, 5, 5))]), rgb(10, 10))
            for i in ("000005", "000007", "000009")
        },
        {"trainval": "000005\n000007\n", "test": "000009\n"},
    )
    make_voc(
        devkit / "VOC2012",
        {
            i: (annotation_xml(f"{i}.jpg", (12, 10), [obj_xml("cat", (1, 1, 5, 5))]), rgb(12, 10))
            for i in ("2008_000002", "2008_000003")
        },
        {"trainval": "2008_000002\n2008_000003\n"},
    )
    both = VOCDetection(devkit, "trainval")
    assert both.image_ids == ["000005", "000007", "2008_000002", "2008_000003"]
    assert both.image_path(2) == devkit / "VOC2012" / "JPEGImages" / "2008_000002.jpg"
    assert both.target(3)["labels"].tolist() == [VOC_CLASSES.index("cat") + 1]
    assert both.image_size(3) == (10, 12)
    # The folder above VOCdevkit works too, and years select subsets (strings or ints).
    assert VOCDetection(tmp_path, "trainval", years=("2012",)).image_ids == ["2008_000002", "2008_000003"]
    assert VOCDetection(devkit, "test", years=[2007]).image_ids == ["000009"]
    with pytest.raises(FileNotFoundError, match="test.txt"):
        VOCDetection(devkit, "test")  # VOC2012 has no test split
    with pytest.raises(FileNotFoundError, match="VOC2010"):
        VOCDetection(devkit, years=("2010",))


def test_missing_annotation_is_reported_at_construction(tmp_path):
    make_voc(tmp_path, {"a": (annotation_xml("a.jpg", (8, 8), []), rgb(8, 8))}, {"trainval": "a\nghost\n"})
    with pytest.raises(FileNotFoundError, match="ghost.xml"):
        VOCDetection(tmp_path)


# --------------------------------------------------------------------------------------------
# VOCDetection: repairs


def test_out_of_image_and_degenerate_boxes_are_clipped_or_dropped(tmp_path):
    objects = [
        obj_xml("dog", (1, 1, 10, 10)),  # fine
        obj_xml("cat", (0, -3, 25, 12)),  # 0-based xmin, beyond the right edge: clipped
        obj_xml("cow", (30, 2, 40, 8)),  # entirely right of the image: dropped
        obj_xml("bird", (0, 5, 0, 9)),  # [-1, 4, 0, 9] has no width after clipping: dropped
    ]
    make_voc(tmp_path, {"img7": (annotation_xml("img7.jpg", (20, 16), objects), rgb(20, 16))}, {"trainval": "img7\n"})
    ds = VOCDetection(tmp_path)
    xml = str(tmp_path / "Annotations" / "img7.xml")
    with pytest.warns(AnnotationWarning, match="img7.xml"):
        target = ds.target(0)
    assert target["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 12.0]]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog") + 1, VOC_CLASSES.index("cat") + 1]
    assert len(ds.warnings) == 3 and all(w.startswith(xml) for w in ds.warnings)
    assert "clipped to [0, 0, 20, 12]" in ds.warnings[0]
    assert "'cow'" in ds.warnings[1] and "dropped" in ds.warnings[1]
    assert "'bird'" in ds.warnings[2] and "dropped" in ds.warnings[2]
    # The annotation keeps the boxes as written.
    assert ds.annotation(0).objects[1].box == (-1.0, -4.0, 25.0, 12.0)
    # Once per file: loading the image again neither warns again nor repeats the messages.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, again = ds[0]
        ds.target(0)
    assert torch.equal(again["boxes"], target["boxes"]) and len(ds.warnings) == 3


def test_size_mismatch_trusts_the_image_file(tmp_path):
    # <size> says 100x80 but the file is 20x16: the box is clipped to the real image.
    xml = annotation_xml("m.jpg", (100, 80), [obj_xml("dog", (5, 5, 60, 10))])
    make_voc(tmp_path, {"m": (xml, rgb(20, 16))}, {"trainval": "m\n"})
    ds = VOCDetection(tmp_path)
    assert ds.image_size(0) == (80, 100)  # cheap: from <size>
    with pytest.warns(AnnotationWarning, match="m.xml"):
        image, target = ds[0]
    assert image.shape == (3, 16, 20)
    assert target["orig_size"].tolist() == [16, 20]
    assert target["boxes"].tolist() == [[4.0, 4.0, 20.0, 10.0]]
    assert any(
        "<size> says 100x80" in w and "20x16" in w and str(tmp_path / "Annotations" / "m.xml") in w for w in ds.warnings
    )


def test_missing_size_is_read_from_the_image(tmp_path):
    make_voc(
        tmp_path,
        {"s": (annotation_xml("s.jpg", None, [obj_xml("dog", (1, 1, 50, 5))]), rgb(30, 12))},
        {"trainval": "s\n"},
    )
    ds = VOCDetection(tmp_path)
    assert ds.image_size(0) == (12, 30)
    assert ds.annotation(0).width == 30
    with pytest.warns(AnnotationWarning):
        target = ds.target(0)
    assert target["orig_size"].tolist() == [12, 30] and target["boxes"].tolist() == [[0.0, 0.0, 30.0, 5.0]]


def test_missing_image_names_the_path(tmp_path):
    make_voc(tmp_path, {"gone": (annotation_xml("gone.jpg", (8, 8), []), None)}, {"trainval": "gone\n"})
    ds = VOCDetection(tmp_path)
    assert ds.target(0)["orig_size"].tolist() == [8, 8]  # targets need no image
    with pytest.raises(FileNotFoundError) as info:
        ds[0]
    assert str(tmp_path / "JPEGImages" / "gone.jpg") in str(info.value)


# --------------------------------------------------------------------------------------------
# VOCDetection: images and transforms


def test_grayscale_and_rgba_images_become_rgb_float_tensors(tmp_path):
    gray = Image.new("L", (6, 4), 128)
    rgba = Image.new("RGBA", (5, 3), (10, 20, 30, 0))
    make_voc(
        tmp_path,
        {"g": (annotation_xml("g.png", (6, 4), []), gray), "r": (annotation_xml("r.png", (5, 3), []), rgba)},
        {"trainval": "g\nr\n"},
        image_ext=".png",
    )
    ds = VOCDetection(tmp_path)
    assert ds.image_path(0).name == "g.png"  # found through <filename>
    image, _ = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 4, 6)
    assert torch.allclose(image, torch.full((3, 4, 6), 128 / 255))
    image, _ = ds[1]
    assert image.shape == (3, 3, 5)
    # Fully transparent: white, as the service and predict show it (detector.core.images), not the hidden colour.
    assert torch.allclose(image[:, 0, 0], torch.ones(3))
    assert image.min() >= 0 and image.max() <= 1


def test_cmyk_and_palette_images(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))  # white
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([200, 100, 50] + [0, 0, 0] * 255)
    make_voc(
        tmp_path,
        {"c": (annotation_xml("c.jpg", (4, 4), []), cmyk), "p": (annotation_xml("p.png", (4, 4), []), None)},
        {"trainval": "c\np\n"},
    )
    palette.save(tmp_path / "JPEGImages" / "p.png")
    ds = VOCDetection(tmp_path)
    image, _ = ds[0]
    assert image.shape == (3, 4, 4) and image.min() > 0.9
    image, _ = ds[1]
    assert torch.allclose(image[:, 2, 2], torch.tensor([200, 100, 50]) / 255)


def test_transforms_get_numpy_image_and_target(tmp_path):
    calls = []

    def transforms(image, target):
        calls.append((image, target))
        return "image-out", {"marker": 1}

    ds = small_dataset(tmp_path, transforms=transforms)
    assert ds[0] == ("image-out", {"marker": 1})
    image, target = calls[0]
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert image.flags.writeable
    # A flat JPEG decodes within a couple of levels of the colour written.
    assert np.abs(image.astype(int) - [120, 60, 30]).max() <= 3
    assert isinstance(target["boxes"], torch.Tensor) and target["boxes"].tolist() == [
        [0.0, 0.0, 10.0, 20.0],
        [4.0, 5.0, 40.0, 30.0],
    ]
    assert target["image_id"] == "000001" and target["orig_size"].tolist() == [30, 40]


def test_index_bounds(tmp_path):
    ds = small_dataset(tmp_path)
    assert ds.target(-1)["image_id"] == "000002"
    with pytest.raises(IndexError):
        ds.target(2)


def test_first_limits_the_dataset_to_its_leading_images(tmp_path):
    generate(tmp_path, train=5, val=1, test=1, seed=0, image_size=(64, 80), max_objects=1, progress=False)
    full = VOCDetection(tmp_path, "train")
    head = full.first(2)
    assert len(head) == 2 and head.image_ids == full.image_ids[:2] and len(full) == 5
    assert torch.equal(head.target(1)["boxes"], full.target(1)["boxes"])
    with pytest.raises(IndexError):
        head.target(2)
