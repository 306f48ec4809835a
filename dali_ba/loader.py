"""The PyTorch-facing loader: epochs, shards and resume over any sample index.

The last stage of the flow. The index (``sources/``) says what the samples are, the epoch plan
and cursor (``order.py``) which of them each step takes and how far an epoch got; the loader
wires the feed (``feed.py``: read ahead, decode once, M replicas, torch tensors) and hands it one
epoch after another, so that a checkpoint can resume mid-epoch exactly.

``BatchAugmentLoader`` takes a ready :class:`SampleIndex`; ``ImageFolderLoader``,
``TarShardLoader``, ``FileListLoader`` and ``ParquetLoader`` build one from a folder, tar shards,
a file list or Parquet files and take the same keyword options (``config.py``).
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import fields, replace

import numpy as np
import torch
from nvidia.dali import types

from .config import LoaderConfig, default_num_threads, resolve_device
from .decode_probe import region_decode_plan
from .distributed import detect_shard, shared_seed
from .feed import DLPackHandOff, Feed, IOStats
from .order import EpochCursor, EpochPlan
from .pipeline import build_pipeline
from .policies import policy_for
from .reader import Batch, ReadAhead
from .recipes import OutputSpec, recipe_named
from .resample import TorchResampler
from .sources import SampleIndex, index_tar_shards, read_file_list, scan_image_folder

_DALI_DTYPES = {torch.float32: types.FLOAT, torch.float16: types.FLOAT16}


class BatchAugmentLoader:
    """Batch-augmentation loader over a :class:`SampleIndex` (the sources below build one).

    Each step reads and decodes ``batch_size`` (B) images once and returns ``aug_repeats`` (M)
    independently augmented replicas of each.

    **Replica contract.** Every batch is ``(images, labels)``: ``images`` is ``[B*M, 3, S, S]`` of
    ``dtype`` in sample-major order (sample 0's M replicas, then sample 1's, ...), ``labels`` is
    ``[B*M]`` int64 repeated the same way; both are on the loader's device and are reshaped from
    DALI's ``[B, M, ...]`` output without a copy (on the CPU path of ``imagenet``, written once by
    the resample stage into memory that is reused only after every reference to the batch is
    gone). With ``channels_last`` the images have the same
    shape with channels-last strides. The last batch of an epoch may be smaller when
    ``drop_last=False``.

    **Epochs.** Each ``iter(loader)`` runs the next epoch (or the one set with :meth:`set_epoch`,
    also between ``iter()`` and the first batch); an iterator that starts later supersedes it.
    A shuffled epoch is a permutation drawn from ``(seed, epoch)``: the same seed gives the same
    order. With ``drop_last=False`` every image of the shard comes out exactly once per epoch (as
    its M replicas).

    **Sharding.** With ``shard_id``/``num_shards`` left ``None`` the loader reads this rank's shard
    when torch.distributed is initialized or ``RANK``/``WORLD_SIZE`` are set (torchrun). Shards are
    disjoint and together cover the data set; a sample's M replicas stay on one rank.

    **Reading.** The samples of the next ``read_ahead`` batches are read by ``read_threads``
    threads while DALI decodes and the model trains, so the training thread waits on storage only
    when storage cannot keep up (``loader.io.read_wait_s`` counts that wait).

    Args:
        index: The samples.
        batch_size: B, unique images per step (per shard).
        aug_repeats: M, augmented replicas of each image per step.
        recipe: ``"imagenet"``, ``"cifar"``, ``"randaugment"``, ``"trivialaugment"``,
            ``"autoaugment"`` or ``"val"`` (deterministic resize + center crop).
        image_size: Side S of the square output images.
        resize_size: ``val`` recipe only: the shorter side before the center crop (torchvision's
            ``--val-resize-size``); ``None`` is ``round(S / 0.875)``, 256 for 224.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        shuffle: New random order every epoch.
        shuffle_window: Sources read in groups (``ParquetLoader``'s row groups) only: shuffle
            within windows of this many groups, the windows in random order, so that each group
            is read about once per epoch; ``None`` shuffles over all samples
            (``sources/parquet/source.py``).
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
        read_threads: Threads reading samples from storage; ``None`` is 16 for files. For tar
            shards behind URLs, the requests kept in flight (``None`` is ``sources.remote.IN_FLIGHT``,
            128), on one event loop; for Parquet behind URLs, threads (``None`` is 64).
        read_ahead: Batches read ahead of the one DALI takes next (bounds the memory of reads).
            For tar shards behind URLs, at least enough batches to fill the requests in flight.
        roi_decode: For recipes that start with a random-resized crop, decode only the part of
            each image that its M replicas' windows cover; ``False`` decodes whole images.
            ``"auto"`` (the default) decodes regions where they decode correctly: on a GPU a
            one-time probe in a child process checks the region decode of this GPU, DALI and
            nvImageCodec (``decode_probe.py``; nvImageCodec 0.9 is reported to crash on some
            GPUs), caches its verdict, and where it fails the loader decodes whole images and
            warns (:class:`~dali_ba.decode_probe.RegionDecodeWarning`). ``True`` skips the probe.
        resample: Where the replicas are cut out, resized, flipped and normalized: ``"dali"`` in
            the DALI pipeline; ``"torch"`` with torch's kernels on the CPU after DALI decoded
            (``imagenet`` recipe, CPU device only; torchvision's tensor ``RandomResizedCrop``
            arithmetic, ``resample.py``); ``"auto"`` picks ``"torch"`` where it applies, else
            ``"dali"``.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``: the filter of every resize
            (the train crop, the val resize), antialiased when shrinking except nearest, as
            torchvision's ``--interpolation``. ``"random"`` (timm's ``--train-interpolation``
            default; ``imagenet`` and timm's RandAugment only): bilinear or bicubic, drawn for each
            replica (and for each of timm's ops).
        ra_magnitude: ``randaugment`` recipe only: RandAugment's magnitude (0-30; torchvision's
            ``--ra-magnitude``, default 9), with 2 operations per image.
        random_erase: Probability that a replica gets torchvision's ``RandomErasing`` (a
            rectangle of 2-33% of it, aspect 0.3-3.3, set to 0 after normalization), drawn for
            each replica on its own (``erasing.py``); torchvision's ``--random-erase``.
        hflip, vflip: The probabilities of a horizontal (default 0.5) and a vertical (default 0) flip of
            each replica, as timm's ``--hflip``/``--vflip``; crop recipes only.
        crop_scale: The random-resized crop's range of area, as a fraction of the image's
            (torchvision's and timm's ``scale``; default ``(0.08, 1.0)``); crop recipes only.
        color_jitter: torchvision's ``ColorJitter`` after the ``imagenet`` recipe's crop and flip, as
            timm's ``--color-jitter`` (its default 0.4 without ``--aa``): a factor for brightness,
            contrast and saturation, or three; each replica draws its factors and their order.
            ``0`` is off. On the CPU torchvision's PIL ops; in DALI, PIL's arithmetic (``timm_graph``).
        color_jitter_prob: The probability that a replica is jittered (timm's ``--color-jitter-prob``);
            ``None`` is always.
        mean, std: The per-channel mean and standard deviation (0-1 scale, RGB) that the replicas
            are normalized with, a model's own (timm's ``--mean``/``--std``); ``None`` is the
            recipe's (ImageNet's, CIFAR's for ``cifar``). timm's RandAugment fills with this mean.
        epoch_samples: An epoch is the first ``epoch_samples`` samples of its permutation (all
            shards together; a new random selection each epoch, each sample at most once), as the
            repeated-augmentation sampler's epochs are (torchvision's ``--ra-sampler``); ``None``
            is every sample; or a function ``(num_samples, num_shards) -> int`` of the data set's
            size and the number of shards (``reference.ra_sampler_epoch``: torchvision's). Resume
            and elastic resume hold as for whole epochs.

    Raises:
        ValueError: An option out of range, or a batch larger than the shard with ``drop_last``.
        TypeError: An unknown option, or an integer option that is not an int.
    """

    def __init__(self, index: SampleIndex, **options):
        config = _checked(options)
        self._index = index
        self.device = resolve_device(config.device)
        shard_id, num_shards = _shard(config)
        seed = config.seed if config.seed is not None else shared_seed(num_shards)
        epoch_samples = _epoch_samples(config.epoch_samples, index, num_shards)
        self.config = replace(config, seed=seed, shard_id=shard_id, num_shards=num_shards, epoch_samples=epoch_samples)
        self._cursor = EpochCursor(_plan(index, self.config))
        self._spec = OutputSpec(config.image_size, _DALI_DTYPES[config.dtype], config.channels_last, config.resize_size,
                                config.interpolation, hflip=config.hflip, vflip=config.vflip)
        self._num_threads = config.num_threads or default_num_threads(self.device)
        #: Where the replicas are made: ``"dali"`` (in the pipeline) or ``"torch"`` (CPU, ``resample.py``).
        self.resample = config.resolve_resample(self.device)
        recipe = recipe_named(config.recipe).with_magnitude(config.ra_magnitude)
        recipe = recipe.normalized(config.mean or recipe.mean, config.std or recipe.std)
        recipe = replace(recipe, crop_scale=config.crop_scale)
        if config.color_jitter_factors is not None:
            recipe = recipe.with_color_jitter(config.color_jitter_factors, config.color_jitter_prob)
        #: Whether this loader decodes only the windows' union (``roi_decode`` resolved on its device).
        self.roi_decode, gpu_options = (
            region_decode_plan(config.roi_decode, self.device) if recipe.windowed else (False, {})
        )
        self._feed = self._wire(recipe, gpu_options)
        # Reader threads end when the loader is collected, at exit, or at close(). The collector may
        # run this inside any thread, even one that holds threading's own locks (a thread being
        # started): it must not join threads there, so it only tells them to end.
        self._closer = weakref.finalize(self, functools.partial(self._feed.close, wait=False))
        self._generation = 0
        self._last_indices = np.empty(0, dtype=np.int64)

    def _wire(self, recipe, gpu_options: dict) -> Feed:
        """The feed: the source's reads ahead -> the DALI pipeline -> the hand-off to torch."""
        config = self.config
        # Augmentation draws differ per shard; the order (plan) is shared.
        dali_seed = int(np.random.SeedSequence([config.seed, config.shard_id]).generate_state(1)[0] % 2**31)
        if self.resample == "torch":
            policy = policy_for(recipe, size=config.image_size, interpolation=config.interpolation)
            finish = TorchResampler(self._spec, aug_repeats=config.aug_repeats, batch_size=config.batch_size,
                                    mean=recipe.mean, std=recipe.std, threads=self._num_threads, policy=policy,
                                    seed=dali_seed)
        else:
            finish = DLPackHandOff(channels_last=config.channels_last)
        plan = self._index.source.read_plan(read_threads=config.read_threads, read_ahead=config.read_ahead,
                                            batch_size=config.batch_size)
        return Feed(
            self._index,
            # A plain function, not a bound method: the feed must not keep the loader alive, so that
            # dropping the loader ends its reader threads at once (weakref.finalize above).
            build=functools.partial(
                build_pipeline,
                recipe=recipe,
                aug_repeats=config.aug_repeats,
                spec=self._spec,
                batch_size=config.batch_size,
                device_id=self.device.index if self.device.type == "cuda" else None,
                num_threads=self._num_threads,
                seed=dali_seed,
                prefetch_queue_depth=config.prefetch,
                roi_decode=self.roi_decode,
                resample=self.resample,
                gpu_options=gpu_options,
                random_erase=config.random_erase,
            ),
            reader=ReadAhead(self._index.source, plan),
            finish=finish,
            on_error=config.on_error,
            device=self.device,
        )

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
        return self._cursor.plan.samples_per_shard()

    @property
    def files(self):
        """The file holding each sample of the data set (all shards), in index order: a read-only
        sequence of paths (``dataset.StringTable``; ``tuple(loader.files)`` makes a tuple)."""
        return self._index.files

    @property
    def dataset(self):
        """The sample index (``len``, ``classes``, ``class_to_idx``), where a DataLoader has its dataset."""
        return self._index

    @property
    def sampler(self) -> "BatchAugmentLoader":
        """The loader itself, so that ``loader.sampler.set_epoch(epoch)`` works as with a DistributedSampler."""
        return self

    @property
    def batch_sampler(self) -> None:
        """``None``: the loader batches by itself. Frameworks that inspect a DataLoader's
        ``sampler`` also read this (Lightning does), so it is there, as on a DataLoader without one."""
        return None

    @property
    def batch_size(self) -> int:
        """B, unique images per step (each batch holds ``batch_size * aug_repeats`` images)."""
        return self.config.batch_size

    @property
    def last_indices(self) -> np.ndarray:
        """The samples of the batch delivered last, as indices into :attr:`dataset` (``int64``).

        One entry per unique sample, in batch order: images ``j*M .. j*M+M-1`` of the batch are
        the replicas of sample ``last_indices[j]``, whose file is ``loader.dataset.describe(i)``.
        Empty before the first batch. For audits (which samples a run trained on) and messages
        (which files a bad batch held).
        """
        return self._last_indices

    def __len__(self) -> int:
        """Batches per epoch on this shard."""
        return len(self._cursor.plan)

    def set_epoch(self, epoch: int) -> None:
        """Makes the next ``iter(loader)`` run ``epoch`` (as ``DistributedSampler.set_epoch``).

        Calling it with the epoch a loaded state stopped in keeps the resume point.
        """
        self._cursor.set_epoch(epoch)

    def close(self) -> None:
        """Ends the loader's threads and frees its pipeline and memory now, not when it is collected.

        For a process that builds loaders one after another (a benchmark, a sweep); iterating a
        closed loader raises ``RuntimeError``. Calling it again does nothing.
        """
        self._generation += 1  # an iterator still open stops at its next batch
        if self._closer.detach() is not None:  # not closed yet: close now, and wait for the threads
            self._feed.close()

    def __iter__(self):
        # The epoch starts at the first next(), not here, so that set_epoch() between iter(loader)
        # and the first batch still counts, as with a DataLoader's sampler (Lightning calls iter()
        # before it sets the epoch).
        return self._run_epoch()

    # -- resumable state -------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where the loader stands: the epoch and the position the next ``iter(loader)`` starts at.

        Save it with the model checkpoint; after :meth:`load_state_dict` the interrupted epoch
        delivers exactly the samples it had not delivered yet (their augmentations are new draws).
        ``position`` counts the samples of the epoch's permutation that all ranks together have
        consumed, so every rank saves the same state and any number of ranks can resume it;
        ``batch`` is the number of this shard's batches that position stands for (informative).
        """
        return dict(
            self._cursor.state(),
            seed=self.config.seed,
            **self._identity(),
            shard_id=self.config.shard_id,
            num_shards=self.config.num_shards,
            skipped_files=sorted(self._index.name(i) for i in self._feed.skipped),
        )

    def load_state_dict(self, state: dict) -> None:
        """Restores a :meth:`state_dict`; the next ``iter(loader)`` resumes where it stopped.

        The state may come from any rank and from a run on another number of shards (an elastic
        restart, a requeue on fewer nodes): the samples of the interrupted epoch not consumed yet
        are dealt over this run's shards as an epoch is (each exactly once with ``drop_last=False``;
        cut to equal full batches with ``drop_last=True``), and the epochs after it are whole
        epochs on this run's shards. States saved by dali-ba 0.1 (``version`` 1) load too.

        Raises:
            ValueError: The state is not a loader state, or was saved by a loader over other data
                or with another batch size, shuffle, shuffle_window, epoch_samples or drop_last, so
                its position would mean other samples.
        """
        self._cursor.restore(state, self._identity())
        self._feed.stop()
        self._generation += 1
        self.config = replace(self.config, seed=state["seed"])
        skipped = set(state["skipped_files"])
        self._feed.skipped = {i for i in range(len(self._index)) if self._index.name(i) in skipped} if skipped else set()

    def _identity(self) -> dict:
        """What a saved state must share with the loader that resumes it (``order.EpochCursor.restore``)."""
        config = self.config
        return {"num_files": len(self._index), "batch_size": config.batch_size, "shuffle": config.shuffle,
                "shuffle_window": config.shuffle_window, "epoch_samples": config.epoch_samples,
                "drop_last": config.drop_last}

    @property
    def io(self) -> IOStats:
        """What has been read so far: files, bytes and requests, batches, and the time spent waiting on reads."""
        return self._feed.io

    # -- the epoch loop --------------------------------------------------------------------------

    def _run_epoch(self):
        if not self._closer.alive:
            raise RuntimeError("this loader was closed; make a new one")
        self._feed.stop()
        self._generation += 1
        generation = self._generation
        self._feed.start(Batch(n, indices) for n, indices in enumerate(self._cursor.begin()))
        try:
            while True:
                if generation != self._generation:
                    if not self._closer.alive:
                        raise RuntimeError("this loader was closed; make a new one")
                    raise RuntimeError("this iterator was superseded by an iterator of this loader started later, or by "
                                       "load_state_dict(); iterate the new one")
                try:
                    batch, images, labels = self._feed.next()
                except StopIteration:
                    self._cursor.finish()
                    return
                self._cursor.advance(batch.number + 1)
                self._last_indices = batch.indices
                yield images, labels
        finally:
            if generation == self._generation:
                # The epoch was left (a `break`, an exception in the loop): its reads ahead stop
                # now, not at the next iter(loader).
                self._feed.stop()


class LoaderWrapper:
    """A loader that changes the batches of the loader it wraps (:attr:`loader`) and is otherwise
    that loader: ``len``, ``sampler``, ``dataset``, ``set_epoch``, ``state_dict``, ``io``, ...
    The integrations' wrappers (``reference.ReplicaMix``, ``timm.TimmLoader``) define ``__iter__``."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name):
        if name == "loader":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


