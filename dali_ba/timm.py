"""timm's ``train.py`` through dali-ba: ``create_loader`` with timm's signature, a thin layer over the loaders.

timm's training script builds both loaders with ``timm.data.create_loader(dataset, input_size,
batch_size, is_training, ...)``. :func:`create_loader` here takes the same arguments and returns a
dali-ba loader that the script drives unchanged: each image read and decoded once, its replicas
augmented per replica, batches ``(input, target)`` on the device, normalized with the model's
mean and std, in ``img_dtype``, with timm's own ``RandomErasing`` and ``Mixup`` applied to the
``[B*M]`` batch as timm's ``PrefetchLoader`` and ``FastCollateMixup`` apply them.

What an argument cannot mean in dali-ba what it means in timm is refused with a ``ValueError``
naming the flag (see :data:`FLAG_MAP`); :func:`loader_factory` checks the script's own flags that
way right after they are parsed, before any data set is built. Nothing is dropped without a word.

Replicas, two ways (``train.py --dali-ba``):

- ``--aug-repeats K``: timm's repeated augmentation (DeiT, "ResNet strikes back"): each step
  ``-b / K`` images, K replicas each, so the model sees ``-b`` images a step as in timm, and an
  epoch has ``RepeatAugSampler``'s number of steps (:func:`repeat_aug_epoch`), on one process too
  (timm's sampler runs only distributed).
- ``--batch-augment M``: Batch Augmentation (Hoffer et al.): ``-b`` images, M replicas each.
"""

from __future__ import annotations

import functools
import logging
import math
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

from .config import EvalOptions, TrainOptions
from .loader import BatchAugmentLoader, LoaderWrapper
from .order import EpochPlan
from .recipes import INTERPOLATION, RANDOM, VAL_CROP_FRACTION
from .sources import SampleIndex, StringTable, scan_image_folder
from .timm_augment import is_timm_recipe

log = logging.getLogger(__name__)

#: timm's defaults for the crop's area and aspect ratio, which dali-ba's crop draws from.
DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)
#: timm's RandomErasing fill modes.
ERASE_MODES = ("const", "rand", "pixel")

#: What each of timm's ``train.py`` data flags becomes (the README's table is made from the same facts).
FLAG_MAP = {
    "--dali-ba": "the loaders are dali-ba's (dali_ba.timm.create_loader); without it the script is unchanged",
    "--aug-repeats K": "K replicas of -b / K images per step, and RepeatAugSampler's steps per epoch (one process too)",
    "--batch-augment M": "Batch Augmentation: -b images, M replicas each (implies --dali-ba; not with --aug-repeats)",
    "-b, --batch-size": "images the model sees per step with --aug-repeats; unique images with --batch-augment",
    "--validation-batch-size": "the val loader's batch size",
    "--data-dir, --train-split, --val-split, --class-map": "timm's own ImageFolder data set: its files, labels and class map",
    "--dataset": "'' (a folder) only; torch/, hfds/, hfids/, tfds/, wds/ and a tar of images are refused",
    "--input-size, --img-size, --crop-pct, --mean, --std, --interpolation": "the model's data config, as timm "
        "resolves it: the crop side, the val resize floor(size / crop_pct) and center crop, the normalization",
    "--train-interpolation": "the train crop's and timm's RandAugment ops' filter: bilinear, bicubic, nearest, "
                             "or random (timm's default: bilinear or bicubic drawn for each replica and op)",
    "--aa": "rand-m{M}-n{N}-mstd{S}-mmax{X}-p{P}-inc{0,1} (RandAugment) and original, originalr, v0, v0r[-mstd{S}] "
            "(AutoAugment): timm's draws, timm's own ops on the CPU, DALI's copies on a GPU (timm_graph.py: within "
            "one level, except Equalize, DALI's own, and bicubic warps, bilinear in DALI); augmix and 3a are refused",
    "--scale": "the random-resized crop's area range (crop_scale)",
    "--ratio": "timm's default (3/4 4/3) only; others are refused",
    "--hflip, --vflip": "the probabilities of a horizontal and a vertical flip of each replica",
    "--color-jitter, --color-jitter-prob": "torchvision's ColorJitter (brightness, contrast, saturation) after the crop "
                                           "and flip, each replica its own draws; off under --aa, as in timm; a hue is refused",
    "--grayscale-prob, --gaussian-blur-prob": "0 only; others are refused",
    "--reprob, --remode, --recount": "timm's RandomErasing on the normalized [B*M] batch, drawn for each replica",
    "--resplit, --aug-splits, --jsd-loss": "refused (AugMix's split batches)",
    "--mixup, --cutmix, --cutmix-minmax, --mixup-prob, --mixup-switch-prob, --mixup-mode, --smoothing":
        "timm's Mixup on each [B*M] batch, soft targets as timm gives them; --bce-loss unaffected",
    "--mixup-off-epoch": "loader.mixup_enabled, switched off as timm switches it",
    "--no-aug": "refused: every replica would be the same image",
    "--naflex-loader, --train-img-sizes, --train-batches-per-epoch, --epoch-repeats": "refused",
    "--train-num-samples, --val-num-samples, --input-img-mode": "refused (other data sets' options)",
    "--model-dtype": "float32 and float16 from the loader; bfloat16 cast from float32",
    "--channels-last": "the loader writes channels-last batches",
    "--seed": "the loader's seed (order and augmentations)",
    "-j, --workers": "num_threads, DALI's CPU threads (at least 1)",
    "--pin-mem, --no-prefetcher, --use-multi-epochs-loader, --worker-seeding": "no effect (batches arrive on the device); logged",
}


