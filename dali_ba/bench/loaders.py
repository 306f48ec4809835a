"""The loaders ``dali-ba bench`` compares, each built for the same data, B, M, size, dtype, device.

Every factory returns a :class:`BenchLoader`: an endless iterator of ``(images [N,3,S,S],
labels [N])`` plus counters of the files it read and their bytes. The counts are exact per
delivered batch: the torchvision datasets return each item's encoded size with the item, DALI's
file reader outputs its encoded sizes, and dali-ba counts what it feeds (one batch fed per batch
delivered). :data:`REGISTRY` is the one list of them: name, factory, the data each reads, what it
does per step, and whether it runs by default; the CLI's help, the runner and the report read it.

``synthetic`` is not a loader: with ``--model`` it measures the model alone, the upper bound on
images/s that any loader can reach. DataLoader workers start with the ``forkserver`` context:
forking a process whose DALI threads run is a deadlock hazard (one such comparison hung here).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from ..recipes import IMAGENET_MEAN, IMAGENET_STD
from ..sources import SampleIndex
from ..windows import RRC_RATIO, RRC_SCALE
from . import peers

#: The recipes the bench runs: those that train on random-resized crops, which every loader has.
#: timm's RandAugment in its grammar (``"rand-m9-mstd0.5-inc1"``) runs too, with timm's erasing
#: (:func:`is_timm_recipe`), on the loaders of :data:`TIMM_LOADERS`.
RECIPES = ("imagenet", "trivialaugment", "randaugment", "autoaugment")
#: The loaders that run a timm recipe: dali-ba through ``dali_ba.timm``, timm's own, and the
#: DataLoaders with timm's per-sample transforms.
TIMM_LOADERS = ("dali-ba", "timm", "torch-once", "torch-repeat", "torch-large")


def is_timm_recipe(recipe: str) -> bool:
    """Whether ``recipe`` is timm's RandAugment in its grammar; its erasing is then timm's (``pixel`` mode, DeiT's)."""
    from ..timm_augment import is_timm_recipe

    return is_timm_recipe(recipe)


@dataclass(frozen=True)
class BenchSpec:
    """What every loader in one comparison shares.

    Attributes:
        batch_size: B, unique images per step (dali-ba, torch-once, torch-repeat).
        aug_repeats: M; every loader delivers B*M images per step.
        image_size: Output side S.
        dtype: Output dtype.
        device: Where the batch must end up.
        workers: DALI threads and DataLoader worker processes.
        seed: Seed of orders and augmentations.
        channels_last: The model wants channels-last images; loaders that can make them directly do.
        recipe: The training recipe every loader runs (one of :data:`RECIPES`): a random-resized
            crop and a flip, then for ``trivialaugment``, ``randaugment`` and ``autoaugment`` that
            policy (torchvision's in the torch loaders, NVIDIA's ``auto_aug`` in ``dali-large``);
            or timm's RandAugment (:func:`is_timm_recipe`: timm's transforms in the torch loaders).
        random_erase: Probability of torchvision's ``RandomErasing`` per replica, after normalizing
            (timm's, ``pixel`` mode, with a timm recipe).
        interpolation: The filter of the crop's resize and of the policy's geometric ops.
        ra_magnitude: RandAugment's magnitude (``randaugment``).
    """

    batch_size: int
    aug_repeats: int
    image_size: int
    dtype: torch.dtype
    device: torch.device
    workers: int
    seed: int = 0
    channels_last: bool = False
    recipe: str = "imagenet"
    random_erase: float = 0.0
    interpolation: str = "bilinear"
    ra_magnitude: int = 9

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.aug_repeats


class BenchLoader:
    """An endless batch iterator and what it has read.

    Args:
        batches: Endless iterator of ``(images, labels)`` with ``B*M`` images each (a generator).
        read_counts: Returns ``(files_read, bytes_read)`` so far.
        unique_per_step: Distinct images per step (B, or B*M for the large-batch baselines).
        release: Ends what the loader holds beyond ``batches`` (threads, workers, pipelines).
        read_wait_s: Returns the seconds the training thread has waited on reads so far, where
            the loader can tell (dali-ba); ``None`` elsewhere.
        variant: How it runs, where it has more than one way (see ``Result.variant``).
        requests: Returns the reads sent to storage so far (``IOStats.requests``), where the
            loader counts them (dali-ba); ``None`` elsewhere.
    """

    def __init__(self, batches: Iterator, read_counts: Callable[[], tuple[int, int]], unique_per_step: int,
                 release=lambda: None, read_wait_s: Callable[[], float] | None = None, variant: str | None = None,
                 requests: Callable[[], int] | None = None):
        self.batches = batches
        self.read_counts = read_counts
        self.requests = requests
        self.unique_per_step = unique_per_step
        self.read_wait_s = read_wait_s
        self.variant = variant
        self._release = release
        #: Returns a state to resume from mid-epoch, where the loader can save one (the peers' own).
        self.state_dict: Callable[[], dict] | None = None

    def close(self) -> None:
        """Ends the batch generator (and with it the epoch under way), then what ``release`` frees."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()
        self._release()


def _forever(make_epoch, name: str):
    """Epoch after epoch of ``make_epoch()``; an epoch without a batch is an error, not an endless loop."""
    while True:
        delivered = 0
        for batch in make_epoch():
            delivered += 1
            yield batch
        if not delivered:
            raise RuntimeError(f"{name} delivered no batch in a whole epoch: the data set holds fewer images than one "
                               f"batch and the loader drops incomplete batches; use more images or a smaller B*M")


# -- DALI ---------------------------------------------------------------------------------------


def dali_ba(index: SampleIndex, spec: BenchSpec, **options) -> BenchLoader:
    """This project's loader over ``index`` (a folder's, a tar copy's or a Parquet copy's); ``options`` go to it.

    The bytes counted are what storage delivered (``IOStats.bytes_read``): over Parquet, the row
    groups' image columns read (more than the images fed, where row groups are reread).
    """
    from ..loader import BatchAugmentLoader

    if is_timm_recipe(spec.recipe):
        return _dali_ba_timm(index, spec, **options)
    loader = BatchAugmentLoader(
        index,
        batch_size=spec.batch_size,
        aug_repeats=spec.aug_repeats,
        image_size=spec.image_size,
        device=str(spec.device),
        dtype=spec.dtype,
        num_threads=spec.workers,
        seed=spec.seed,
        channels_last=spec.channels_last,
        num_shards=1,
        shard_id=0,
        recipe=spec.recipe,
        random_erase=spec.random_erase,
        interpolation=spec.interpolation,
        ra_magnitude=spec.ra_magnitude if spec.recipe == "randaugment" else 9,
        **options,
    )
    return _bench_loader(loader, spec)


def _bench_loader(loader, spec: BenchSpec) -> BenchLoader:
    """A dali-ba loader (or a wrapper of one) as a BenchLoader, with the loader's own counts of reads and waits."""
    return BenchLoader(
        _forever(lambda: iter(loader), "dali-ba"),
        lambda: (loader.io.files_read, loader.io.bytes_read),
        spec.batch_size,
        release=loader.close,
        read_wait_s=lambda: loader.io.read_wait_s,
        variant="region decode" if loader.roi_decode else "whole-image decode",
        requests=lambda: loader.io.requests,
    )