def _checked(options: dict) -> LoaderConfig:
    """The loader's options, validated; an unknown name is a ``TypeError`` that lists the known ones."""
    known = {f.name for f in fields(LoaderConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown loader option(s) {', '.join(unknown)}; the options are: {', '.join(sorted(known))}")
    return LoaderConfig(**options)


def _shard(config: LoaderConfig) -> tuple[int, int]:
    """``(shard_id, num_shards)``: as given, else from torch.distributed or ``RANK``/``WORLD_SIZE``."""
    if config.num_shards is not None:
        return config.shard_id, config.num_shards
    shard_id, num_shards = detect_shard()
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"rank {shard_id} is outside world size {num_shards} (from torch.distributed or RANK/WORLD_SIZE)")
    return shard_id, num_shards


def _epoch_samples(epoch_samples, index: SampleIndex, num_shards: int) -> int | None:
    """``epoch_samples`` as a number: a rule ``(num_samples, num_shards) -> int`` applied, checked against the data."""
    if callable(epoch_samples):
        epoch_samples = epoch_samples(len(index), num_shards)
        if isinstance(epoch_samples, bool) or not isinstance(epoch_samples, int) or epoch_samples < 1:
            raise ValueError(f"epoch_samples gave {epoch_samples!r} for {len(index)} samples on {num_shards} "
                             f"shard(s); an epoch needs at least one sample")
    if epoch_samples is not None and epoch_samples > len(index):
        raise ValueError(f"epoch_samples={epoch_samples} is more than the {len(index)} samples under "
                         f"{str(index.root)!r}; an epoch covers each sample at most once")
    return epoch_samples


def _plan(index: SampleIndex, config: LoaderConfig) -> EpochPlan:
    """This shard's epoch plan.

    Raises:
        ValueError: ``shuffle_window`` over samples not stored in groups, or no batch at all.
    """
    if config.shuffle_window is not None and index.group_starts is None:
        raise ValueError(f"shuffle_window={config.shuffle_window} shuffles within windows of storage groups (Parquet row "
                         f"groups), but the samples under {str(index.root)!r} are not stored in groups; leave it None")
    plan = EpochPlan(num_samples=len(index), batch_size=config.batch_size, shuffle=config.shuffle, seed=config.seed,
                     drop_last=config.drop_last, shard_id=config.shard_id, num_shards=config.num_shards,
                     group_starts=index.group_starts, window=config.shuffle_window, epoch_samples=config.epoch_samples)
    if len(plan) == 0:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the {len(index) // config.num_shards} images of "
            f"shard {config.shard_id}/{config.num_shards} under {str(index.root)!r}, and drop_last=True leaves no batch; "
            f"lower batch_size or pass drop_last=False"
        )
    return plan


class ImageFolderLoader(BatchAugmentLoader):
    """Batch-augmentation loader over a torchvision ``ImageFolder`` tree (``root/<class>/<image>``).

    Classes and labels are what ``torchvision.datasets.ImageFolder(root)`` gives. The keyword
    options and the batches are those of :class:`BatchAugmentLoader`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: No class folders or images under ``root``, or an option out of range.
    """

    def __init__(self, root: str | os.PathLike, **options):
        _checked(options)  # bad options fail before any data is scanned
        super().__init__(scan_image_folder(root), **options)


class TarShardLoader(BatchAugmentLoader):
    """Batch-augmentation loader over WebDataset tar shards.

    ``shards`` is a list of ``.tar`` paths or a pattern: brace ranges as WebDataset writes them
    (``"/data/train-{000000..000146}.tar"``) and globs. A sample is the group of members that share
    a key; its image is the ``jpg``/``jpeg``/``png``/``webp`` member, its label the ``cls`` member
    (an integer in text). The shards are indexed once (cached under ``cache_dir()/tar-index``) and
    each image is read with one positioned read, so epochs are exact permutations over all samples
    of all shards, as with :class:`ImageFolderLoader`. Errors name the shard and the key
    (``sources/tar/``).

    Shards may be URLs (``"https://host/train-{000000..000146}.tar"``, ``s3://...``): they are read
    through ``fsspec`` (``pip install dali-ba[remote]``; ``storage_options`` go to its filesystem),
    indexed from their sidecars and cached locally, and each image is one ranged request, with a
    time limit and retries (``sources/remote.py``).

    Raises:
        FileNotFoundError: A shard is missing or a pattern matches nothing.
        ValueError: A sample has no image, no label or a label that is not an integer >= 0.
        StorageError: A URL cannot be read (404 and 403 at once, others after retries); it is named.
    """

    def __init__(self, shards, *, storage_options: dict | None = None, **options):
        _checked(options)  # bad options fail before any data is scanned
        index = index_tar_shards(shards, storage_options=storage_options, in_flight=options.get("read_threads"))
        super().__init__(index, **options)


class FileListLoader(BatchAugmentLoader):
    """Batch-augmentation loader over a ``path label`` file list (DALI's ``file_list`` format).

    Relative paths are taken from ``file_root`` (default: the list's folder).

    Raises:
        FileNotFoundError: The list is missing.
        ValueError: A malformed line (its number is given).
    """

    def __init__(self, file_list: str | os.PathLike, *, file_root: str | os.PathLike | None = None, **options):
        _checked(options)  # bad options fail before any data is scanned
        super().__init__(read_file_list(file_list, file_root=file_root), **options)


class ParquetLoader(BatchAugmentLoader):
    """Batch-augmentation loader over Parquet files, as Hugging Face ``datasets`` stores image sets.

    ``files`` is a list of ``.parquet`` paths or a pattern (brace ranges and globs, as for
    :class:`TarShardLoader`). Each row is a sample: its image in ``image_column`` (the ``Image``
    feature's struct ``{bytes, path}``, or binary), its label in ``label_column`` (integers; class
    names from the files' ``ClassLabel`` metadata where present). The files are indexed once
    (row groups and labels); the reader threads read the image column of the row groups each batch
    needs (``sources/parquet/``). Epochs, shards, resume and errors are those of every loader; errors name
    the file and the row. ``shuffle_window`` trades the exact permutation for row-group-local reads;
    ``cache_groups`` is how many row groups stay decoded (default 96).
    Needs pyarrow (``pip install dali-ba[parquet]``).

    Files may be URLs (``"hf://datasets/ORG/NAME/data/train-*.parquet"``, ``s3://``, ``https://``):
    they are indexed from range reads of their footers and label columns (cached locally), and
    each row group's images are one ranged request, with a time limit and retries (``sources/remote.py``;
    ``storage_options`` go to the ``fsspec`` filesystem).

    Raises:
        ImportError: pyarrow is not installed.
        FileNotFoundError: A file is missing or a pattern matches nothing.
        ValueError: A missing column (the message lists the columns there are), or a label that
            is missing, negative or not an integer (file and row named).
    """

    def __init__(self, files, *, image_column: str = "image", label_column: str = "label", cache_groups: int | None = None,
                 storage_options: dict | None = None, **options):
        _checked(options)  # bad options fail before any data is scanned
        from .sources.parquet import CACHE_GROUPS, index_parquet

        index = index_parquet(files, image_column=image_column, label_column=label_column,
                              cache_groups=cache_groups or CACHE_GROUPS, storage_options=storage_options)
        super().__init__(index, **options)
