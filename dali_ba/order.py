"""The epoch plan: which samples a shard reads, in which order, batch by batch.

This sits between the file index (``dataset.py``) and the pipeline feed (``loader.py``). It is pure
arithmetic on indices, so the loader's promises can be checked without decoding anything:

* every epoch is a fresh permutation drawn from ``(seed, epoch)``; the same pair gives the same
  order on every rank and every run (that is what makes shards disjoint and resumption exact);
* shard ``k`` of ``n`` takes every ``n``-th sample of the permutation, so the shards are disjoint
  and, with ``drop_last=False``, together cover the data set exactly once per epoch;
* with ``drop_last=True`` every shard is cut to the same number of full batches, so ranks under
  DistributedDataParallel take the same number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpochPlan:
    """Batch composition for one shard, identical for every epoch except for the permutation.

    Args:
        num_samples: Samples in the whole data set.
        batch_size: Unique samples per batch (B).
        shuffle: Draw a new permutation each epoch; otherwise keep file order.
        seed: Seed of the permutations; must be the same on every shard.
        drop_last: Drop the last incomplete batch (and cut shards to equal length).
        shard_id: This shard, ``0 <= shard_id < num_shards``.
        num_shards: Number of shards.
    """

    num_samples: int
    batch_size: int
    shuffle: bool
    seed: int
    drop_last: bool
    shard_id: int = 0
    num_shards: int = 1

    @property
    def samples_per_shard(self) -> int:
        """Samples this shard delivers per epoch."""
        if self.drop_last:
            per_shard = self.num_samples // self.num_shards
            return per_shard - per_shard % self.batch_size
        # Shards differ by at most one sample; the first `remainder` shards get the extra one.
        base, remainder = divmod(self.num_samples, self.num_shards)
        return base + (1 if self.shard_id < remainder else 0)

    def __len__(self) -> int:
        """Batches per epoch for this shard."""
        return -(-self.samples_per_shard // self.batch_size)

    def indices(self, epoch: int) -> np.ndarray:
        """Sample indices this shard delivers in ``epoch``, in delivery order (``int64``)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        return order[self.shard_id :: self.num_shards][: self.samples_per_shard]

    def batches(self, epoch: int, start_batch: int = 0):
        """Yields the index array of each batch of ``epoch``, starting at ``start_batch``."""
        indices = self.indices(epoch)
        for start in range(start_batch * self.batch_size, len(indices), self.batch_size):
            yield indices[start : start + self.batch_size]
