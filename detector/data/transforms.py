"""Detection transforms with the ``(image, target) -> (image, target)`` contract.

Inputs are the loader's numpy uint8 ``H x W x 3`` RGB image and its target dict (``boxes`` float [G, 4] xyxy in
continuous pixels, ``labels`` [G], ``difficult`` [G], ...). Outputs are a float32 [3, H, W] tensor in [0, 1] and
the target with boxes moved along. Geometry is albumentations' (format ``pascal_voc`` is exactly our continuous
xyxy); resizing to the network's input size happens inside the model, as in torchvision.

Which transforms a model trains with (the papers' flip, or a named preset) is ``detector.data.augment``'s choice;
this module is the machinery they run on.
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from torch import Tensor


class DetectionTransform:
    """Applies an albumentations pipeline to the image and its boxes, carrying labels and ``difficult`` along.
    Boxes that leave the image are dropped together with their labels."""

    def __init__(
        self,
        transforms: list[A.BasicTransform] | None = None,
        *,
        seed: int | None = None,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
    ):
        # min_visibility: fraction of a box's area that must stay inside the image through each step;
        # min_area: its least area in pixels. The defaults only drop boxes left with no area.
        self.pipeline = A.Compose(
            transforms or [],
            bbox_params=A.BboxParams(
                format="pascal_voc",
                label_fields=["indices"],
                min_visibility=min_visibility,
                min_area=min_area,
                clip=True,
            ),
            seed=seed,
        )

    def reseed(self, seed: int) -> None:
        """Makes the next call's random choices a function of ``seed`` alone (see ``AugmentedDataset``)."""
        self.pipeline.set_random_seed(seed)

    def __call__(self, image: np.ndarray, target: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        boxes = target["boxes"].numpy().reshape(-1, 4)
        proposals = target.get("proposals")
        num_gt = len(boxes)
        if proposals is not None:  # external proposals (Fast R-CNN, R-CNN) move with the image like boxes do
            boxes = np.concatenate([boxes, np.asarray(proposals, dtype=np.float32).reshape(-1, 4)])
        out = self.pipeline(image=image, bboxes=boxes, indices=np.arange(len(boxes)))
        indices = np.asarray(out["indices"], dtype=np.int64)
        moved = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
        is_gt = indices < num_gt
        kept = torch.as_tensor(indices[is_gt])
        target = dict(target)
        target["boxes"] = torch.as_tensor(moved[is_gt])
        if proposals is not None:
            target["proposals"] = torch.as_tensor(moved[~is_gt])
        for key in ("labels", "difficult"):
            if key in target:
                target[key] = target[key][kept]
        image_t = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1).float().div_(255.0)
        return image_t, target


def keep_numpy(image: np.ndarray, target: dict) -> tuple[np.ndarray, dict]:
    """The identity transform: makes a ``VOCDetection`` hand out the decoded numpy image unchanged."""
    return image, target


class AugmentedDataset(torch.utils.data.Dataset):
    """Wraps a loader built with ``transforms=keep_numpy`` and applies ``transform`` to its items, seeding the
    augmentation of sample ``i`` in epoch ``e`` from (seed, e, i), so augmentations do not depend on worker count or
    order, and a resumed run sees the same flips as an uninterrupted one. Call ``set_epoch`` before each epoch."""

    def __init__(self, dataset, transform: DetectionTransform, seed: int = 0):
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        image, target = self.dataset[i]
        self.transform.reseed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
        return self.transform(image, target)


def collate(batch: list[tuple[Tensor, dict]]) -> tuple[list[Tensor], list[dict]]:
    """Detection batches stay lists: images differ in size and are padded by the model's transform."""
    images, targets = zip(*batch)
    return list(images), list(targets)
