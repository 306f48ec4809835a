from dataclasses import replace

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


def test_starting_at_a_position_skips_exactly_the_delivered_batches():
    p = plan()
    assert p.position(0, 5) == 40
    assert [b.tolist() for b in p.batches(2, start=40)] == [b.tolist() for b in list(p.batches(2))[5:]]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("num_samples", [24, 25, 103])
def test_an_epoch_resumed_at_a_position_on_any_number_of_shards_covers_the_rest_once(num_samples, drop_last):
    for batch_size in (1, 3, 8):
        for shards in (1, 2, 3, 4):
            before = [plan(num_samples=num_samples, batch_size=batch_size, drop_last=drop_last, shard_id=k, num_shards=shards)
                      for k in range(shards)]
            for steps in range(len(before[0]) + 1):
                taken = [i for p in before for b in list(p.batches(1))[:steps] for i in b.tolist()]
                position = before[0].position(0, steps)
                assert {p.position(0, steps) for p in before} == {position}
                assert sorted(taken) == sorted(_prefix(before[0], position)), "what was taken is a prefix of the permutation"
                for new in (1, 2, 3, 5, 6):
                    after = [replace(before[0], shard_id=k, num_shards=new) for k in range(new)]
                    rest = [i for p in after for i in p.indices(1, position).tolist()]
                    assert len(set(taken + rest)) == len(taken + rest), "no sample twice"
                    assert len(rest) == after[0].remaining(position)
                    if drop_last:
                        assert len({p.num_batches(position) for p in after}) == 1
                        assert all(len(b) == batch_size for p in after for b in p.batches(1, position))
                    else:
                        assert sorted(taken + rest) == list(range(num_samples)), "every sample once"


def _prefix(p, position):
    """The first ``position`` samples of epoch 1's permutation."""
    return np.random.default_rng([p.seed, 1]).permutation(p.num_samples)[:position].tolist()


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_a_shorter_epoch_is_a_fresh_selection_each_time_with_each_sample_once(num_shards):
    epochs = []
    for epoch in range(4):
        parts = [plan(epoch_samples=40, shard_id=k, num_shards=num_shards).indices(epoch) for k in range(num_shards)]
        together = np.concatenate(parts).tolist()
        assert len(together) == len(set(together)) == 40
        assert sorted(together) == sorted(plan(epoch_samples=40).order(epoch).tolist()), "the first 40 of the permutation"
        epochs.append(set(together))
    assert len({frozenset(e) for e in epochs}) == 4, "another selection every epoch"
    assert len(set().union(*epochs)) > 40
    assert plan(epoch_samples=40, shuffle=False).indices(2).tolist() == list(range(40))
    assert plan(epoch_samples=500).length == 103


@pytest.mark.parametrize("drop_last", [False, True])
def test_a_shorter_epoch_resumed_on_any_number_of_shards_covers_its_rest_once(drop_last):
    for batch_size in (1, 3, 8):
        before = [plan(epoch_samples=50, batch_size=batch_size, drop_last=drop_last, shard_id=k, num_shards=2) for k in range(2)]
        for steps in range(len(before[0]) + 1):
            taken = [i for p in before for b in list(p.batches(1))[:steps] for i in b.tolist()]
            position = before[0].position(0, steps)
            assert sorted(taken) == sorted(before[0].order(1)[:position].tolist())
            for new in (1, 3, 4):
                after = [replace(before[0], shard_id=k, num_shards=new) for k in range(new)]
                rest = [i for p in after for i in p.indices(1, position).tolist()]
                assert len(set(taken + rest)) == len(taken + rest) and len(rest) == after[0].remaining(position)
                if not drop_last:
                    assert sorted(taken + rest) == sorted(before[0].order(1).tolist()), "the epoch's 50, each once"