def dali_large(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    """NVIDIA's DALI ResNet-50 training pipeline, reading B*M unique images per step.

    Its decoder is ``decoders.image_random_crop`` (decode and crop fused). Where the decode probe
    found that decoder broken on this device (``decode_probe.py``: probed on a GPU, read from the
    cache on the CPU), it decodes whole images and crops with ``fn.random_resized_crop``, and says
    so in its variant; where a workaround option made it work, it runs with that option. The
    recipe's policy is NVIDIA's ``nvidia.dali.auto_aug`` one after the crop (as dali-ba's GPU path
    runs it), then the flip; random erasing is ``fn.erase`` of torchvision's rectangle
    (``erasing.erase_box``) after normalizing.
    """
    from nvidia.dali import fn, pipeline_def, types

    from ..erasing import erase_box
    from ..recipes import INTERPOLATION
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    from ..decode import DEVICE_MEMORY_PADDING, HOST_MEMORY_PADDING, HW_DECODER_LOAD
    from ..decode_probe import cached_verdict, probe_verdict

    on_gpu = spec.device.type == "cuda"
    options = (
        dict(device_memory_padding=DEVICE_MEMORY_PADDING, host_memory_padding=HOST_MEMORY_PADDING, hw_decoder_load=HW_DECODER_LOAD)
        if on_gpu
        else {}
    )
    verdict = probe_verdict("random_crop", str(spec.device)) if on_gpu else cached_verdict("random_crop", "cpu")
    fused = verdict is None or verdict.works
    if verdict is not None and verdict.works and on_gpu:
        options.update(verdict.options)
    variant = "fused decode+crop" + (f" with {verdict.options}" if fused and verdict and verdict.options else "")
    if not fused:
        variant = "whole decode + random_resized_crop (fused decode failed its probe)"
    crop = dict(random_area=RRC_SCALE, random_aspect_ratio=RRC_RATIO, num_attempts=100)
    interp = INTERPOLATION[spec.interpolation]
    policy = _dali_policy(spec)

    @pipeline_def(enable_conditionals=policy is not None)
    def standard():
        encoded, labels = fn.readers.file(
            files=list(index.files), labels=index.labels.astype(np.int32).tolist(), random_shuffle=True, name="Reader"
        )
        device = "mixed" if on_gpu else "cpu"
        if fused:
            images = fn.decoders.image_random_crop(encoded, device=device, output_type=types.RGB, **crop, **options)
            images = fn.resize(images, resize_x=spec.image_size, resize_y=spec.image_size, interp_type=interp,
                               antialias=True)
        else:
            images = fn.decoders.image(encoded, device=device, output_type=types.RGB, **options)
            images = fn.random_resized_crop(images, size=[spec.image_size, spec.image_size], interp_type=interp,
                                            antialias=True, **crop)
        if policy is not None:
            images = policy(images)
        images = fn.crop_mirror_normalize(
            images,
            dtype=types.FLOAT16 if spec.dtype == torch.float16 else types.FLOAT,
            output_layout="CHW",
            mean=[m * 255 for m in IMAGENET_MEAN],
            std=[s * 255 for s in IMAGENET_STD],
            mirror=fn.random.coin_flip(),
        )
        if spec.random_erase:
            top, left, height, width = erase_box(spec.image_size, spec.random_erase)
            images = fn.erase(images, anchor=fn.stack(top, left), shape=fn.stack(height, width), axis_names="HW",
                              fill_value=0.0)
        encoded_bytes = encoded.shape()  # the reader's encoded sizes: what came from storage
        if on_gpu:
            labels = labels.gpu()
        return images, labels, encoded_bytes

    if len(index) < spec.effective_batch:
        raise ValueError(f"dali-large needs {spec.effective_batch} images per batch (B*M) but the data set holds {len(index)}; "
                         f"use more images or a smaller B*M")
    pipe = standard(
        batch_size=spec.effective_batch,
        num_threads=spec.workers,
        device_id=spec.device.index if on_gpu else None,
        seed=spec.seed,
    )
    pipe.build()
    iterator = DALIGenericIterator(
        pipe, ["images", "labels", "bytes"], reader_name="Reader", auto_reset=True, last_batch_policy=LastBatchPolicy.DROP
    )
    counts = [0, 0]

    def epoch():
        for (out,) in iterator:
            counts[0] += len(out["bytes"])
            counts[1] += int(out["bytes"].sum())
            yield out["images"], out["labels"].view(-1).long()

    return BenchLoader(_forever(epoch, "dali-large"), lambda: tuple(counts), spec.effective_batch, variant=variant)


def _dali_ba_timm(index: SampleIndex, spec: BenchSpec, **options) -> BenchLoader:
    """dali-ba as timm's ``train.py --dali-ba --batch-augment M`` builds it (``dali_ba.timm``): timm's
    RandAugment per replica, timm's ``RandomErasing`` (``pixel``) on the batch."""
    from ..timm import create_loader

    loader = create_loader(index, spec.image_size, spec.batch_size, is_training=True, auto_augment=spec.recipe,
                           interpolation=spec.interpolation, re_prob=spec.random_erase, re_mode="pixel",
                           batch_augment=spec.aug_repeats, img_dtype=spec.dtype, device=spec.device,
                           num_workers=spec.workers, seed=spec.seed, channels_last=spec.channels_last, num_shards=1,
                           shard_id=0, **options)
    return _bench_loader(loader, spec)


def _dali_policy(spec: BenchSpec):
    """NVIDIA's ``auto_aug`` policy of ``spec.recipe`` (a function of a DALI node), or ``None`` for ``imagenet``."""
    from ..recipes import _auto_augment, _rand_augment, _trivial_augment

    if spec.recipe == "imagenet":
        return None
    if spec.recipe == "randaugment":
        return functools.partial(_rand_augment, magnitude=spec.ra_magnitude)
    return {"trivialaugment": _trivial_augment, "autoaugment": _auto_augment}[spec.recipe]


# -- torchvision --------------------------------------------------------------------------------


def _train_transform(spec: BenchSpec, *, on_tensors: bool = False):
    """torchvision's reference recipe (its ``presets.ClassificationPresetTrain``): the crop and
    flip, the policy of ``spec.recipe`` with the same interpolation, to a tensor, normalized, and
    random erasing; on PIL images (``on_tensors``: on uint8 tensors, decoded already)."""
    from torchvision.transforms import InterpolationMode, v2

    if is_timm_recipe(spec.recipe):
        if on_tensors:
            raise ValueError(f"recipe {spec.recipe}: timm's RandAugment runs on PIL images, not on decoded tensors")
        return _timm_transform(spec, prefetcher=False)
    interpolation = InterpolationMode(spec.interpolation)
    policy = {
        "imagenet": [],
        "trivialaugment": [v2.TrivialAugmentWide(interpolation=interpolation)],
        "randaugment": [v2.RandAugment(magnitude=spec.ra_magnitude, interpolation=interpolation)],
        "autoaugment": [v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET, interpolation=interpolation)],
    }[spec.recipe]
    return v2.Compose(
        [
            v2.RandomResizedCrop(spec.image_size, scale=RRC_SCALE, ratio=RRC_RATIO, interpolation=interpolation,
                                 antialias=True),
            v2.RandomHorizontalFlip(),
            *policy,
            *([] if on_tensors else [v2.PILToTensor()]),
            v2.ToDtype(spec.dtype, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            *([v2.RandomErasing(spec.random_erase, value=0)] if spec.random_erase else []),
        ]
    )


def _timm_transform(spec: BenchSpec, *, prefetcher: bool):
    """timm's training transform for ``spec`` (``create_transform``, as ``train.py`` builds it with
    these flags): the crop, the flip, timm's RandAugment; to a uint8 tensor for the prefetcher, or
    else normalized and erased (``pixel``) per sample."""
    from timm.data import create_transform
    from timm.data.auto_augment import AutoAugment, RandAugment

    transform = create_transform(spec.image_size, is_training=True, auto_augment=spec.recipe,
                                 interpolation=spec.interpolation, re_prob=0.0 if prefetcher else spec.random_erase,
                                 re_mode="pixel", use_prefetcher=prefetcher, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for step in transform.transforms:
        ops = step.ops if isinstance(step, RandAugment) else [op for sub in step.policy for op in sub] \
            if isinstance(step, AutoAugment) else []
        for op in ops:
            if op.name.startswith("Posterize"):
                op.aug_fn = posterize_zero_bits_black
    return transform


def posterize_zero_bits_black(image, bits_to_keep, **_):
    """timm's ``posterize`` with 0 bits giving black, as Pillow before 13 gave: timm 1.0.31's ``inc1``
    recipes and its ``v0`` policy ask for 0 bits, which Pillow 13 refuses (``dali_ba.timm_augment``
    does the same)."""
    from PIL import ImageOps

    if bits_to_keep >= 8:
        return image
    if bits_to_keep <= 0:
        return Image.new(image.mode, image.size)
    return ImageOps.posterize(image, bits_to_keep)


class _Files(torch.utils.data.Dataset):
    """ImageFolder's work per item: read the file, PIL-decode it, transform it ``repeats`` times.

    Returns ``(image, label, encoded_bytes)``. ``repeats == 1`` gives a ``[3,S,S]`` image; more
    gives ``[repeats,3,S,S]`` from one decode (the paper's reference style). ``decode=False``
    gives the raw bytes, for decoding on the GPU.
    """

    def __init__(self, index: SampleIndex, transform, repeats: int = 1, decode: bool = True):
        self.files, self.labels = index.files, index.labels
        self.transform, self.repeats, self.decode = transform, repeats, decode

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with open(self.files[i], "rb") as f:
            data = f.read()
        label = int(self.labels[i])
        if not self.decode:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), label, len(data)
        return decoded_item(data, label, self.transform, self.repeats)


def decoded_item(data: bytes, label: int, transform, repeats: int):
    """An encoded image PIL-decoded once and transformed ``repeats`` times: ``(image, label,
    encoded_bytes)``, the image ``[3,S,S]`` for one repeat, else ``[repeats,3,S,S]``. The work per
    sample of ``torch-once`` and of the peers (``peers.py``)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if repeats == 1:
        return transform(image), label, len(data)
    return torch.stack([transform(image) for _ in range(repeats)]), label, len(data)


class _Counted:
    """Adds up the ``encoded_bytes`` of every delivered batch: (files read, bytes read)."""

    def __init__(self):
        self.files = self.bytes = 0

    def add(self, encoded_bytes) -> None:
        self.files += len(encoded_bytes)
        self.bytes += int(sum(encoded_bytes))

    def __call__(self):
        return self.files, self.bytes


class _RepeatSampler(torch.utils.data.Sampler):
    """Repeated augmentation (timm's RepeatAugSampler on one rank): each index M times in a row."""

    def __init__(self, num_samples: int, repeats: int, seed: int):
        self.num_samples, self.repeats, self.seed, self.epoch = num_samples, repeats, seed, 0

    def __len__(self):
        return self.num_samples * self.repeats

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.num_samples, generator=generator)
        return iter(order.repeat_interleave(self.repeats).tolist())


def _data_loader(dataset, spec: BenchSpec, batch_size: int, **kwargs):
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=spec.workers,
        persistent_workers=spec.workers > 0,
        pin_memory=spec.device.type == "cuda",
        drop_last=True,
        generator=torch.Generator().manual_seed(spec.seed),
        multiprocessing_context="forkserver" if spec.workers > 0 else None,
        **kwargs,
    )


