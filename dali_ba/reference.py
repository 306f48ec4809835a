"""torchvision's reference training script, flag by flag: a thin layer over ``imagenet_loaders``.

Users who train with torchvision's ``references/classification/train.py`` swap its data loading
for ``reference_loaders(args, aug_repeats=M)``. It reads the script's own ``argparse`` namespace,
maps every flag that shapes what the model sees onto the loaders (see :data:`FLAG_MAP`), and
refuses, with a message naming the flag, what dali-ba cannot do the same way; nothing is dropped
without a word. MixUp and CutMix run on the ``[B*M]`` batch with ``torchvision.transforms.v2``
(:class:`ReplicaMix`), where torchvision's script runs them in its ``collate_fn``.
"""

from __future__ import annotations

import logging
import os
from argparse import Namespace

import torch

from .imagenet import imagenet_loaders
from .loader import LoaderWrapper
from .recipes import INTERPOLATION

log = logging.getLogger(__name__)

#: torchvision's ``--auto-augment`` policies that dali-ba has, and the recipe that is each.
AUTO_AUGMENT = {None: "imagenet", "ra": "randaugment", "ta_wide": "trivialaugment", "imagenet": "autoaugment"}

#: What each of the script's flags becomes (the README's table is made from the same facts).
FLAG_MAP = {
    "--data-path": "root: train/ and val/ in ImageFolder layout",
    "-b, --batch-size": "batch_size (B unique images per rank; the model sees B*M)",
    "-j, --workers": "num_threads, DALI's CPU threads (at least 1)",
    "--train-crop-size": "image_size of the train loader",
    "--val-crop-size": "image_size of the val loader",
    "--val-resize-size": "resize_size of the val loader (the shorter side before the center crop)",
    "--interpolation": "interpolation of both loaders: bilinear, bicubic, nearest (antialiased when shrinking)",
    "--auto-augment": "ra -> randaugment, ta_wide -> trivialaugment, imagenet -> autoaugment; "
                      "augmix, cifar10, svhn are refused",
    "--ra-magnitude": "ra_magnitude of the randaugment recipe (with --auto-augment ra)",
    "--mixup-alpha, --cutmix-alpha": "ReplicaMix: transforms.v2 MixUp / CutMix on each [B*M] batch",
    "--random-erase": "random_erase of the train loader: torchvision's RandomErasing, drawn for each replica",
    "--ra-sampler, --ra-reps": "K = --ra-reps replicas (pass --aug-repeats K) of batch-size / K images per step, "
                               "and RASampler's steps per epoch (epoch_samples: a fresh ~N/K selection each epoch)",
    "--weights with --test-only": "the val loader takes the weights' own crop, resize and interpolation "
                                  "(get_weight(W).transforms(), read offline)",
    "--device": "device",
    "--backend, --use-v2, --cache-dataset": "no effect (DALI decodes; nothing to cache); logged",
}


