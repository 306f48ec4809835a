"""Read stage: the encoded bytes of the batches to come, read ahead on a pool of threads.

Sits between the epoch plan (``order.py``: which samples, batch by batch) and the DALI feed
(``feed.py``). DALI calls the feed's input callback in the training process's Python thread, so a
read done there is a wait in the training step. Here every sample of the next ``depth`` batches
is read by reader threads (file reads release the GIL), so storage latency overlaps with decoding
and training, and the callback only collects bytes that are, most of the time, already there.
The time it still waits is counted in :attr:`ReadAhead.wait_s`.

The source says how (``sources.base.Source.read_plan``): a sample per thread, or, where it reads
better many at a time (URLs: every request of a batch in flight together on one event loop), a
batch per thread. Either way a batch comes out as one ``Fetched``: its bytes, and the requests and
bytes storage spent on them.

Reading ahead is bounded: at most ``depth`` batches are queued or being read. Each read opens,
reads and closes its file, so no file handle outlives a read; :meth:`ReadAhead.cancel` drops what
is queued (an epoch left early), and :meth:`ReadAhead.close` also ends the threads.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .sources.base import Fetched, ReadPlan, Source


@dataclass(frozen=True)
class Batch:
    """One batch of the epoch: its position (0-based) and the sample indices it holds."""

    number: int
    indices: np.ndarray


class ReadAhead:
    """Reads the samples of upcoming batches on reader threads, ``plan.depth`` batches ahead.

    Args:
        source: Reads the samples (``read(i)``, or ``read_batch(indices)`` where the plan is
            ``batched``); it raises an ``OSError`` naming the file when it cannot read one.
        plan: Threads, depth, and whether a batch is one read.
    """

    def __init__(self, source: Source, plan: ReadPlan):
        self._source = source
        self._plan = plan
        self._pool: ThreadPoolExecutor | None = None
        self._queue: deque[tuple[Batch, list[Future]]] = deque()
        self._batches: Iterator[Batch] = iter(())
        self.wait_s = 0.0

    def start(self, batches: Iterable[Batch]) -> None:
        """Starts reading ``batches`` (after dropping whatever was queued before)."""
        self.cancel()
        self._batches = iter(batches)
        self._fill()

    def take(self) -> tuple[Batch, Fetched]:
        """The next batch and its samples' bytes, waiting for reads still under way.

        Raises:
            StopIteration: No batch is left.
            OSError: A file of this batch could not be read (the reads of this batch are dropped).
        """
        if not self._queue:
            raise StopIteration
        batch, futures = self._queue.popleft()
        started = time.perf_counter()
        try:
            reads = [future.result() for future in futures]
            encoded = reads[0] if self._plan.batched else Fetched.of(reads)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            self.wait_s += time.perf_counter() - started
        self._fill()
        return batch, encoded

    def cancel(self, *, wait_running: bool = True) -> Iterator[Batch]:
        """Stops reading ahead. Returns the batches not taken yet, queued ones first, in order.

        Reads already under way cannot be cancelled; they are waited for (unless
        ``wait_running`` is False), so that none of them (nor the file it holds open) outlives
        the epoch it was for.
        """
        queued, running = [], []
        for batch, futures in self._queue:
            running += [future for future in futures if not future.cancel()]
            queued.append(batch)
        self._queue.clear()
        if wait_running:
            wait(running)
        rest, self._batches = self._batches, iter(())
        return itertools.chain(queued, rest)

    def close(self, *, wait: bool = True) -> None:
        """Cancels all reads and ends the reader threads: waiting for them to end, or (``wait``
        False, for a finalizer the garbage collector may run inside any thread, even one holding
        threading's own locks, where a join would deadlock) letting them end on their own."""
        self.cancel(wait_running=wait)
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    @property
    def reading(self) -> bool:
        """Whether reader threads are alive (made on first use, ended by :meth:`close`)."""
        return self._pool is not None

    def _fill(self) -> None:
        while len(self._queue) < self._plan.depth:
            batch = next(self._batches, None)
            if batch is None:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._plan.threads, thread_name_prefix="dali-ba-reader")
            if self._plan.batched:
                futures = [self._pool.submit(self._source.read_batch, batch.indices)]
            else:
                futures = [self._pool.submit(self._source.read, int(i)) for i in batch.indices]
            self._queue.append((batch, futures))