def _to_device(spec: BenchSpec, images, labels):
    return images.to(spec.device, non_blocking=True), labels.to(spec.device, non_blocking=True)


def _shut_down_workers(loader) -> None:
    """Ends a DataLoader's persistent worker processes now, not when the loader is collected."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


def _torch_loader(loader, spec: BenchSpec, unique_per_step: int, name: str, release=lambda: None) -> BenchLoader:
    """A DataLoader (or a peer's) of ``(images, labels, encoded_bytes)`` batches as a BenchLoader;
    ``release`` runs after its workers are shut down."""
    counted = _Counted()

    def epoch():
        for images, labels, encoded_bytes in loader:
            counted.add(encoded_bytes)
            if images.dim() == 5:  # [B, M, 3, S, S] from one decode per sample
                images, labels = images.flatten(0, 1), labels.repeat_interleave(images.shape[1])
            yield _to_device(spec, images, labels)

    def shut_down():
        _shut_down_workers(loader)
        release()

    bench_loader = BenchLoader(_forever(epoch, name), counted, unique_per_step, release=shut_down)
    bench_loader.state_dict = getattr(loader, "state_dict", None)  # the peers that can save a position
    return bench_loader


def torch_once(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    dataset = _Files(index, _train_transform(spec), repeats=spec.aug_repeats)
    return _torch_loader(_data_loader(dataset, spec, spec.batch_size, shuffle=True), spec, spec.batch_size, "torch-once")


def torch_repeat(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    dataset = _Files(index, _train_transform(spec))
    sampler = _RepeatSampler(len(dataset), spec.aug_repeats, spec.seed)
    return _torch_loader(_data_loader(dataset, spec, spec.effective_batch, sampler=sampler), spec, spec.batch_size,
                         "torch-repeat")


def torch_large(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    dataset = _Files(index, _train_transform(spec))
    return _torch_loader(_data_loader(dataset, spec, spec.effective_batch, shuffle=True), spec, spec.effective_batch,
                         "torch-large")


def timm_loader(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    """timm's loader as ``train.py --aug-repeats M`` builds it on one rank: timm's ``RepeatAugSampler``
    (each image M times in the batch, each copy read and decoded again), its per-sample transform
    in DataLoader workers, its ``PrefetchLoader`` (normalize and ``RandomErasing`` on the device)."""
    from timm.data.distributed_sampler import RepeatAugSampler
    from timm.data.loader import PrefetchLoader

    if not is_timm_recipe(spec.recipe):
        raise ValueError(f"loader timm runs timm's recipes (--recipe rand-m9-mstd0.5-inc1), but the recipe is {spec.recipe}")
    dataset = _Files(index, _timm_transform(spec, prefetcher=True))
    sampler = RepeatAugSampler(dataset, num_replicas=1, rank=0, num_repeats=spec.aug_repeats)
    loader = _data_loader(dataset, spec, spec.effective_batch, sampler=sampler)
    counted = _Counted()

    class Counting:  # what PrefetchLoader iterates: (images, labels), with the bytes counted on the way
        def __iter__(self):
            for images, labels, encoded_bytes in loader:
                counted.add(encoded_bytes)
                yield images, labels

    prefetcher = PrefetchLoader(Counting(), mean=IMAGENET_MEAN, std=IMAGENET_STD, device=spec.device, img_dtype=spec.dtype,
                                re_prob=spec.random_erase, re_mode="pixel")

    def epoch():
        yield from prefetcher
        sampler.set_epoch(sampler.epoch + 1)  # as train.py does between epochs

    return BenchLoader(_forever(epoch, "timm"), counted, spec.batch_size, release=lambda: _shut_down_workers(loader))


def torch_gpu(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    """Workers read bytes; torchvision decodes on ``spec.device`` (nvJPEG on CUDA) and transforms there."""
    from torchvision.io import ImageReadMode, decode_jpeg

    dataset = _Files(index, None, decode=False)
    loader = _data_loader(dataset, spec, spec.batch_size, shuffle=True, collate_fn=_as_lists)
    counted = _Counted()
    transform = _train_transform(spec, on_tensors=True)
    device = "cuda" if spec.device.type == "cuda" else "cpu"

    def epoch():
        for encoded, labels, encoded_bytes in loader:
            counted.add(encoded_bytes)
            decoded = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)
            images = torch.stack([transform(image) for image in decoded for _ in range(spec.aug_repeats)])
            labels = torch.tensor(labels).repeat_interleave(spec.aug_repeats)
            yield images.to(spec.device), labels.to(spec.device)

    return BenchLoader(_forever(epoch, "torch-gpu"), counted, spec.batch_size, release=lambda: _shut_down_workers(loader))


def synthetic(index: SampleIndex, spec: BenchSpec) -> BenchLoader:
    generator = torch.Generator(device=spec.device).manual_seed(spec.seed)
    shape = (spec.effective_batch, 3, spec.image_size, spec.image_size)
    images = torch.randn(shape, generator=generator, device=spec.device).to(spec.dtype)
    labels = torch.randint(len(index.classes), (spec.effective_batch,), generator=generator, device=spec.device)
    batches = iter(lambda: (images, labels), None)
    return BenchLoader(batches, lambda: (0, 0), 0)


def _as_lists(items):
    return [list(column) for column in zip(*items)]


@dataclass(frozen=True)
class Entry:
    """One loader of the bench.

    Attributes:
        name: What ``--loaders`` calls it.
        factory: ``factory(index, spec) -> BenchLoader``.
        reads: The data it reads: ``"folder"`` (the ImageFolder tree), ``"tar copy"``,
            ``"Parquet copy"``, ``"MDS copy"`` and ``"litdata copy"`` (made once from the folder,
            cached; ``runner.COPIES``), ``"url"`` (the bench's ``--url``).
        what: What it does per step (the CLI's help, the report).
        default_on: The devices (``"cpu"``, ``"cuda"``) where it runs when ``--loaders`` is not given.
        needs_gpu: Only on a CUDA device.
    """

    name: str
    factory: Callable[[SampleIndex, BenchSpec], BenchLoader]
    reads: str
    what: str
    default_on: tuple[str, ...] = ()
    needs_gpu: bool = False


REGISTRY: dict[str, Entry] = {entry.name: entry for entry in (
    Entry("dali-ba", dali_ba, "folder", "this project: read + decode B images once, M replicas each", ("cpu", "cuda")),
    Entry("dali-large", dali_large, "folder", "NVIDIA's DALI ResNet-50 pipeline reading B*M images", ("cpu", "cuda")),
    Entry("torch-once", torch_once, "folder", "torchvision DataLoader: PIL decode once, M transforms", ("cpu", "cuda")),
    Entry("torch-repeat", torch_repeat, "folder", "repeated-augmentation sampler: each replica read and decoded again",
          ("cpu", "cuda")),
    Entry("torch-large", torch_large, "folder", "torchvision DataLoader reading B*M images", ("cpu", "cuda")),
    Entry("torch-gpu", torch_gpu, "folder", "DataLoader reads bytes; nvJPEG decode and transforms on the GPU", ("cuda",),
          needs_gpu=True),
    Entry("timm", timm_loader, "folder", "timm's loader for a timm --recipe: RepeatAugSampler (each copy read and "
          "decoded again), timm's transforms, its PrefetchLoader"),
    Entry("synthetic", synthetic, "folder", "no input work: one batch already on the device (the model alone)"),
    Entry("dali-ba-tar", dali_ba, "tar copy", "dali-ba over a tar-shard copy of the data (made once)"),
    Entry("dali-ba-full", functools.partial(dali_ba, roi_decode=False), "folder", "dali-ba decoding whole images"),
    Entry("dali-ba-dali", functools.partial(dali_ba, resample="dali"), "folder",
          "dali-ba making the replicas in DALI, not torch, on the CPU"),
    Entry("dali-ba-parquet", dali_ba, "Parquet copy",
          "dali-ba over a Parquet copy in Hugging Face's layout (made once; needs pyarrow)"),
    Entry("dali-ba-url", dali_ba, "url", "dali-ba over --url: tar shards or Parquet files where they live"),
    Entry("wds", peers.wds, "tar copy", "WebDataset over the tar copy: shard + sample shuffle, PIL decode once, "
          "M transforms (dali-ba[peers])"),
    Entry("streaming", peers.streaming, "MDS copy", "MosaicML Streaming over an MDS copy (made once): PIL decode "
          "once, M transforms (dali-ba[peers])"),
    Entry("litdata", peers.litdata, "litdata copy", "LitData over an optimized copy (made once): PIL decode once, "
          "M transforms (dali-ba[peers])"),
    Entry("wds-url", peers.wds, "url", "WebDataset over --url's tar shards (a curl per shard; dali-ba[peers])"),
)}
#: Every loader's name, in the order the help lists them.
LOADERS = tuple(REGISTRY)


def default_loaders(device: str, *, url: bool = False) -> tuple[str, ...]:
    """The loaders that run on ``device`` (``"cpu"`` or ``"cuda"``) when none are named; with ``url``, those reading it too."""
    return tuple(e.name for e in REGISTRY.values() if device in e.default_on or (url and e.reads == "url"))


def reading(data: str) -> tuple[str, ...]:
    """The loaders that read ``data`` (see :attr:`Entry.reads`)."""
    return tuple(e.name for e in REGISTRY.values() if e.reads == data)
