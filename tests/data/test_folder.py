"""Tests for detector.data.folder: class-folder layouts, labels, the seeded validation split, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from detector.data.folder import ImageFolderDataset
from tests.support.images import write_image

SIZE = (6, 4)  # every image's width and height


@pytest.fixture
def split_root(tmp_path):
    write_image(tmp_path / "train/dog/1.jpg", (200, 0, 0), size=SIZE)
    write_image(tmp_path / "train/dog/2.PNG", (200, 0, 0), size=SIZE)
    write_image(tmp_path / "train/cat/a.bmp", (0, 0, 200), size=SIZE)
    write_image(tmp_path / "train/cat/b.webp", (0, 0, 200), size=SIZE)
    write_image(tmp_path / "train/cat/c.png", 128, size=SIZE, mode="L")  # grayscale comes back as RGB
    (tmp_path / "train/cat/notes.txt").write_text("not an image")
    write_image(tmp_path / "val/cat/x.png", (0, 0, 200), size=SIZE)
    return tmp_path


def test_split_folders_give_sorted_classes_and_integer_labels(split_root):
    train = ImageFolderDataset(split_root, "train")
    assert train.classes == ("cat", "dog") and len(train) == 5
    assert train.targets == [0, 0, 0, 1, 1]
    assert train.class_counts() == {"cat": 3, "dog": 2}
    image, label = train[2]  # cat/c.png, grayscale
    assert label == 0 and image.dtype == np.uint8 and image.shape == (4, 6, 3) and (image == 128).all()
    image, label = train[3]
    assert label == 1 and tuple(image[0, 0]) == (200, 0, 0)
    # A split without some class keeps the training labels when given the classes.
    val = ImageFolderDataset(split_root, "val", classes=train.classes, transform=lambda im: im.shape)
    assert val.classes == ("cat", "dog") and val[0] == ((4, 6, 3), 0)
    assert ImageFolderDataset(split_root, "val").classes == ("cat",)


def test_val_ratio_splits_each_class_without_overlap_and_reproducibly(tmp_path):
    for name, n in (("a", 10), ("b", 5)):
        for i in range(n):
            write_image(tmp_path / name / f"{i}.png", (i, i, i), size=SIZE)
    train = ImageFolderDataset(
        tmp_path, "train", val_ratio=0.2, seed=1, subset="train"
    )  # no train/ folder: ROOT holds the classes
    val = ImageFolderDataset(tmp_path, "train", val_ratio=0.2, seed=1, subset="val")
    assert train.class_counts() == {"a": 8, "b": 4} and val.class_counts() == {"a": 2, "b": 1}
    assert not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    assert {p for p, _ in train.samples} | {p for p, _ in val.samples} == set(tmp_path.glob("*/*.png"))
    assert ImageFolderDataset(tmp_path, val_ratio=0.2, seed=1, subset="val").samples == val.samples
    other = [ImageFolderDataset(tmp_path, val_ratio=0.2, seed=s, subset="val").samples for s in range(2, 6)]
    assert any(o != val.samples for o in other)


def test_errors_name_the_folder(tmp_path, split_root):
    with pytest.raises(FileNotFoundError, match=r"split folder .*test does not exist.*--val-ratio"):
        ImageFolderDataset(split_root, "test")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        ImageFolderDataset(tmp_path / "nowhere", "train")
    (tmp_path / "empty/train/cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"empty/train has no images"):
        ImageFolderDataset(tmp_path / "empty", "train")
    (tmp_path / "bare/train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"bare/train has no class folders"):
        ImageFolderDataset(tmp_path / "bare", "train")
    with pytest.raises(ValueError, match=r"class folders \['dog'\] that are not among"):
        ImageFolderDataset(split_root, "train", classes=["cat"])
    with pytest.raises(ValueError, match="val_ratio"):
        ImageFolderDataset(split_root, "train", val_ratio=1.5)
