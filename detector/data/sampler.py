"""Aspect-ratio grouped batches: images of one batch share an orientation, so padding to the batch's largest
image wastes little (the batching torchvision's and Detectron's references use).

Deterministic for (seed, epoch) and resumable mid-epoch (``start_batch``), so a resumed run sees exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def aspect_ratio_groups(sizes: Sequence[tuple[int, int]]) -> list[int]:
    """sizes: (height, width) per image -> group 0 for landscape or square (w >= h), 1 for portrait."""
    return [0 if w >= h else 1 for h, w in sizes]


class GroupedBatchSampler(torch.utils.data.Sampler[list[int]]):
    def __init__(
        self, groups: Sequence[int], batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.groups = list(groups)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Selects the epoch's order; ``start_batch`` skips batches already trained on (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = (
            torch.randperm(len(self.groups), generator=g).tolist() if self.shuffle else list(range(len(self.groups)))
        )
        batches: list[list[int]] = []
        for group in sorted(set(self.groups)):
            members = [i for i in order if self.groups[i] == group]
            for k in range(0, len(members), self.batch_size):
                chunk = members[k : k + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return len(self.batches()) - self.start_batch
