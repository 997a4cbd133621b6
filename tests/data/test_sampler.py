"""Tests for detector.data.sampler: aspect-ratio grouping, epoch determinism, mid-epoch resume."""

import pytest

from detector.data.sampler import GroupedBatchSampler, aspect_ratio_groups
from tests.support.groups import GROUPS  # 23 images: 14 landscape (group 0), 9 portrait (group 1), interleaved


def test_aspect_ratio_groups():
    # (height, width): square and landscape -> 0, portrait -> 1.
    assert aspect_ratio_groups([(100, 100), (100, 200), (200, 100), (375, 500), (500, 333)]) == [0, 0, 1, 0, 1]


def test_batches_hold_one_group_and_cover_every_index_once():
    sampler = GroupedBatchSampler(GROUPS, batch_size=4, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        for batch in batches:
            assert len({GROUPS[i] for i in batch}) == 1, batch
            assert 1 <= len(batch) <= 4
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(GROUPS)))
        # 14 landscape -> 4 + 4 + 4 + 2, 9 portrait -> 4 + 4 + 1.
        assert sorted(len(b) for b in batches) == [1, 2, 4, 4, 4, 4, 4]
        assert len(sampler) == 7


def test_drop_last_drops_only_incomplete_batches():
    sampler = GroupedBatchSampler(GROUPS, batch_size=4, seed=0, drop_last=True)
    batches = list(sampler)
    assert [len(b) for b in batches] == [4] * 5
    assert len({i for b in batches for i in b}) == 20


def test_same_seed_and_epoch_give_same_batches_other_epochs_differ():
    a = GroupedBatchSampler(GROUPS, batch_size=3, seed=7)
    b = GroupedBatchSampler(GROUPS, batch_size=3, seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    epoch2 = list(a)
    a.set_epoch(3)
    assert list(a) != epoch2
    assert sorted(map(sorted, list(a))) != sorted(map(sorted, epoch2))  # different groupings, not just order
    c = GroupedBatchSampler(GROUPS, batch_size=3, seed=8)
    c.set_epoch(2)
    assert list(c) != epoch2


def test_no_shuffle_keeps_dataset_order_within_groups():
    sampler = GroupedBatchSampler(GROUPS, batch_size=5, shuffle=False)
    landscape = [i for i, g in enumerate(GROUPS) if g == 0]
    portrait = [i for i, g in enumerate(GROUPS) if g == 1]
    expected = [landscape[k : k + 5] for k in range(0, 14, 5)] + [portrait[k : k + 5] for k in range(0, 9, 5)]
    assert list(sampler) == expected


@pytest.mark.parametrize("start_batch", [0, 1, 4, 6, 7])
def test_set_epoch_with_start_batch_yields_the_tail(start_batch):
    sampler = GroupedBatchSampler(GROUPS, batch_size=4, seed=3)
    sampler.set_epoch(5)
    full = list(sampler)
    resumed = GroupedBatchSampler(GROUPS, batch_size=4, seed=3)
    resumed.set_epoch(5, start_batch=start_batch)
    assert list(resumed) == full[start_batch:]
    assert len(resumed) == len(full) - start_batch
    # The next epoch starts from its first batch again.
    resumed.set_epoch(6)
    sampler.set_epoch(6)
    assert list(resumed) == list(sampler)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        GroupedBatchSampler(GROUPS, batch_size=0)