def reference_loaders(args: Namespace, *, aug_repeats: int, **options):
    """``(train_loader, val_loader)`` that honour torchvision's reference-script flags in ``args``.

    Args:
        args: The namespace of ``references/classification/train.py`` (``get_args_parser().parse_args()``);
            flags that an older or newer script lacks take torchvision's defaults.
        aug_repeats: M, replicas of each training image per step.
        **options: More loader options (``channels_last``, ``dtype``, ``on_error``, ...).

    Returns:
        The train loader, wrapped in :class:`ReplicaMix` when ``--mixup-alpha`` or
        ``--cutmix-alpha`` is set (labels are then ``[B*M, num_classes]`` probabilities, which
        ``CrossEntropyLoss`` and the script's ``utils.accuracy`` take), and the val loader.

    Raises:
        ValueError: A flag asks for something dali-ba does not do the same way; the message names it.
    """
    flag = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    interpolation = str(flag("interpolation", "bilinear")).lower()
    if interpolation not in INTERPOLATION:
        raise ValueError(f"--interpolation {interpolation} is not supported; dali-ba resizes with "
                         f"{', '.join(INTERPOLATION)} (antialiased when shrinking, as torchvision's tensor resize)")
    policy = flag("auto_augment")
    if policy not in AUTO_AUGMENT:
        raise ValueError(f"--auto-augment {policy} has no dali-ba recipe; supported: "
                         f"{', '.join(p for p in AUTO_AUGMENT if p)} (or none)")
    if policy == "ra":
        options.setdefault("ra_magnitude", int(flag("ra_magnitude", 9)))
    if (flag("random_erase", 0.0) or 0.0) > 0:
        options.setdefault("random_erase", float(flag("random_erase")))
    batch_size = args.batch_size
    if flag("ra_sampler", False):
        reps = int(flag("ra_reps", 3))
        if aug_repeats != reps:
            raise ValueError(f"--ra-sampler --ra-reps {reps} repeats each image {reps} times, but --aug-repeats "
                             f"{aug_repeats} asks for {aug_repeats} replicas: pass --aug-repeats {reps}")
        if batch_size % reps:
            raise ValueError(f"--ra-sampler --ra-reps {reps}: --batch-size {batch_size} is not divisible by {reps}; each "
                             f"step takes batch-size / ra-reps images, {reps} replicas of each")
        batch_size //= reps
        options.setdefault("epoch_samples", ra_sampler_epoch(reps, args.batch_size))
    val_crop, val_resize, val_interpolation = flag("val_crop_size", 224), flag("val_resize_size", 256), None
    if flag("weights") and flag("test_only", False):
        val_crop, val_resize, val_interpolation = weights_preprocessing(flag("weights"))
    for name in ("backend", "use_v2", "cache_dataset"):
        if flag(name) not in (None, False, "pil"):
            log.info("--%s has no effect with dali-ba: DALI decodes, and there is nothing to cache", name.replace("_", "-"))
    workers = flag("workers")
    options.setdefault("num_threads", max(1, workers) if workers is not None else None)
    options.setdefault("device", str(flag("device", "auto")))
    train, val = imagenet_loaders(
        os.fspath(flag("data_path")),
        batch_size=batch_size,
        aug_repeats=aug_repeats,
        recipe=AUTO_AUGMENT[policy],
        image_size=flag("train_crop_size", 224),
        val_image_size=val_crop,
        val_resize_size=val_resize,
        interpolation=interpolation,
        val_interpolation=val_interpolation,
        **options,
    )
    mixup, cutmix = flag("mixup_alpha", 0.0) or 0.0, flag("cutmix_alpha", 0.0) or 0.0
    if mixup > 0 or cutmix > 0:
        train = ReplicaMix(train, mixup_alpha=mixup, cutmix_alpha=cutmix)
    return train, val


