"""Feed stage: read batches in, DALI pipeline in the middle, torch tensors out; bad samples named.

Sits between the read stage (``reader.py``, the bytes of the batches to come) and the loader
(``loader.py``, epochs and resume). It owns the DALI pipeline (``pipeline.py``: decode once, M
replicas), turns its outputs into torch tensors (:class:`DLPackHandOff`, without a copy, or on the
CPU path the resample stage, ``resample.py``), and keeps the batches DALI has in flight,
so that when DALI fails on a batch (its error names no file) the feed decodes those samples one by
one, names the bad one in a :class:`DecodeError`, or with ``on_error="skip"`` warns, leaves it out
and re-feeds the rest.
"""

from __future__ import annotations

import itertools
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types

from .reader import Batch, ReadAhead
from .sources import SampleIndex, describe_sample


class DecodeError(RuntimeError):
    """A sample could not be decoded. ``path`` names its file; ``key`` its key inside a tar shard
    (``row N`` inside a Parquet file), or ``None``."""

    def __init__(self, path: str, reason: str, key: str | None = None, container: str | None = "tar shard"):
        super().__init__(f"could not decode {describe_sample(path, key, container)}: {reason}")
        self.path, self.key = path, key


class SkippedFileWarning(UserWarning):
    """A sample was left out of the epoch because it could not be decoded (``on_error="skip"``)."""


@dataclass
class IOStats:
    """What the loader has read from storage since it was made.

    Counted per batch delivered to DALI (a batch read ahead counts once it is fed).

    Attributes:
        files_read: Encoded images read, which is also the number of decodes.
        bytes_read: Bytes storage gave for them: the images' own, or from Parquet the image
            columns of the row groups read (more than the images where row groups are reread).
        encoded_bytes: The images' own encoded bytes (what was decoded).
        requests: Reads sent to storage for them: one per image from files and tar shards, one
            per row group from Parquet; behind URLs, the requests made (retries included).
        batches: Batches delivered.
        images: Images delivered (the effective images: ``B*M`` per full batch).
        read_wait_s: Time the training thread waited for reads (inside DALI's input callback).
    """

    files_read: int = 0
    bytes_read: int = 0
    encoded_bytes: int = 0
    requests: int = 0
    batches: int = 0
    images: int = 0
    read_wait_s: float = 0.0

    @property
    def requests_per_image(self) -> float:
        """Requests per effective image delivered (about 1/M for one request per image read)."""
        return self.requests / self.images if self.images else 0.0

    @property
    def bytes_per_image(self) -> float:
        """Bytes read from storage per effective image delivered."""
        return self.bytes_read / self.images if self.images else 0.0


