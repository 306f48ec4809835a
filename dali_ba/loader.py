"""The PyTorch-facing loader: reads the files of each batch, feeds DALI, hands torch tensors on.

This is the last stage of the flow: file index (``dataset.py``) and epoch plan (``order.py``) say
which files a step reads; the loader reads their bytes (once), feeds them to the pipeline
(``pipeline.py``: decode once, M augmented replicas) and returns ``[B*M, ...]`` torch tensors.

It keeps up to ``prefetch`` batches in flight, so DALI decodes and augments the next batches while
the model trains on the current one, and it remembers which files each in-flight batch holds, so
that a file DALI cannot decode is named in the error (or skipped with a warning naming it).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import torch
from nvidia.dali import fn, pipeline_def, types

from .config import LoaderConfig, default_num_threads, resolve_device
from .dataset import scan_image_folder
from .distributed import detect_shard, shared_seed
from .order import EpochPlan
from .pipeline import build_pipeline
from .recipes import RECIPES, OutputSpec

_DALI_DTYPES = {torch.float32: types.FLOAT, torch.float16: types.FLOAT16}
STATE_VERSION = 1


class DecodeError(RuntimeError):
    """A file could not be decoded. ``path`` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"could not decode image file {path!r}: {reason}")
        self.path = path


class SkippedFileWarning(UserWarning):
    """A file was left out of the epoch because it could not be decoded (``on_error="skip"``)."""


@dataclass
class IOStats:
    """What the loader has read from storage since it was made.

    Attributes:
        files_read: Encoded files read, which is also the number of JPEG decodes.
        bytes_read: Encoded bytes read.
        batches: Batches delivered.
    """

    files_read: int = 0
    bytes_read: int = 0
    batches: int = 0


@dataclass(frozen=True)
class _Batch:
    """One batch in flight: its position in the epoch and the samples it holds."""

    number: int
    indices: np.ndarray


