"""Class-per-folder image datasets for classification.

Layouts read::

    ROOT/<split>/<class>/*.jpg         one folder per split (train/, val/, ...), one sub-folder per class
    ROOT/<class>/*.jpg                 a single folder, split into "train" and "val" by ``val_ratio``

Image files are ``.jpg``, ``.jpeg``, ``.png``, ``.bmp`` or ``.webp`` (any case); other files are ignored.
Classification labels are 0..K-1 (there is no background class here): label ``i`` is ``classes[i]``, and the
classes are the class folders sorted by name unless given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.core.images import load_rgb

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _check_classes(folder: Path, class_dirs: dict[str, Path], classes: Sequence[str] | None) -> tuple[str, ...]:
    """``classes`` (default: the class folders, sorted); raises for a folder outside them or for no classes."""
    if classes is None:
        classes = sorted(class_dirs)
    else:
        unknown = sorted(set(class_dirs) - set(classes))
        if unknown:
            raise ValueError(
                f"{folder} has class folders {unknown} that are not among the classes {list(classes)}; "
                "remove them or train on them too"
            )
    if not classes:
        raise FileNotFoundError(
            f"{folder} has no class folders; expected {folder}/<class>/*.jpg (one folder per class)"
        )
    return tuple(classes)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images and integer labels from class folders.

    Args:
        root: the dataset folder.
        split: read ``ROOT/<split>/<class>/*``. When that folder is absent and ``val_ratio`` is given, ``ROOT``
            itself holds the class folders. ``None``: ``ROOT`` holds the class folders.
        transform: called with the image as uint8 numpy [H, W, 3] RGB; its result is returned as the image.
            Without it the numpy array is returned.
        classes: class names; label ``i`` is ``classes[i]``. A class may have no folder (no images); a folder
            that is not among ``classes`` is an error. Default: the folder names, sorted.
        val_ratio: split the folder's images by this fraction (0 < r < 1) into "train" and "val", per class and
            with a generator seeded by ``seed`` so the two subsets never overlap and every run draws the same.
        subset: ``"train"`` or ``"val"``, which side of the ``val_ratio`` split to keep.

    Items are ``(image, label)`` with ``label`` an int in 0..K-1. ``samples`` lists ``(path, label)``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        transform: Callable[[np.ndarray], Any] | None = None,
        classes: Sequence[str] | None = None,
        val_ratio: float | None = None,
        seed: int = 0,
        subset: str = "train",
    ):
        self.root = Path(root).expanduser()
        self.transform = transform
        folder = self._find_folder(split, val_ratio)
        if val_ratio is not None and not 0.0 < val_ratio < 1.0:
            raise ValueError(f"val_ratio must be between 0 and 1 (exclusive), got {val_ratio}")
        if subset not in ("train", "val"):
            raise ValueError(f"subset must be 'train' or 'val', got {subset!r}")
        self.folder = folder

        class_dirs = {p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
        self.classes: tuple[str, ...] = _check_classes(folder, class_dirs, classes)
        self.samples: list[tuple[Path, int]] = self._collect_samples(class_dirs, val_ratio, seed, subset)

    def _find_folder(self, split: str | None, val_ratio: float | None) -> Path:
        """The folder of the class folders: ``ROOT/<split>``, or ``ROOT`` itself (no split, or a split by ratio)."""
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset folder {self.root} does not exist; give a folder holding <split>/<class>/ image folders"
            )
        if split is None:
            return self.root
        folder = self.root / split
        if folder.is_dir():
            return folder
        if val_ratio is None:
            raise FileNotFoundError(
                f"split folder {folder} does not exist; expected {self.root}/<split>/<class>/*.jpg, "
                f"or class folders directly in {self.root} together with a validation ratio (--val-ratio)"
            )
        return self.root

    def _collect_samples(
        self, class_dirs: dict[str, Path], val_ratio: float | None, seed: int, subset: str
    ) -> list[tuple[Path, int]]:
        """``(path, label)`` of every image of ``self.classes``, only ``subset``'s side when split by ``val_ratio``."""
        rng = np.random.default_rng(seed)
        samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = _images_in(class_dirs[name]) if name in class_dirs else []
            if val_ratio is not None:
                order = rng.permutation(len(files))
                n_val = int(round(val_ratio * len(files)))
                keep = order[:n_val] if subset == "val" else order[n_val:]
                files = [files[i] for i in sorted(keep)]
            samples.extend((path, label) for path in files)
        if not samples:
            which = f" ({subset} subset at val_ratio={val_ratio})" if val_ratio is not None else ""
            raise FileNotFoundError(
                f"{self.folder} has no images{which}; expected files ending in {', '.join(IMAGE_EXTENSIONS)} "
                "inside its class folders"
            )
        return samples

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, label in self.samples:
            counts[self.classes[label]] += 1
        return counts

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.folder)!r}, {len(self)} images, {len(self.classes)} classes)"

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        # EXIF applied: no boxes to keep aligned, and these are the pixels /classify sees for the same photo.
        image = load_rgb(path, exif_transpose=True)
        if self.transform is not None:
            image = self.transform(image)
        return image, label
