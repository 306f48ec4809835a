"""PyTorch Lightning: one epoch exactly once, validation, a mid-epoch resume, DDP ranks, the optional import."""

import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import identify, write_color_tree

pl = pytest.importorskip("lightning.pytorch", reason="Lightning is the optional extra dali-ba[lightning]")
from dali_ba.lightning import BatchAugmentDataModule  # noqa: E402

HERE = Path(__file__).parent


class Recorder(pl.LightningModule):
    """A linear model that records which file every training and validation image came from."""

    def __init__(self, truth, val_truth):
        super().__init__()
        self.truth, self.val_truth = truth, val_truth
        self.lin = torch.nn.Linear(3, 3)
        self.trained, self.validated, self.shard = [], [], None

    def on_train_start(self):
        config = self.trainer.datamodule.train_loader.config
        self.shard = [config.shard_id, config.num_shards]

    def training_step(self, batch, batch_idx):
        images, labels = batch
        files = identify(images, self.truth)
        assert labels.tolist() == [self.truth[f][0] for f in files], "labels follow their images"
        self.trained.append(files)
        return torch.nn.functional.cross_entropy(self.lin(images.mean(dim=(2, 3))), labels)

    def validation_step(self, batch, batch_idx):
        self.validated += identify(batch[0], self.val_truth)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.fixture
def trees(tmp_path):
    return (tmp_path / "train", write_color_tree(tmp_path / "train")), (tmp_path / "val", write_color_tree(tmp_path / "val", per_class=3))


def trainer(**kw):
    args = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=False)
    args.update(kw)
    return pl.Trainer(**args)


def module(trees, **kw):
    (train, _), (val, _) = trees
    return BatchAugmentDataModule(train, val, batch_size=4, aug_repeats=2, image_size=16, device="cpu", seed=3,
                                  num_threads=1, **kw)


def test_one_epoch_trains_on_every_image_once_and_validates_every_image_once(trees):
    (_, truth), (_, val_truth) = trees
    model = Recorder(truth, val_truth)
    trainer(max_epochs=1, num_sanity_val_steps=0).fit(model, datamodule=module(trees))
    assert len(model.trained) == 6  # 24 images, B=4
    assert Counter(f for step in model.trained for f in step) == {f: 2 for f in truth}, "each image once, as M=2 replicas"
    assert sorted(model.validated) == sorted(val_truth)


def test_training_takes_the_loaders_drop_last_and_keeps_the_short_batch(trees):
    (train, truth), (val, val_truth) = trees
    model = Recorder(truth, val_truth)
    data = BatchAugmentDataModule(train, val, batch_size=5, aug_repeats=2, image_size=16, device="cpu", seed=3,
                                  num_threads=1, drop_last=False, shuffle=False)
    trainer(max_epochs=1, num_sanity_val_steps=0).fit(model, datamodule=data)
    assert [len(step) for step in model.trained] == [10, 10, 10, 10, 8], "24 images, B=5: the short batch is kept"
    assert Counter(f for step in model.trained for f in step) == {f: 2 for f in truth}
    assert [f for step in model.trained for f in step[::2]] == list(truth), "shuffle=False: in index order"
    assert sorted(model.validated) == sorted(val_truth), "validation: every image once, whatever the train options"


def test_random_erasing_is_for_training_only(trees):
    _, (_, val_truth) = trees
    data = module(trees, random_erase=0.25)
    data.setup("fit")  # where the option reached the val loader, and raised
    try:
        assert data.train_loader.config.random_erase == 0.25 and data.val_loader.config.random_erase == 0
        validated = [f for images, _ in data.val_dataloader() for f in identify(images, val_truth)]
        assert sorted(validated) == sorted(val_truth), "every val image once, none erased"
    finally:
        data.teardown("fit")


