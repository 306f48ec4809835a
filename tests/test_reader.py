"""The read stage: reads ahead in threads, bounded, and leaves nothing behind."""

import faulthandler
import gc
import os
import threading
import time

import numpy as np
import pytest

from dali_ba import ImageFolderLoader
from dali_ba.reader import Batch, ReadAhead
from dali_ba.sources import Fetched, Read, ReadPlan


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dali-ba-reader")]


def resample_threads():
    return [t for t in threading.enumerate() if t.name.startswith("dali-ba-resample")]


def ended(alive, within_s=10.0):
    """Whether the threads that ``alive()`` lists have all ended within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive()


def open_files():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_hang():
    faulthandler.dump_traceback_later(120, exit=True)  # a hang fails the run instead of stalling it
    yield
    faulthandler.cancel_dump_traceback_later()


class Reads:
    """A source whose sample ``i`` is what ``read(i)`` returns (one request each)."""

    container = None

    def __init__(self, read):
        self._read = read

    def read(self, i):
        data = self._read(i)
        return Read(data, 1, data.nbytes)

    def read_batch(self, indices):
        return Fetched.of(self.read(int(i)) for i in indices)


def reader_of(read, *, threads, depth):
    return ReadAhead(Reads(read), ReadPlan(threads=threads, depth=depth))


def batches(count, size):
    return [Batch(n, np.arange(n * size, (n + 1) * size)) for n in range(count)]


def test_reads_run_ahead_but_only_depth_batches_ahead():
    requested, lock = [], threading.Lock()

    def read(i):
        with lock:
            requested.append(i)
        return np.full(3, i, dtype=np.uint8)

    reader = reader_of(read, threads=4, depth=2)
    reader.start(batches(5, 4))
    deadline = time.monotonic() + 10
    while len(requested) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert sorted(requested) == list(range(8)), "the first two batches are read before anyone asks"
    batch, encoded = reader.take()
    assert batch.number == 0 and [int(e[0]) for e in encoded] == [0, 1, 2, 3]
    reader.close()
    assert sorted(requested)[:12] == list(range(12)) and len(requested) <= 12


def test_time_waiting_for_a_slow_read_is_counted():
    reader = reader_of(lambda i: (time.sleep(0.3), np.zeros(1, np.uint8))[1], threads=1, depth=1)
    reader.start(batches(1, 1))
    reader.take()
    assert reader.wait_s >= 0.1
    reader.close()


def test_cancel_waits_for_the_reads_under_way_and_drops_the_queued():
    started, finished = threading.Event(), []

    def read(i):
        started.set()
        time.sleep(0.2)
        finished.append(i)
        return np.zeros(1, np.uint8)

    reader = reader_of(read, threads=1, depth=2)
    reader.start(batches(2, 2))
    assert started.wait(10)
    left = list(reader.cancel())
    assert finished == [0], "the read under way ended before cancel returned; the queued ones never ran"
    assert [batch.number for batch in left] == [0, 1]
    reader.close()
    assert finished == [0]


def test_read_error_surfaces_in_take_and_the_reader_goes_on():
    def read(i):
        if i == 2:
            raise FileNotFoundError(2, "No such file or directory", f"/data/img{i}.jpg")
        return np.zeros(1, np.uint8)

    reader = reader_of(read, threads=2, depth=2)
    reader.start(batches(3, 2))
    reader.take()
    with pytest.raises(FileNotFoundError, match="img2.jpg"):
        reader.take()
    assert reader.take()[0].number == 2
    reader.close()
    assert not reader.reading


def test_leaving_epochs_early_leaves_no_thread_and_no_open_file(color_tree):
    root, _ = color_tree
    gc.collect()
    others = set(reader_threads() + resample_threads())  # threads of loaders that other tests left to the collector
    loader = ImageFolderLoader(root, batch_size=3, aug_repeats=1, image_size=16, device="cpu", read_threads=3, seed=0,
                               num_threads=2)
    assert loader.resample == "torch"
    next(iter(loader))
    files_before = open_files()
    for _ in range(15):
        for i, _batch in enumerate(loader):
            if i == 1:
                break
    assert len(set(reader_threads()) - others) <= 3
    assert len(set(resample_threads()) - others) == 2
    assert open_files() <= files_before
    del loader, _batch
    # The finalizer tells the threads to end but does not join them (it may run inside the collector, where a
    # join can deadlock): they end on their own, promptly.
    assert ended(lambda: set(reader_threads()) - others), "reader threads end once the loader is dropped"
    assert ended(lambda: set(resample_threads()) - others), "so do the resample stage's"


def test_file_removed_mid_epoch_is_an_error_naming_it(color_tree):
    root, truth = color_tree
    loader = ImageFolderLoader(root, batch_size=4, aug_repeats=1, image_size=16, device="cpu", shuffle=False,
                               drop_last=False, read_ahead=1, prefetch=1)
    epoch = iter(loader)
    next(epoch)
    victim = sorted(truth)[-1]  # read in the last batch, long after the first
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=os.path.basename(victim)):
        for _ in epoch:
            pass