def repeat_aug_epoch(reps: int, batch_size: int):
    """The epoch of timm's ``RepeatAugSampler`` (``--aug-repeats K``) as an ``epoch_samples`` rule.

    ``RepeatAugSampler`` repeats each of N images K times, deals the copies over W ranks and gives
    each rank ``min(floor(N // 256 * 256 / W), ceil(N * K / W))`` of them per epoch
    (``ceil(N / W)`` for ``N < 256``), which timm's loader takes in full batches of ``batch_size``.
    The dali-ba loader takes ``batch_size / K`` distinct images per step, K replicas each: the
    same number of images per step and, with this many distinct samples per epoch (all ranks
    together), the same steps per epoch.
    """

    def epoch_samples(num_samples: int, num_shards: int) -> int:
        if num_samples >= 256:
            per_rank = num_samples // 256 * 256 // num_shards
        else:
            per_rank = math.ceil(num_samples / num_shards)
        per_rank = min(per_rank, math.ceil(num_samples * reps / num_shards))
        steps = per_rank // batch_size
        if steps == 0:
            raise ValueError(f"--aug-repeats {reps}: timm's RepeatAugSampler gives each of {num_shards} rank(s) "
                             f"{per_rank} samples per epoch of N={num_samples}, less than one batch of -b {batch_size}")
        return min(num_samples, steps * num_shards * (batch_size // reps))

    return epoch_samples


def create_loader(
        dataset,
        input_size,
        batch_size: int,
        is_training: bool = False,
        no_aug: bool = False,
        re_prob: float = 0.,
        re_mode: str = 'const',
        re_count: int = 1,
        re_split: bool = False,
        train_crop_mode: str | None = None,
        scale=None,
        ratio=None,
        hflip: float = 0.5,
        vflip: float = 0.,
        color_jitter=0.4,
        color_jitter_prob: float | None = None,
        grayscale_prob: float = 0.,
        gaussian_blur_prob: float = 0.,
        auto_augment: str | None = None,
        num_aug_repeats: float = 0,
        num_aug_splits: int = 0,
        interpolation: str = 'bilinear',
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        num_workers: int = 1,
        distributed: bool = False,
        crop_pct: float | None = None,
        crop_mode: str | None = None,
        crop_border_pixels: int | None = None,
        collate_fn=None,
        pin_memory: bool = False,
        fp16: bool = False,
        img_dtype: torch.dtype = torch.float32,
        device='cuda',
        use_prefetcher: bool = True,
        use_multi_epochs_loader: bool = False,
        persistent_workers: bool = True,
        worker_seeding: str = 'all',
        tf_preprocessing: bool = False,
        input_size_choices=None,
        batch_size_choices=None,
        batch_choice_weights=None,
        batch_choice_seed: int = 0,
        batch_choice_schedule: str = 'constant',
        batch_schedule_epochs=None,
        batch_schedule_spread: float = 0.65,
        batch_schedule_random_mix: float = 0.1,
        num_batches: int | None = None,
        *,
        batch_augment: int = 0,
        channels_last: bool = False,
        seed: int | None = None,
        **options,
) -> "TimmLoader":
    """A dali-ba loader that takes timm's ``create_loader`` arguments, with timm's meaning.

    Args:
        dataset: timm's data set (``create_dataset('', root, split)``: an ImageFolder reader; its
            files, labels and ``--class-map`` are taken as they are), a folder in ImageFolder
            layout, or a dali-ba ``SampleIndex``.
        (timm's arguments): As ``timm.data.create_loader``; what dali-ba cannot do as timm does is
            refused (:data:`FLAG_MAP`). The evaluation loader (``is_training=False``) ignores the
            training arguments, as timm's does.
        batch_augment: M replicas of each of ``batch_size`` images per step (Batch Augmentation);
            ``0`` is off. Not with ``num_aug_repeats``. Training only.
        channels_last: Write channels-last batches (``train.py --channels-last``).
        seed: The loader's seed (``None`` draws one, shared by all ranks).
        **options: More dali-ba loader options (``on_error``, ``read_threads``, ``roi_decode``, ...).

    Returns:
        A :class:`TimmLoader`.

    Raises:
        ValueError: An argument dali-ba does not honour as timm does; the message names it.
    """
    size = _square_size(input_size)
    if fp16:
        img_dtype = torch.float16
    dtype = img_dtype if img_dtype in (torch.float32, torch.float16) else torch.float32
    if img_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"img_dtype {img_dtype}: dali-ba gives float32, float16 or (cast) bfloat16 batches")
    _log_no_effect({"--pin-mem": pin_memory, "--no-prefetcher": not use_prefetcher,
                    "--use-multi-epochs-loader": use_multi_epochs_loader, "--worker-seeding": worker_seeding != 'all'})
    _refuse_set({"tf_preprocessing": tf_preprocessing, "--train-img-sizes": input_size_choices,
                 "--train-batches-per-epoch": num_batches})
    index = _sample_index(dataset)
    read = dict(image_size=size, device=str(device), dtype=dtype, channels_last=channels_last, mean=tuple(mean),
                std=tuple(std), num_threads=max(1, num_workers) if num_workers is not None else None, **options)
    if not is_training:
        if crop_mode not in (None, 'center'):
            raise ValueError(f"crop_mode {crop_mode!r} (--crop-mode): dali-ba's evaluation resizes the shorter side "
                             f"and center-crops ('center', timm's default); 'squash' and 'border' are refused")
        _refuse_set({"crop_border_pixels": crop_border_pixels})
        _check_interpolation("--interpolation", interpolation)
        resize = math.floor(size / (crop_pct or VAL_CROP_FRACTION))  # timm's transforms_imagenet_eval
        eval_options = EvalOptions(batch_size=batch_size, resize_size=resize, interpolation=interpolation, **read)
        loader = BatchAugmentLoader(index, **eval_options.loader_options())
        _check_equal_steps(loader)
        return TimmLoader(loader, dataset, img_dtype=img_dtype)
    train = train_loader_options(
        batch_size, no_aug=no_aug, re_prob=re_prob, re_mode=re_mode, re_count=re_count, re_split=re_split,
        train_crop_mode=train_crop_mode, scale=scale, ratio=ratio, hflip=hflip, vflip=vflip, color_jitter=color_jitter,
        color_jitter_prob=color_jitter_prob, grayscale_prob=grayscale_prob, gaussian_blur_prob=gaussian_blur_prob,
        auto_augment=auto_augment, num_aug_repeats=num_aug_repeats, num_aug_splits=num_aug_splits,
        interpolation=interpolation, collate_fn=collate_fn, batch_augment=batch_augment)
    options = TrainOptions(**read, **train, seed=seed, interpolation=interpolation)
    loader = BatchAugmentLoader(index, **options.loader_options())
    erasing = None
    if re_prob > 0:
        from timm.data.random_erasing import RandomErasing

        erasing = RandomErasing(re_prob, mode=re_mode, max_count=re_count, num_splits=0, device=loader.device)
    return TimmLoader(loader, dataset, img_dtype=img_dtype, erasing=erasing, mixup=collate_fn)


def train_loader_options(batch_size: int, *, no_aug=False, re_prob=0., re_mode='const', re_count=1, re_split=False,
                         train_crop_mode=None, scale=None, ratio=None, hflip=0.5, vflip=0., color_jitter=0.4,
                         color_jitter_prob=None, grayscale_prob=0., gaussian_blur_prob=0., auto_augment=None,
                         num_aug_repeats=0, num_aug_splits=0, interpolation='bilinear', collate_fn=None,
                         batch_augment=0) -> dict:
    """Checks timm's training arguments; returns the dali-ba train loader's options they make. Reads nothing.

    Raises:
        ValueError: An argument dali-ba does not honour as timm does, named by its ``train.py`` flag.
    """
    if no_aug:
        raise ValueError("--no-aug: every replica would be the same image, and dali-ba's replicas exist to differ; "
                         "train without --dali-ba, or drop --no-aug")
    if train_crop_mode not in (None, 'rrc'):
        raise ValueError(f"--train-crop-mode {train_crop_mode}: dali-ba crops as timm's 'rrc' (RandomResizedCrop) only")
    if ratio is not None and (len(ratio) != 2 or not np.allclose(ratio, DEFAULT_RATIO)):
        raise ValueError(f"--ratio {' '.join(map(str, ratio))}: dali-ba's crop draws timm's default aspect ratios "
                         f"3/4 4/3; others are refused")
    if scale is not None and (len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"--scale {' '.join(map(str, scale))}: the crop's area range, two fractions 0 < lo <= hi <= 1")
    for flag, value in (("--hflip", hflip), ("--vflip", vflip)):
        if not 0 <= value <= 1:
            raise ValueError(f"{flag} {value}: the probability of a flip, in [0, 1]")
    aa = auto_augment or None
    if aa is not None and not is_timm_recipe(aa):
        raise ValueError(f"--aa {aa}: dali-ba has timm's RandAugment ('rand-m9-mstd0.5-inc1') and AutoAugment "
                         f"policies (original, originalr, v0, v0r, with -mstd); augmix and 3a are refused")
    several = isinstance(color_jitter, (list, tuple))
    if several and len(color_jitter) == 4 and color_jitter[3]:
        raise ValueError(f"--color-jitter {' '.join(map(str, color_jitter))}: a hue jitter (the fourth value) is not "
                         f"offered by dali-ba; pass three values")
    jitter = tuple(color_jitter)[:3] if several else (color_jitter or 0.0)  # brightness, contrast, saturation
    _refuse_set({"--grayscale-prob": grayscale_prob, "--gaussian-blur-prob": gaussian_blur_prob,
                 "--aug-splits": num_aug_splits, "--resplit": re_split})
    if re_mode not in ERASE_MODES:
        raise ValueError(f"--remode {re_mode}: timm's RandomErasing modes are {', '.join(ERASE_MODES)}")
    if not 0 <= re_prob <= 1 or (re_prob > 0 and (isinstance(re_count, bool) or not isinstance(re_count, int) or re_count < 1)):
        raise ValueError(f"--reprob {re_prob} --recount {re_count}: a probability in [0, 1] and a count >= 1")
    _check_interpolation("--train-interpolation", interpolation, training=True)
    if collate_fn is not None and not _is_timm_mixup(collate_fn):
        raise ValueError(f"collate_fn {type(collate_fn).__name__}: dali-ba batches by itself; it takes timm's "
                         f"Mixup / FastCollateMixup (--mixup, --cutmix) and applies it to each [B*M] batch")
    repeats = num_aug_repeats or 0
    if repeats and batch_augment:
        raise ValueError(f"--aug-repeats {num_aug_repeats} and --batch-augment {batch_augment}: pick one (K replicas of "
                         f"-b / K images, or -b images times M)")
    options = dict(recipe=aa or "imagenet", crop_scale=tuple(scale) if scale is not None else DEFAULT_SCALE,
                   hflip=float(hflip), vflip=float(vflip))
    if aa is None and any(jitter if several else (jitter,)):  # timm turns it off under --aa ('3a' is refused above)
        options.update(color_jitter=jitter, color_jitter_prob=color_jitter_prob)
    if repeats:
        if float(repeats) != int(repeats) or repeats < 1:
            raise ValueError(f"--aug-repeats {num_aug_repeats}: dali-ba repeats each image a whole number of times")
        reps = int(repeats)
        if batch_size % reps:
            raise ValueError(f"--aug-repeats {reps}: -b {batch_size} is not divisible by {reps}; each step takes "
                             f"-b / {reps} images, {reps} replicas of each")
        options.update(batch_size=batch_size // reps, aug_repeats=reps, epoch_samples=repeat_aug_epoch(reps, batch_size))
    else:
        if isinstance(batch_augment, bool) or not isinstance(batch_augment, int) or batch_augment < 0:
            raise ValueError(f"--batch-augment {batch_augment}: M, replicas per image, an int >= 1 (0 is off)")
        options.update(batch_size=batch_size, aug_repeats=max(1, batch_augment))
    return options


class TimmLoader(LoaderWrapper):
    """A dali-ba loader as timm's ``train.py`` drives its own: timm's erasing and mixup on each batch.

    Iterating gives ``(input, target)``: ``input`` ``[B*M, 3, S, S]`` on the device, normalized,
    in ``img_dtype``; ``target`` ``[B*M]`` labels, or ``[B*M, classes]`` soft targets when a mixup
    is given and enabled. As in timm, mixup comes first (it commutes with the normalization, which
    ``FastCollateMixup`` runs after it), then ``RandomErasing`` (each replica its own draw). timm's
    ``Mixup`` pairs image ``i`` with image ``N-1-i`` of the batch; in sample-major order that is
    always another sample, except the middle sample's replicas when B is odd (timm mixes that
    image with itself).

    ``len``, ``sampler`` (``set_epoch``), ``batch_sampler`` (``None``), ``state_dict`` and the rest
    are the dali-ba loader's (:attr:`loader`); ``dataset`` is the data set passed in.
    """

    def __init__(self, loader: BatchAugmentLoader, dataset, *, img_dtype=torch.float32, erasing=None, mixup=None):
        super().__init__(loader)
        self.dataset = dataset
        self._cast = img_dtype if img_dtype != loader.config.dtype else None
        self.erasing = erasing
        self.mixup = mixup

    @property
    def mixup_enabled(self) -> bool:
        """Whether the mixup runs (``train.py`` switches it off at ``--mixup-off-epoch``)."""
        return self.mixup is not None and self.mixup.mixup_enabled

    @mixup_enabled.setter
    def mixup_enabled(self, enabled: bool) -> None:
        if self.mixup is not None:
            self.mixup.mixup_enabled = enabled

    def __iter__(self):
        mix = None
        if self.mixup is not None:  # timm's tensor Mixup; FastCollateMixup's own __call__ collates samples
            from timm.data.mixup import Mixup

            mix = Mixup.__call__
        for images, labels in self.loader:
            if self._cast is not None:
                images = images.to(self._cast)
            if mix is not None and self.mixup.mixup_enabled:
                images, labels = mix(self.mixup, images, labels)
            if self.erasing is not None:
                images = self.erasing(images)
            yield images, labels


def loader_factory(args: Namespace):
    """Checks ``train.py``'s data flags in ``args`` and returns its ``create_loader``: this module's, bound to them.

    Called right after the script parses its flags, so a flag dali-ba refuses fails before any
    data set is built.

    Raises:
        ValueError: A flag dali-ba does not honour as timm does; the message names it.
    """
    flag = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    if flag("dataset"):
        raise ValueError(f"--dataset {args.dataset}: dali-ba reads timm's ImageFolder data sets (--dataset '', a "
                         f"folder per split); for tar shards and Parquet use dali-ba's own loaders")
    for name in ("naflex_loader", "train_img_sizes", "train_batches_per_epoch", "epoch_repeats", "train_num_samples",
                 "val_num_samples", "jsd_loss"):
        if flag(name):
            raise ValueError(f"--{name.replace('_', '-')} {flag(name)}: refused with --dali-ba (dali-ba does not do "
                             f"it as timm does)")
    if flag("input_img_mode") not in (None, "RGB"):
        raise ValueError(f"--input-img-mode {args.input_img_mode}: dali-ba decodes RGB")
    interpolation = flag("train_interpolation") or "bilinear"  # empty: the model's, checked when the loader is built
    mixup = None
    if (flag("mixup", 0) or 0) > 0 or (flag("cutmix", 0) or 0) > 0 or flag("cutmix_minmax") is not None:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, cutmix_minmax=args.cutmix_minmax,
                      prob=args.mixup_prob, switch_prob=args.mixup_switch_prob, mode=args.mixup_mode,
                      label_smoothing=args.smoothing, num_classes=args.num_classes or 1000)
    train_loader_options(
        args.batch_size, no_aug=flag("no_aug", False), re_prob=flag("reprob", 0.), re_mode=flag("remode", "pixel"),
        re_count=flag("recount", 1), re_split=flag("resplit", False), train_crop_mode=flag("train_crop_mode"),
        scale=flag("scale"), ratio=flag("ratio"), hflip=flag("hflip", 0.5), vflip=flag("vflip", 0.),
        color_jitter=flag("color_jitter", 0.4), color_jitter_prob=flag("color_jitter_prob"),
        grayscale_prob=flag("grayscale_prob"), gaussian_blur_prob=flag("gaussian_blur_prob"), auto_augment=flag("aa"),
        num_aug_repeats=flag("aug_repeats", 0), num_aug_splits=flag("aug_splits", 0), interpolation=interpolation,
        collate_fn=mixup, batch_augment=flag("batch_augment", 0) or 0)
    return functools.partial(create_loader, batch_augment=flag("batch_augment", 0) or 0,
                             channels_last=bool(flag("channels_last", False)), seed=flag("seed"))


# -- helpers ---------------------------------------------------------------------------------------


def _sample_index(dataset) -> SampleIndex:
    """The samples of timm's ImageFolder data set (its reader's files, labels and class map), or of a folder."""
    if isinstance(dataset, SampleIndex):
        return dataset
    if isinstance(dataset, (str, Path)):
        return scan_image_folder(dataset)
    reader = getattr(dataset, "reader", None)
    samples, class_to_idx = getattr(reader, "samples", None), getattr(reader, "class_to_idx", None)
    if samples is None or class_to_idx is None or (len(samples) and not isinstance(samples[0][0], (str, Path))):
        raise ValueError(f"dataset {type(dataset).__name__} ({type(reader).__name__}): dali-ba reads timm's ImageFolder "
                         f"data sets (create_dataset('', root, split)) or a folder; a tar of images, torch/, hfds/, "
                         f"tfds/ and wds/ data sets are refused (dali-ba's TarShardLoader reads tar shards)")
    if not len(samples):
        raise ValueError(f"dataset under {getattr(reader, 'root', '?')!r} has no images")
    files, labels = zip(*samples)
    classes = [name for name, _ in sorted(class_to_idx.items(), key=lambda item: item[1])]
    return SampleIndex(root=Path(getattr(reader, "root", ".")), files=StringTable.from_strings(list(map(str, files))),
                       labels=np.asarray(labels, dtype=np.int64), classes=tuple(classes), class_to_idx=dict(class_to_idx))


def _square_size(input_size) -> int:
    """The side of timm's ``input_size`` (an int, ``(H, W)`` or ``(C, H, W)``); square RGB only."""
    if isinstance(input_size, int):
        return input_size
    dims = tuple(input_size)
    if len(dims) == 3 and dims[0] != 3:
        raise ValueError(f"--input-size {' '.join(map(str, dims))}: dali-ba decodes 3 channels (RGB)")
    if len(dims) not in (2, 3) or dims[-1] != dims[-2]:
        raise ValueError(f"--input-size {' '.join(map(str, dims))}: dali-ba makes square images; pass H == W")
    return int(dims[-1])


def _check_interpolation(flag: str, mode: str, *, training: bool = False) -> None:
    if training and mode == RANDOM:  # timm's default: bilinear or bicubic for each replica
        return
    if mode not in INTERPOLATION:
        raise ValueError(f"{flag} {mode}: dali-ba resizes with {', '.join(INTERPOLATION)} (antialiased when shrinking)")


def _is_timm_mixup(collate_fn) -> bool:
    try:
        from timm.data.mixup import Mixup
    except ImportError:
        return False
    return isinstance(collate_fn, Mixup)


def _refuse_set(values: dict) -> None:
    """Refuses every flag (or argument) of ``values`` that is set (not ``None``, ``0`` or ``False``), by its name."""
    for name, value in values.items():
        if value:
            raise ValueError(f"{name} {value}: refused with dali-ba, which does not do it as timm does")


def _log_no_effect(values: dict) -> None:
    """Logs every flag of ``values`` that is set and means nothing to dali-ba's loaders."""
    for flag, value in values.items():
        if value:
            log.info("%s has no effect with dali-ba: its batches arrive on the device, batched by DALI", flag)


def _check_equal_steps(loader: BatchAugmentLoader) -> None:
    """timm's ``validate()`` reduces every batch over the ranks, so every rank must have as many batches."""
    config = loader.config
    if config.num_shards == 1:
        return
    steps = {len(EpochPlan(num_samples=len(loader.dataset), batch_size=config.batch_size, shuffle=False, seed=config.seed,
                           drop_last=False, shard_id=shard, num_shards=config.num_shards))
             for shard in range(config.num_shards)}
    if len(steps) > 1:
        raise ValueError(f"the {len(loader.dataset)} validation images on {config.num_shards} ranks give some ranks "
                         f"{max(steps)} batches of {config.batch_size} and others {min(steps)}, and timm's validate() "
                         f"reduces every batch over the ranks (it would wait forever); change --validation-batch-size")