def test_a_shorter_training_epoch_still_validates_every_image(trees):
    (_, truth), (_, val_truth) = trees
    model = Recorder(truth, val_truth)
    trainer(max_epochs=1, num_sanity_val_steps=0).fit(model, datamodule=module(trees, epoch_samples=8))
    assert len(model.trained) == 2, "8 of the 24 training images, B=4"
    assert sorted(model.validated) == sorted(val_truth), "all 9 val images, not 8"


def test_the_next_epoch_is_a_new_order(trees):
    (_, truth), (_, val_truth) = trees
    model = Recorder(truth, val_truth)
    trainer(max_epochs=2, num_sanity_val_steps=0).fit(model, datamodule=module(trees))
    first, second = [[f for step in model.trained[k * 6 : k * 6 + 6] for f in step] for k in range(2)]
    assert sorted(first) == sorted(second) and first != second, "Lightning set the loader's epoch"


def test_a_fit_resumed_from_a_mid_epoch_checkpoint_finishes_the_epoch_exactly_once(trees, tmp_path):
    (_, truth), (_, val_truth) = trees
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    before = Recorder(truth, val_truth)
    trainer(max_steps=2, enable_checkpointing=True, callbacks=[checkpoints], num_sanity_val_steps=0).fit(
        before, datamodule=module(trees))
    (saved,) = (tmp_path / "ckpt").glob("*step=2.ckpt")
    after = Recorder(truth, val_truth)
    trainer(max_epochs=1, num_sanity_val_steps=0).fit(after, datamodule=module(trees), ckpt_path=saved)
    assert len(before.trained) == 2 and len(after.trained) == 4
    done = Counter(f for step in before.trained + after.trained for f in step)
    assert done == {f: 2 for f in truth}, "every image of the epoch exactly once across the interruption"
    assert sorted(after.validated) == sorted(val_truth)


def test_options_are_checked_before_lightning_starts(trees):
    (train, _), _ = trees
    with pytest.raises(ValueError, match="aug_repeats must be >= 1"):
        BatchAugmentDataModule(train, batch_size=4, aug_repeats=0)
    with pytest.raises(ValueError, match="shard_id is set by BatchAugmentDataModule"):
        BatchAugmentDataModule(train, batch_size=4, aug_repeats=2, shard_id=0, num_shards=2)


DDP_SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
import lightning.pytorch as pl
from conftest import write_color_tree
from test_lightning import Recorder
from dali_ba.lightning import BatchAugmentDataModule
from pathlib import Path

root = Path({root!r})
truth = {{p: (label, list(c)) for p, (label, c) in json.loads((root / "truth.json").read_text()).items()}}
model = Recorder(truth, truth)
dm = BatchAugmentDataModule(root / "train", batch_size=3, aug_repeats=2, image_size=16, device="cpu", num_threads=1)
pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_progress_bar=False,
           enable_model_summary=False, enable_checkpointing=False).fit(model, datamodule=dm)
out = {{"rank": model.global_rank, "files": [f for step in model.trained for f in step], "shard": model.shard}}
(root / f"rank{{model.global_rank}}.json").write_text(json.dumps(out))
"""


@pytest.mark.slow
def test_ddp_ranks_train_on_disjoint_shards_that_cover_the_data(tmp_path):
    truth = write_color_tree(tmp_path / "train")
    (tmp_path / "truth.json").write_text(json.dumps({p: [label, c.tolist()] for p, (label, c) in truth.items()}))
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=str(HERE), root=str(tmp_path))))
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["shard"] for r in ranks] == [[0, 2], [1, 2]], "each rank found its shard from Lightning's process group"
    seen = [set(r["files"]) for r in ranks]
    assert seen[0].isdisjoint(seen[1]) and len(seen[0]) == len(seen[1]) == 12  # 24 images, B=3: 4 full steps a rank


def test_import_dali_ba_does_not_import_lightning():
    code = "import sys, dali_ba; sys.exit(1 if {'lightning', 'pytorch_lightning'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
