"""A VOC-format dataset whose targets carry cached selective-search proposals (Fast R-CNN, R-CNN).

``target["proposals"]``: float32 [P, 4] ``xyxy`` in the pixels of the image as stored on disk, in selective
search's ranking order, read from the on-disk cache of ``detector.data.proposals`` (never computed here).

Kept outside ``detector.data.proposals`` because it imports torch and that package does not (its spawned search
workers stay light).
"""

from __future__ import annotations

from typing import Any

import torch

from detector.data.proposals import SelectiveSearchSettings, compute_proposals


class WithProposals(torch.utils.data.Dataset):
    """Wraps a ``VOCDetection`` (any transforms) and adds ``target["proposals"]`` from ``cache``; everything else
    (``classes``, ``target(i)``, ``image_path(i)``, ...) is the wrapped dataset's."""

    def __init__(self, dataset, cache):
        self.dataset = dataset
        self.cache = cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        image, target = self.dataset[i]
        target = dict(target)
        target["proposals"] = (
            torch.from_numpy(self.cache.get(str(target["image_id"]), self.dataset.image_path(i))).float().reshape(-1, 4)
        )
        return image, target

    def __getattr__(self, name: str):
        # Only called for attributes this wrapper lacks; "dataset" itself must not recurse (unpickling in workers).
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def with_cached_proposals(
    dataset, config, *, cache_dir=None, workers: int = 0, progress: bool = True, quiet: bool = False
) -> WithProposals:
    """``dataset`` with the proposals of the selective-search settings ``config`` records (a Fast R-CNN or
    R-CNN config, whose ``proposals`` is a dict of ``SelectiveSearchSettings``): computes the ones missing from
    the cache first (a complete cache is reused as it is). ``quiet``: no summary line either (the non-zero ranks
    of a distributed run)."""
    settings = SelectiveSearchSettings.from_dict(config.proposals)
    cache = compute_proposals(
        dataset, settings, cache_dir=cache_dir, workers=workers, progress=progress and not quiet, summary_line=not quiet
    )
    return WithProposals(dataset, cache)