class ImageFolderLoader:
    """Batch-augmentation loader over a torchvision ``ImageFolder`` tree.

    Each step reads and decodes ``batch_size`` (B) images once and returns ``aug_repeats`` (M)
    independently augmented replicas of each.

    **Replica contract.** Every batch is ``(images, labels)``: ``images`` is ``[B*M, 3, S, S]`` of
    ``dtype`` in sample-major order (sample 0's M replicas, then sample 1's, ...), ``labels`` is
    ``[B*M]`` int64 repeated the same way; both are on the loader's device and are reshaped from
    DALI's ``[B, M, ...]`` output without a copy. With ``channels_last`` the images have the same
    shape with channels-last strides. The last batch of an epoch may be smaller when
    ``drop_last=False``.

    **Epochs.** Each ``iter(loader)`` runs the next epoch (or the one set with :meth:`set_epoch`).
    A shuffled epoch is a permutation drawn from ``(seed, epoch)``: the same seed gives the same
    order. With ``drop_last=False`` every image of the shard comes out exactly once per epoch (as
    its M replicas).

    **Sharding.** With ``shard_id``/``num_shards`` left ``None`` the loader reads this rank's shard
    when torch.distributed is initialized or ``RANK``/``WORLD_SIZE`` are set (torchrun). Shards are
    disjoint and together cover the data set; a sample's M replicas stay on one rank.

    Args:
        root: Folder with one sub-folder per class (torchvision ``ImageFolder`` layout).
        batch_size: B, unique images per step (per shard).
        aug_repeats: M, augmented replicas of each image per step.
        recipe: ``"imagenet"``, ``"cifar"``, ``"randaugment"``, ``"trivialaugment"``,
            ``"autoaugment"`` or ``"val"`` (deterministic resize + center crop).
        image_size: Side S of the square output images.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        shuffle: New random order every epoch.
        seed: Seed of the order and the augmentations; ``None`` draws one (shared by all ranks).
        drop_last: Drop the last incomplete batch; with shards, cut every shard to the same number
            of batches so that ranks step together.
        num_threads: DALI CPU threads; ``None`` uses the cores available to this rank.
        dtype: ``torch.float32`` or ``torch.float16``.
        channels_last: Return channels-last (NHWC-strided) images.
        shard_id: This rank's shard; set together with ``num_shards``.
        num_shards: Number of shards.
        on_error: ``"raise"`` stops on a file that cannot be decoded, with a
            :class:`DecodeError` naming it; ``"skip"`` leaves it out (its batch is one smaller)
            with a :class:`SkippedFileWarning` naming it.
        prefetch: Batches decoded ahead of the one being consumed.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: No class folders or images under ``root``, or an option out of range.
        TypeError: An integer option is not an int.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        batch_size: int = 256,
        aug_repeats: int = 4,
        recipe: str = "imagenet",
        image_size: int = 224,
        device: str = "auto",
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = True,
        num_threads: int | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        shard_id: int | None = None,
        num_shards: int | None = None,
        on_error: str = "raise",
        prefetch: int = 2,
    ):
        config = LoaderConfig(
            batch_size=batch_size,
            aug_repeats=aug_repeats,
            recipe=recipe,
            image_size=image_size,
            device=device,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            num_threads=num_threads,
            dtype=dtype,
            channels_last=channels_last,
            shard_id=shard_id,
            num_shards=num_shards,
            on_error=on_error,
            prefetch=prefetch,
        )
        self._index = scan_image_folder(root)
        self.device = resolve_device(config.device)
        if config.num_shards is None:
            shard_id, num_shards = detect_shard()
            if not 0 <= shard_id < num_shards:
                raise ValueError(f"rank {shard_id} is outside world size {num_shards} (from torch.distributed or RANK/WORLD_SIZE)")
        else:
            shard_id, num_shards = config.shard_id, config.num_shards
        seed = config.seed if config.seed is not None else shared_seed(num_shards)
        self.config = replace(config, seed=seed, shard_id=shard_id, num_shards=num_shards)
        self._plan = EpochPlan(
            num_samples=len(self._index),
            batch_size=config.batch_size,
            shuffle=config.shuffle,
            seed=seed,
            drop_last=config.drop_last,
            shard_id=shard_id,
            num_shards=num_shards,
        )
        if len(self._plan) == 0:
            raise ValueError(
                f"batch_size={config.batch_size} is larger than the {len(self._index) // num_shards} images of "
                f"shard {shard_id}/{num_shards} under {str(self._index.root)!r}, and drop_last=True leaves no batch; "
                f"lower batch_size or pass drop_last=False"
            )
        self._spec = OutputSpec(config.image_size, _DALI_DTYPES[config.dtype], config.channels_last)
        self._num_threads = config.num_threads or default_num_threads(self.device)
        # Augmentation draws differ per shard; the order (plan) is shared.
        self._dali_seed = int(np.random.SeedSequence([seed, shard_id]).generate_state(1)[0] % 2**31)
        self._source = iter(())
        self._in_flight: deque[_Batch] = deque()
        self._pipe = self._build_pipeline()
        self._skipped: set[int] = set()
        self._next_epoch = 0
        self._resume_batch = 0
        self._epoch: int | None = None
        self._delivered = 0
        self._generation = 0
        self.io = IOStats()

    # -- what the training loop sees -------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        """Class names, sorted (as ``torchvision.datasets.ImageFolder.classes``)."""
        return list(self._index.classes)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name -> label (as ``torchvision.datasets.ImageFolder.class_to_idx``)."""
        return dict(self._index.class_to_idx)

    @property
    def num_samples(self) -> int:
        """Images this shard delivers per epoch (each as M replicas)."""
        return self._plan.samples_per_shard

    @property
    def files(self) -> tuple[str, ...]:
        """Every file of the data set (all shards), in label order."""
        return self._index.files

    @property
    def dataset(self):
        """The file index (``len``, ``classes``, ``class_to_idx``), where a DataLoader has its dataset."""
        return self._index

    @property
    def sampler(self) -> "ImageFolderLoader":
        """The loader itself, so that ``loader.sampler.set_epoch(epoch)`` works as with a DistributedSampler."""
        return self

    @property
    def batch_size(self) -> int:
        """B, unique images per step (each batch holds ``batch_size * aug_repeats`` images)."""
        return self.config.batch_size

    def __len__(self) -> int:
        """Batches per epoch on this shard."""
        return len(self._plan)

    def set_epoch(self, epoch: int) -> None:
        """Makes the next ``iter(loader)`` run ``epoch`` (as ``DistributedSampler.set_epoch``).

        Calling it with the epoch a loaded state stopped in keeps the resume point.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, but got {epoch!r}")
        if epoch != self._next_epoch:
            self._resume_batch = 0
        self._next_epoch = epoch

    def __iter__(self):
        self._abandon_in_flight()
        self._generation += 1
        epoch, start = self._next_epoch, self._resume_batch
        self._epoch, self._delivered = epoch, start
        self._next_epoch, self._resume_batch = epoch + 1, 0
        return self._run_epoch(epoch, start, self._generation)

    # -- resumable state -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where the loader stands: the epoch and batch the next ``iter(loader)`` will start at.

        Save it with the model checkpoint; after :meth:`load_state_dict` the interrupted epoch
        delivers exactly the batches it had not delivered yet (their augmentations are new draws).
        """
        if self._epoch is not None and self._delivered < len(self) and self._epoch + 1 == self._next_epoch:
            epoch, batch = self._epoch, self._delivered  # an epoch is under way
        else:
            epoch, batch = self._next_epoch, self._resume_batch
        return {
            "version": STATE_VERSION,
            "epoch": epoch,
            "batch": batch,
            "seed": self.config.seed,
            "num_files": len(self._index),
            "batch_size": self.config.batch_size,
            "shuffle": self.config.shuffle,
            "drop_last": self.config.drop_last,
            "shard_id": self.config.shard_id,
            "num_shards": self.config.num_shards,
            "skipped_files": sorted(self._index.files[i] for i in self._skipped),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`; the next ``iter(loader)`` resumes where it stopped.

        A state saved on one rank resumes every rank: ranks step through an epoch together, and the
        order is shared, so only the number of shards has to match, not the shard.

        Raises:
            ValueError: The state was saved by a loader over other data or with another batch
                size, shuffle, drop_last or number of shards, so its position would mean other samples.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not supported (expected {STATE_VERSION})")
        mine = self.state_dict()
        for key in ("num_files", "batch_size", "shuffle", "drop_last", "num_shards"):
            if state[key] != mine[key]:
                raise ValueError(
                    f"cannot resume: the saved loader state has {key}={state[key]!r} but this loader has "
                    f"{key}={mine[key]!r}; resume with the same data and options"
                )
        if not 0 <= state["batch"] <= len(self):
            raise ValueError(f"cannot resume: saved batch {state['batch']} is outside this epoch's {len(self)} batches")
        self._abandon_in_flight()
        self._generation += 1
        self.config = replace(self.config, seed=state["seed"])
        self._plan = replace(self._plan, seed=state["seed"])
        position = {path: i for i, path in enumerate(self._index.files)}
        self._skipped = {position[path] for path in state["skipped_files"] if path in position}
        self._epoch = None
        self._next_epoch, self._resume_batch = state["epoch"], state["batch"]

    # -- the feed loop ---------------------------------------------------------------------------

    def _build_pipeline(self):
        return build_pipeline(
            source=self._next_input,
            recipe=RECIPES[self.config.recipe],
            aug_repeats=self.config.aug_repeats,
            spec=self._spec,
            batch_size=self.config.batch_size,
            device_id=self.device.index if self.device.type == "cuda" else None,
            num_threads=self._num_threads,
            seed=self._dali_seed,
            prefetch_queue_depth=self.config.prefetch,
        )

    def _run_epoch(self, epoch: int, start: int, generation: int):
        self._source = (
            _Batch(number, indices) for number, indices in enumerate(self._plan.batches(epoch, start), start=start)
        )
        self._pipe.reset()
        self._pipe.schedule_run()  # the first call fills DALI's prefetch queue
        while True:
            if generation != self._generation:
                raise RuntimeError("this iterator was superseded by a newer iter(loader) or load_state_dict(); iterate the new one")
            try:
                outputs = self._next_outputs()
            except StopIteration:
                return
            batch = self._in_flight.popleft()
            images, labels = self._to_torch(outputs)
            self._pipe.schedule_run()  # DALI works on the next batch while the model takes this one
            self._delivered = batch.number + 1
            self.io.batches += 1
            yield images, labels

    def _next_input(self):
        """DALI's input callback: reads the files of the next batch of the epoch, once."""
        for batch in self._source:
            if self._skipped:
                kept = [i for i in batch.indices if i not in self._skipped]
                batch = _Batch(batch.number, np.asarray(kept, dtype=np.int64))
            if len(batch.indices):
                break
        else:
            raise StopIteration
        encoded = [np.fromfile(self._index.files[i], dtype=np.uint8) for i in batch.indices]
        self._in_flight.append(batch)
        self.io.files_read += len(encoded)
        self.io.bytes_read += sum(e.nbytes for e in encoded)
        return encoded, self._index.labels[batch.indices]

    def _next_outputs(self):
        """Outputs of the oldest batch in flight; a decode failure is named, or skipped and re-fed.

        Raises:
            StopIteration: The epoch has no batch left.
            DecodeError: A file of a batch in flight cannot be decoded (``on_error="raise"``).
        """
        while True:
            try:
                # On CUDA the outputs are ordered on torch's current stream, so using them is safe.
                return self._pipe.outputs(cuda_stream=self._cuda_stream())
            except RuntimeError as err:
                failed = list(self._in_flight)
                bad = find_undecodable(self._index.files[i] for b in failed for i in b.indices)
                if not bad:
                    raise
                if self.config.on_error == "raise":
                    raise DecodeError(bad[0][0], bad[0][1]) from err
                for path, reason in bad:
                    warnings.warn(f"skipping {path!r}: could not decode it ({reason})", SkippedFileWarning, stacklevel=4)
                position = {path: i for i, path in enumerate(self._index.files)}
                self._skipped.update(position[path] for path, _ in bad)
                # A pipeline that failed is not trusted again: build a new one and re-feed the
                # batches it held (without the bad files) before the rest of the epoch.
                self._in_flight.clear()
                self._source = itertools.chain(failed, self._source)
                self._pipe = self._build_pipeline()
                self._pipe.schedule_run()

    def _cuda_stream(self):
        return torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None

    def _abandon_in_flight(self) -> None:
        """Drops batches decoded ahead for an epoch that was left before its end."""
        if not self._in_flight:
            return
        try:
            while True:
                self._pipe.outputs()
        except StopIteration:
            pass
        except RuntimeError:
            self._pipe = self._build_pipeline()
        self._in_flight.clear()

    def _to_torch(self, outputs):
        """Hands DALI's ``[B, M, ...]`` outputs to torch without a copy, viewed as ``[B*M, ...]``.

        DALI's dynamic executor allocates every batch's outputs anew (nothing is recycled), so torch
        can own them through DLPack; the memory lives as long as the returned tensors do.
        """
        images_dali, labels_dali = outputs
        images = torch.from_dlpack(images_dali.as_tensor()).flatten(0, 1)
        labels = torch.from_dlpack(labels_dali.as_tensor()).view(-1)
        if self.config.channels_last:
            images = images.permute(0, 3, 1, 2)  # [N, H, W, C] memory viewed as NCHW, channels-last strides
        return images, labels


def find_undecodable(paths) -> list[tuple[str, str]]:
    """Decodes each file alone on the CPU; returns ``(path, reason)`` for those that fail.

    Used only after a batch failed, because DALI's error does not say which of its files broke it.
    """
    bad = []
    pipe = None
    for path in paths:
        if pipe is None:
            pipe = _probe_pipeline()
        try:
            data = np.fromfile(path, dtype=np.uint8)
            if data.size == 0:
                bad.append((path, "the file is empty"))
                continue
            pipe.feed_input("encoded", [data])
            pipe.schedule_run()
            pipe.outputs()
        except (RuntimeError, OSError) as err:
            bad.append((path, _first_line(err)))
            pipe = None  # a pipeline that raised is rebuilt before the next file
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