class Feed:
    """Feeds read batches through a DALI pipeline and returns torch batches.

    Args:
        index: The samples.
        build: ``build(source=callback) -> built DALI pipeline`` fed by ``callback``.
        reader: Reads the samples of the batches to come.
        finish: ``finish(outputs) -> (images [B*M, ...], labels [B*M])`` from the pipeline's
            outputs; its ``close()`` is called with the feed's.
        on_error: ``"raise"`` or ``"skip"`` for samples that cannot be decoded.
        device: Where the outputs live (torch's current stream orders their use on CUDA).
    """

    def __init__(self, index: SampleIndex, *, build: Callable, reader: ReadAhead, finish: Callable, on_error: str,
                 device: torch.device):
        self._index = index
        self._build = build
        self._reader = reader
        self._finish = finish
        self._on_error = on_error
        self._device = device
        self._in_flight: deque[Batch] = deque()
        self._pipe = self._new_pipeline()
        #: Samples left out because they could not be decoded (``on_error="skip"``).
        self.skipped: set[int] = set()
        self.io = IOStats()

    def start(self, batches: Iterable[Batch]) -> None:
        """Starts feeding ``batches`` (one epoch, or its rest), dropping anything still in flight."""
        self.stop()
        self._reader.start(self._without_skipped(batches))
        self._pipe.reset()
        self._pipe.schedule_run()  # the first call fills DALI's prefetch queue

    def next(self) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """The oldest batch in flight as ``(batch, images [B*M, ...], labels [B*M])``.

        Raises:
            StopIteration: No batch is left.
            DecodeError: A sample cannot be decoded (``on_error="raise"``).
            OSError: A sample cannot be read.
        """
        outputs = self._next_outputs()
        batch = self._in_flight.popleft()
        images, labels = self._finish(outputs)
        self._pipe.schedule_run()  # DALI works on the next batch while the model takes this one
        self.io.batches += 1
        self.io.images += len(labels)
        return batch, images, labels

    def stop(self) -> None:
        """Drops the batches read or decoded ahead (an epoch left before its end)."""
        self._reader.cancel()
        if self._in_flight:
            try:
                while True:
                    self._pipe.outputs()
            except StopIteration:
                pass
            except (RuntimeError, OSError):
                self._pipe = self._new_pipeline()
            self._in_flight.clear()

    def close(self, *, wait: bool = True) -> None:
        """Stops reading, ends the reader threads (and the resample stage's) and frees the pipeline.

        ``wait=False`` does not wait for the threads to end (see ``reader.ReadAhead.close``).
        """
        self._reader.close(wait=wait)
        self._finish.close(wait=wait)
        self._in_flight.clear()
        self._pipe = None  # DALI's threads and memory go with the pipeline

    def _new_pipeline(self):
        # The pipeline holds its input callback; a bound method there would make a cycle (feed ->
        # pipeline -> feed) that only the cyclic collector frees, so the pipeline's threads and
        # memory would outlive the feed. The callback holds the feed weakly instead.
        callback = weakref.WeakMethod(self._next_input)
        return self._build(source=lambda: callback()())

    def _without_skipped(self, batches: Iterable[Batch]):
        for batch in batches:
            if self.skipped:
                batch = Batch(batch.number, np.asarray([i for i in batch.indices if i not in self.skipped], dtype=np.int64))
            if len(batch.indices):
                yield batch

    def _next_input(self):
        """DALI's input callback, in the training thread: the next batch's bytes, read ahead."""
        try:
            batch, encoded = self._reader.take()
        finally:
            self.io.read_wait_s = self._reader.wait_s  # the reader lives as long as the feed
        self._in_flight.append(batch)
        self.io.files_read += len(encoded)
        self.io.bytes_read += encoded.nbytes
        self.io.encoded_bytes += sum(e.nbytes for e in encoded)
        self.io.requests += encoded.requests
        return list(encoded), self._index.labels[batch.indices]

    def _next_outputs(self):
        while True:
            try:
                # On CUDA the outputs are ordered on torch's current stream, so using them is safe.
                return self._pipe.outputs(cuda_stream=self._cuda_stream())
            except RuntimeError as err:
                failed = list(self._in_flight)
                bad = find_undecodable(self._index, [i for b in failed for i in b.indices])
                if not bad:
                    raise
                if self._on_error == "raise":
                    i, reason = bad[0]
                    raise DecodeError(self._index.files[i], reason, self._index.key(i), self._index.container) from err
                for i, reason in bad:
                    warnings.warn(f"skipping {self._index.describe(i)}: could not decode it ({reason})", SkippedFileWarning, stacklevel=5)
                self.skipped.update(i for i, _ in bad)
                # A pipeline that failed is not trusted again: build a new one and re-feed the
                # batches it held (without the bad samples) before the rest of the epoch.
                self._in_flight.clear()
                self._reader.start(self._without_skipped(itertools.chain(failed, self._reader.cancel())))
                self._pipe = self._new_pipeline()
                self._pipe.schedule_run()

    def _cuda_stream(self):
        return torch.cuda.current_stream(self._device) if self._device.type == "cuda" else None


class DLPackHandOff:
    """Hands DALI's ``[B, M, ...]`` replicas to torch without a copy, viewed as ``[B*M, ...]``.

    DALI's dynamic executor allocates every batch's outputs anew (nothing is recycled), so torch
    can own them through DLPack; the memory lives as long as the returned tensors do.

    Args:
        channels_last: The pipeline writes ``[B, M, H, W, C]``; view it as channels-last NCHW.
    """

    def __init__(self, *, channels_last: bool):
        self._channels_last = channels_last

    def __call__(self, outputs) -> tuple[torch.Tensor, torch.Tensor]:
        images_dali, labels_dali = outputs
        images = torch.from_dlpack(images_dali.as_tensor()).flatten(0, 1)
        labels = torch.from_dlpack(labels_dali.as_tensor()).view(-1)
        if self._channels_last:
            images = images.permute(0, 3, 1, 2)  # [N, H, W, C] memory viewed as NCHW, channels-last strides
        return images, labels

    def close(self, *, wait: bool = True) -> None:
        pass


def find_undecodable(index: SampleIndex, samples) -> list[tuple[int, str]]:
    """Decodes each sample alone on the CPU; returns ``(sample, reason)`` for those that fail.

    Used only after a batch failed, because DALI's error does not say which of its samples broke it.
    """
    bad = []
    pipe = None
    for i in samples:
        if pipe is None:
            pipe = _probe_pipeline()
        try:
            data = index.read(i)
            if data.size == 0:
                bad.append((i, "the file is empty" if index.key(i) is None else "the image is empty"))
                continue
            pipe.feed_input("encoded", [data])
            pipe.schedule_run()
            pipe.outputs()
        except (RuntimeError, OSError) as err:
            bad.append((i, _first_line(err)))
            pipe = None  # a pipeline that raised is rebuilt before the next sample
    return bad


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if "failure" in line.lower() or "error" in line.lower()]
    return (useful[-1] if useful else lines[-1] if lines else type(err).__name__)[:200]


def _probe_pipeline():
    @pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def probe():
        return fn.decoders.image(fn.external_source(name="encoded", dtype=types.UINT8, ndim=1), device="cpu")

    pipe = probe()
    pipe.build()
    return pipe