def ra_sampler_epoch(reps: int, batch_size: int):
    """The epoch of torchvision's ``RASampler`` (``--ra-sampler --ra-reps K``) as an ``epoch_samples`` rule.

    ``RASampler`` repeats each sample ``reps`` times over the ranks and gives each rank
    ``floor(N // 256 * 256 / world)`` of them per epoch, in batches of ``batch_size`` (the
    script's DataLoader keeps the short last one). The loader takes ``batch_size / reps`` distinct
    images per step, ``reps`` replicas each: the same images per step, and with this many
    distinct samples per epoch (all ranks together), the same steps per epoch, so the recipe's
    schedule holds. The steps are full batches: a rank sees up to ``batch_size - 1`` images more
    in the last one than ``RASampler``'s short batch would give it.
    """

    def epoch_samples(num_samples: int, num_shards: int) -> int:
        per_rank = num_samples // 256 * 256 // num_shards
        if per_rank == 0:
            raise ValueError(f"--ra-sampler: torchvision's RASampler takes floor(N // 256 * 256 / world) samples per rank "
                             f"and epoch, which is 0 for N={num_samples} images on {num_shards} rank(s): no step at all")
        steps = -(-per_rank // batch_size)
        return min(num_samples, steps * num_shards * (batch_size // reps))

    return epoch_samples


def weights_preprocessing(name: str) -> tuple[int, int, str]:
    """``(crop size, resize size, interpolation)`` of a torchvision checkpoint's own eval transforms.

    As torchvision's script with ``--weights W --test-only``: ``get_weight(W).transforms()``, read
    offline (the weights themselves are not needed).

    Raises:
        ValueError: ``name`` is not a torchvision weights name, or its transforms are not the
            resize + center crop of image classification.
    """
    from torchvision.models import get_weight

    try:
        transforms = get_weight(name).transforms()
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"--weights {name}: not a torchvision weights name ({err}); expected e.g. "
                         f"ResNet50_Weights.IMAGENET1K_V2") from None
    try:
        crop, resize, mode = transforms.crop_size[0], transforms.resize_size[0], transforms.interpolation.value
    except (AttributeError, IndexError, TypeError):
        raise ValueError(f"--weights {name}: its transforms ({type(transforms).__name__}) are not image "
                         f"classification's resize and center crop") from None
    if mode not in INTERPOLATION:
        raise ValueError(f"--weights {name} resizes with {mode}, which dali-ba does not do; supported: {', '.join(INTERPOLATION)}")
    return int(crop), int(resize), mode


class ReplicaMix(LoaderWrapper):
    """MixUp / CutMix with ``torchvision.transforms.v2`` on a loader's ``[B*M]`` batches of replicas.

    torchvision's ``MixUp`` and ``CutMix`` pair image ``i`` with image ``i - 1`` of the batch. In the
    loader's sample-major order that is, M-1 times out of M, another replica of the *same* image,
    and mixing an image with itself teaches nothing. So the batch is mixed in replica-major order
    (replica 0 of every sample, then replica 1, ...), where every pair is two different samples,
    and put back in sample-major order: the replica contract holds, labels become
    ``[B*M, num_classes]`` probabilities. Everything else (``len``, ``sampler``, ``dataset``,
    ``set_epoch``, ``state_dict``, ...) is the wrapped loader's.

    Args:
        loader: A dali-ba loader, or any iterable of sample-major ``(images, labels)`` batches.
        mixup_alpha, cutmix_alpha: As torchvision's flags; ``0`` leaves that one out. With both, each
            batch gets one of the two at random (``v2.RandomChoice``), as in torchvision's script.
        aug_repeats, num_classes: M and the number of classes; by default the loader's.
    """

    def __init__(self, loader, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, aug_repeats: int | None = None,
                 num_classes: int | None = None):
        from torchvision.transforms import v2

        num_classes = num_classes or len(loader.classes)
        self.aug_repeats = aug_repeats or loader.config.aug_repeats
        choices = ([v2.MixUp(alpha=mixup_alpha, num_classes=num_classes)] if mixup_alpha > 0 else []) + (
            [v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes)] if cutmix_alpha > 0 else [])
        if not choices:
            raise ValueError(f"ReplicaMix needs mixup_alpha > 0 or cutmix_alpha > 0, but got {mixup_alpha} and {cutmix_alpha}")
        super().__init__(loader)
        self.transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def mix(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: ``images [B*M, C, H, W]``, ``labels [B*M]`` -> mixed images, ``[B*M, classes]`` labels."""
        m = self.aug_repeats
        b = images.shape[0] // m
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        images = images.unflatten(0, (b, m)).transpose(0, 1).flatten(0, 1)  # replica-major
        images, labels = self.transform(images, labels.view(b, m).t().flatten())
        images = images.unflatten(0, (m, b)).transpose(0, 1).flatten(0, 1)  # sample-major again
        labels = labels.unflatten(0, (m, b)).transpose(0, 1).flatten(0, 1)
        return images.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format), labels

    def __iter__(self):
        for images, labels in self.loader:
            yield self.mix(images, labels)
