"""The epoch plan and cursor: which samples a shard reads, in which order, batch by batch, and how far it got.

This sits between the sample index (``sources/``) and the reader (``reader.py``). It is pure
arithmetic on indices, so the loader's promises can be checked without decoding anything:

* every epoch is a fresh permutation drawn from ``(seed, epoch)``; the same pair gives the same
  order on every rank and every run (that is what makes shards disjoint and resumption exact);
* shard ``k`` of ``n`` takes every ``n``-th sample of the permutation, so the shards are disjoint
  and, with ``drop_last=False``, together cover the data set exactly once per epoch;
* with ``drop_last=True`` every shard is cut to the same number of full batches, so ranks under
  DistributedDataParallel take the same number of steps.

For sources read in groups (Parquet row groups), ``window`` makes the permutation group-local:
the groups in a random order, ``window`` groups at a time, the samples shuffled within each window.
It is still a permutation drawn from ``(seed, epoch)``, the same for every number of shards, so all
of the above holds; a rank then reads each group of a window once instead of once per sample.

Ranks step through an epoch together, so after ``s`` steps on ``n`` shards the samples consumed are
exactly the first ``n * s * batch_size`` of the permutation (all of it, at most). That *position*
is all a resume needs, whatever the number of shards: an epoch resumed at ``position`` deals the
rest of the permutation, ``order[position:]``, over the shards it runs on by the same rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

#: 2: the position is a sample count into the epoch's permutation (any number of shards may resume
#: it); 1: a batch number, valid on the same number of shards only (still loaded, converted).
STATE_VERSION = 2
#: What a saved state must share with the loader that resumes it, else its position means other samples.
_SAME = ("num_files", "batch_size", "shuffle", "shuffle_window", "epoch_samples", "drop_last")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochPlan:
    """Batch composition for one shard, identical for every epoch except for the permutation.

    Every method takes ``start``, the position in the epoch's permutation where the run begins:
    ``0`` for a whole epoch, a saved :meth:`position` to finish an interrupted one (on this number
    of shards or another).

    Args:
        num_samples: Samples in the whole data set.
        batch_size: Unique samples per batch (B).
        shuffle: Draw a new permutation each epoch; otherwise keep file order.
        seed: Seed of the permutations; must be the same on every shard.
        drop_last: Drop the last incomplete batch (and cut shards to equal length).
        shard_id: This shard, ``0 <= shard_id < num_shards``.
        num_shards: Number of shards.
        group_starts: Where each storage group starts (``SampleIndex.group_starts``), for ``window``.
        window: Shuffle within windows of this many groups (see the module docstring); ``None``
            draws the permutation over all samples.
        epoch_samples: An epoch is the first ``epoch_samples`` of its permutation (a fresh
            selection each epoch when shuffled, each of them exactly once), as the repeated-
            augmentation sampler's shorter epochs are; ``None`` is every sample.
    """

    num_samples: int
    batch_size: int
    shuffle: bool
    seed: int
    drop_last: bool
    shard_id: int = 0
    num_shards: int = 1
    group_starts: np.ndarray | None = None
    window: int | None = None
    epoch_samples: int | None = None

    @property
    def length(self) -> int:
        """Samples in an epoch, all shards together: ``epoch_samples`` or the whole data set."""
        return self.num_samples if self.epoch_samples is None else min(self.epoch_samples, self.num_samples)

    def samples_per_shard(self, start: int = 0) -> int:
        """Samples this shard delivers from ``start`` to the end of the epoch."""
        rest = max(0, self.length - start)
        if self.drop_last:
            per_shard = rest // self.num_shards
            return per_shard - per_shard % self.batch_size
        # Shards differ by at most one sample; the first `remainder` shards get the extra one.
        base, remainder = divmod(rest, self.num_shards)
        return base + (1 if self.shard_id < remainder else 0)

    def num_batches(self, start: int = 0) -> int:
        """Batches this shard delivers from ``start`` to the end of the epoch."""
        return -(-self.samples_per_shard(start) // self.batch_size)

    def __len__(self) -> int:
        """Batches per (whole) epoch for this shard."""
        return self.num_batches(0)

    def remaining(self, start: int) -> int:
        """Samples all shards together still deliver from ``start`` on; ``0`` when the epoch is over."""
        if self.drop_last:
            return self.num_shards * self.samples_per_shard(start)  # equal on every shard
        return max(0, self.length - start)

    def position(self, start: int, steps: int) -> int:
        """Where the epoch stands after every shard took ``steps`` batches from ``start``.

        The samples consumed are a prefix of the permutation, so this is one number that means the
        same on every rank, and on any number of ranks that resumes from it.
        """
        return min(start + self.num_shards * steps * self.batch_size, start + self.remaining(start))

    def indices(self, epoch: int, start: int = 0) -> np.ndarray:
        """Sample indices this shard delivers in ``epoch`` from ``start`` on, in delivery order (``int64``)."""
        return self.order(epoch)[start + self.shard_id :: self.num_shards][: self.samples_per_shard(start)]

    def order(self, epoch: int) -> np.ndarray:
        """The samples of ``epoch`` in the order all shards share (``int64``): its permutation, or
        the first ``epoch_samples`` of it."""
        return self._permutation(epoch)[: self.length]

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_samples)
        rng = np.random.default_rng([self.seed, epoch])
        if self.window is None:
            return rng.permutation(self.num_samples)
        starts = self.group_starts
        groups = rng.permutation(len(starts) - 1)
        windows = []
        for first in range(0, len(groups), self.window):
            members = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups[first : first + self.window]])
            windows.append(rng.permutation(members))
        return np.concatenate(windows)

    def batches(self, epoch: int, start: int = 0):
        """Yields the index array of each batch of ``epoch`` from ``start`` on."""
        indices = self.indices(epoch, start)
        for first in range(0, len(indices), self.batch_size):
            yield indices[first : first + self.batch_size]


class EpochCursor:
    """Where a loader stands in its epochs: the epoch the next run starts, at which position of its
    permutation, and how far the epoch under way has come; saved and restored as a state dict.

    A run of an epoch is ``begin()``, then ``advance(batches)`` after each batch delivered, then
    ``finish()`` at its end. A saved state holds the position, which means the same on every rank
    and on any number of ranks (see the module docstring).

    Args:
        plan: The epoch plan of this shard.
    """

    def __init__(self, plan: EpochPlan):
        self.plan = plan
        self.next_epoch = 0
        self.resume_position = 0  # where in its permutation the next epoch starts (> 0 after a resume)
        self.epoch: int | None = None  # the epoch under way (or just ended)
        self.position = 0  # how far the epoch under way has come
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        """Makes the next run ``epoch``; the same epoch a loaded state stopped in keeps its resume point.

        Raises:
            ValueError: ``epoch`` is not an int >= 0.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, but got {epoch!r}")
        if epoch != self.next_epoch:
            self.resume_position = 0
        self.next_epoch = epoch

    def begin(self):
        """Starts the next run; returns the index arrays of its batches (a generator)."""
        epoch, start = self.next_epoch, self.resume_position
        self.epoch, self.position, self._start = epoch, start, start
        self.next_epoch, self.resume_position = epoch + 1, 0
        return self.plan.batches(epoch, start)

    def advance(self, batches: int) -> None:
        """``batches`` batches of the run under way have been delivered on every shard."""
        self.position = self.plan.position(self._start, batches)

    def finish(self) -> None:
        """The run under way is over on this shard, even where its last batches held only skipped
        samples and so were never delivered: a state saved now must not replay them."""
        self.position = self.plan.length

    def interrupt(self) -> None:
        """Forgets the run under way (a loaded state takes its place)."""
        self.epoch = None

    def state(self) -> dict:
        """``epoch``, ``position`` and ``batch`` of a state dict: where the next run starts."""
        if self.epoch is not None and self.epoch + 1 == self.next_epoch:  # an epoch is under way, or just ended
            epoch, position = self.epoch, self.position
        else:
            epoch, position = self.next_epoch, self.resume_position
        if self.plan.remaining(position) == 0:
            epoch, position = epoch + 1, 0  # the epoch is over, even where its last batches were all skipped
        return {"version": STATE_VERSION, "epoch": epoch, "position": position,
                "batch": len(self.plan) - self.plan.num_batches(position)}

    def restore(self, state: dict, mine: dict) -> None:
        """Resumes ``state`` (a loader's ``state_dict()``); ``mine`` is what the resuming loader
        has for the keys of :data:`_SAME`. Takes the saved seed.

        Raises:
            ValueError: Not a loader state, or saved with other data or options.
        """
        version = state.get("version") if isinstance(state, dict) else None
        if version not in (1, STATE_VERSION):
            raise ValueError(f"cannot resume: loader state version {version!r} is not supported (expected 1 or {STATE_VERSION}); "
                             f"pass the dict that loader.state_dict() returned")
        for key in _SAME:
            if state.get(key) != mine[key]:  # states before shuffle_window and epoch_samples existed have none
                raise ValueError(
                    f"cannot resume: the saved loader state has {key}={state.get(key)!r} but this loader has "
                    f"{key}={mine[key]!r}; resume with the same data and options"
                )
        if version == 1:  # a batch number on the saver's shards; those runs always started epochs at 0
            position = min(state["batch"] * state["num_shards"] * state["batch_size"], state["num_files"])
        else:
            position = state["position"]
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= self.plan.length:
            raise ValueError(f"cannot resume: saved position {position!r} is outside the epoch's {self.plan.length} samples")
        self.plan = replace(self.plan, seed=state["seed"])
        # Kept as saved even where no full batch of that epoch is left on this many shards: the
        # training loop's set_epoch(epoch) then runs an empty rest instead of a second whole epoch.
        if state["num_shards"] != self.plan.num_shards:
            log.info("resuming epoch %d at sample %d of %d on %d shard(s); the state was saved on %d",
                     state["epoch"], position, self.plan.num_samples, self.plan.num_shards, state["num_shards"])
        self.epoch = None
        self.next_epoch, self.resume_position = state["epoch"], position
