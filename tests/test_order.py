import numpy as np
import pytest

from dali_ba.order import EpochPlan


def plan(**kw):
    args = dict(num_samples=103, batch_size=8, shuffle=True, seed=7, drop_last=False)
    args.update(kw)
    return EpochPlan(**args)


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_every_sample_once(num_shards):
    for epoch in range(3):
        parts = [plan(shard_id=k, num_shards=num_shards).indices(epoch) for k in range(num_shards)]
        together = np.concatenate(parts)
        assert sorted(together.tolist()) == list(range(103))


def test_batches_concatenate_to_the_epoch_and_only_the_last_is_short():
    p = plan()
    batches = list(p.batches(0))
    assert len(batches) == len(p) == 13
    assert [len(b) for b in batches] == [8] * 12 + [7]
    assert np.array_equal(np.concatenate(batches), p.indices(0))


def test_each_epoch_is_a_new_permutation_and_the_seed_repeats_it():
    assert not np.array_equal(plan().indices(0), plan().indices(1))
    assert np.array_equal(plan().indices(4), plan().indices(4))
    assert not np.array_equal(plan(seed=7).indices(0), plan(seed=8).indices(0))


def test_no_shuffle_keeps_file_order():
    assert plan(shuffle=False).indices(3).tolist() == list(range(103))


@pytest.mark.parametrize("num_shards", [2, 3, 4])
def test_drop_last_gives_every_shard_the_same_full_batches(num_shards):
    plans = [plan(drop_last=True, shard_id=k, num_shards=num_shards) for k in range(num_shards)]
    assert len({len(p) for p in plans}) == 1
    for p in plans:
        assert all(len(b) == 8 for b in p.batches(0))
    together = np.concatenate([p.indices(0) for p in plans])
    assert len(set(together.tolist())) == len(together)


def test_start_batch_skips_exactly_the_delivered_batches():
    p = plan()
    assert [b.tolist() for b in p.batches(2, start_batch=5)] == [b.tolist() for b in list(p.batches(2))[5:]]
