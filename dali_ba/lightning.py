"""PyTorch Lightning: a ``LightningDataModule`` over the loaders (``pip install dali-ba[lightning]``).

A thin layer at the end of the flow: the loaders do everything (epochs, shards, resume); this
module only builds them when Lightning is ready for them and hands them over. ``import dali_ba``
does not import it, nor Lightning.

What Lightning does with the loaders, and why nothing has to be set on the Trainer:

* They are not ``DataLoader`` objects, so Lightning injects no ``DistributedSampler``: under its
  DDP strategy each rank's loader finds its shard from ``torch.distributed``, as under torchrun
  (``use_distributed_sampler`` may stay at its default).
* Lightning calls ``loader.sampler.set_epoch(trainer.current_epoch)`` at each epoch's start.
* The loaders have ``state_dict()`` / ``load_state_dict()``, so Lightning saves the train loader's
  position in every checkpoint and restores it on ``fit(ckpt_path=...)``: a fit resumed from a
  checkpoint written mid-epoch finishes that epoch with every image exactly once. The loaders
  have ``len()``, so Lightning fetches no batch ahead and the saved position is that of the last
  batch trained on.
"""

from __future__ import annotations

import os

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise ImportError("dali_ba.lightning needs Lightning: pip install 'dali-ba[lightning]'") from None

from .config import TrainOptions
from .loader import ImageFolderLoader


class BatchAugmentDataModule(pl.LightningDataModule):
    """Training with batch augmentation, validation read exactly once, for ``Trainer.fit``.

    Args:
        train_root: ImageFolder tree of the training images.
        val_root: ImageFolder tree of the validation images; ``None`` for no validation.
        batch_size: B, unique training images per step and rank.
        aug_repeats: M, replicas of each training image per step.
        val_batch_size: Validation batch size; by default ``batch_size * aug_repeats``.
        **options: The training loader's other options (``config.TrainOptions``: ``recipe``,
            ``image_size``, ``seed``, ``random_erase``, ``epoch_samples``, ``shuffle``,
            ``drop_last``, ...; shuffled, ``drop_last=True`` unless they say otherwise). The val
            loader takes only their reading options (``config.ReadOptions``: ``device``,
            ``dtype``, ``channels_last``, ``image_size``, ``interpolation``, ...) and uses the
            ``val`` recipe with M=1, in order, every image once (``config.EvalOptions``).
            ``shard_id``/``num_shards`` are refused: Lightning's ranks decide the shards.

    Raises:
        ValueError: An option is out of range (checked here, before Lightning starts).
        FileNotFoundError: A root does not exist (when ``setup`` runs).
    """

    def __init__(self, train_root: str | os.PathLike, val_root: str | os.PathLike | None = None, *, batch_size: int,
                 aug_repeats: int, val_batch_size: int | None = None, **options):
        super().__init__()
        for fixed in ("shard_id", "num_shards"):
            if fixed in options:
                raise ValueError(f"{fixed} is set by BatchAugmentDataModule from Lightning's ranks (each rank's loader "
                                 f"reads the shard of its rank in Lightning's process group); leave {fixed} out")
        # Bad options fail here, before Lightning starts.
        self.train_options = TrainOptions(batch_size=batch_size, aug_repeats=aug_repeats,
                                          **dict(dict(shuffle=True, drop_last=True), **options))
        self.val_options = self.train_options.eval_options(batch_size=val_batch_size or batch_size * aug_repeats)
        self.train_root, self.val_root = train_root, val_root
        self.train_loader: ImageFolderLoader | None = None
        self.val_loader: ImageFolderLoader | None = None

    def setup(self, stage: str) -> None:
        """Builds the loaders once, on each rank after Lightning started its process group."""
        if self.train_loader is None and stage == "fit":
            self.train_loader = ImageFolderLoader(self.train_root, **self.train_options.loader_options())
        if self.val_loader is None and self.val_root is not None and stage in ("fit", "validate"):
            self.val_loader = ImageFolderLoader(self.val_root, **self.val_options.loader_options())

    def train_dataloader(self) -> ImageFolderLoader:
        return self.train_loader

    def val_dataloader(self):
        return self.val_loader if self.val_loader is not None else []

    def teardown(self, stage: str) -> None:
        """Drops the loaders (their reader threads end with them)."""
        if stage == "fit":
            for loader in (self.train_loader, self.val_loader):
                if loader is not None:
                    loader.close()
            self.train_loader = self.val_loader = None
