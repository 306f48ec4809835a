import functools
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import identify, small_loader, textured
from dali_ba import DecodeError, ImageFolderLoader, SkippedFileWarning


make = functools.partial(small_loader, ImageFolderLoader, batch_size=4, aug_repeats=3)


def epoch_files(loader, truth):
    """The file behind every image of one epoch, in delivery order."""
    return [path for images, _ in loader for path in identify(images, truth)]


# -- the replica contract ---------------------------------------------------------------------


def test_batch_is_sample_major_with_labels_repeated(color_tree):
    root, truth = color_tree
    loader = make(root, aug_repeats=3)
    images, labels = next(iter(loader))
    assert images.shape == (12, 3, 16, 16) and images.dtype == torch.float32
    assert labels.shape == (12,) and labels.dtype == torch.int64
    files = identify(images, truth)
    for sample in range(4):
        replicas = files[3 * sample : 3 * sample + 3]
        assert len(set(replicas)) == 1, "a sample's M replicas must be adjacent"
        assert labels[3 * sample : 3 * sample + 3].tolist() == [truth[replicas[0]][0]] * 3
    assert len(set(files)) == 4, "B different images per step"


def test_replicas_share_the_image_but_differ(color_tree):
    root, _ = color_tree
    images, _ = next(iter(make(root, aug_repeats=4)))
    for sample in images.view(4, 4, 3, 16, 16):
        for a in range(4):
            for b in range(a + 1, 4):
                assert not torch.equal(sample[a], sample[b])


def test_val_recipe_is_deterministic_so_replicas_are_equal(color_tree):
    root, _ = color_tree
    images, _ = next(iter(make(root, recipe="val", aug_repeats=2)))
    assert torch.equal(images[0], images[1])


def test_dali_replicas_are_reshaped_without_a_copy(color_tree):
    root, _ = color_tree
    images, labels = next(iter(make(root, resample="dali")))
    assert images.is_contiguous() and images._base is not None
    assert images._base.shape == (4, 3, 3, 16, 16)
    assert labels._base is not None and labels._base.shape == (4, 3)


@pytest.mark.parametrize("resample", ["torch", "dali"])
def test_batches_stay_intact_while_later_batches_are_made(color_tree, resample):
    root, _ = color_tree
    loader = make(root, batch_size=3, drop_last=False, resample=resample)
    assert loader.resample == resample
    kept = [(images, images.clone()) for _ in range(3) for images, _ in loader]
    assert all(torch.equal(live, copy) for live, copy in kept), "a delivered batch was overwritten"


def test_channels_last_and_float16(color_tree):
    root, truth = color_tree
    images, _ = next(iter(make(root, channels_last=True, dtype=torch.float16)))
    assert images.shape == (12, 3, 16, 16) and images.dtype == torch.float16
    assert images.is_contiguous(memory_format=torch.channels_last)
    identify(images, truth)  # still the right colours, i.e. the channels are not scrambled


@pytest.mark.parametrize("recipe", ["imagenet", "cifar", "randaugment", "trivialaugment", "autoaugment", "val"])
def test_every_recipe_gives_the_contract(color_tree, recipe):
    root, _ = color_tree
    images, labels = next(iter(make(root, recipe=recipe, aug_repeats=2)))
    assert images.shape == (8, 3, 16, 16) and labels.shape == (8,)
    assert torch.isfinite(images).all()


def test_cifar_recipe_cuts_out_a_square_of_zeros(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir(parents=True)
    Image.fromarray(textured((200, 40, 120), 32, 32, 0)).save(folder / "x.png")
    loader = make(tmp_path, batch_size=1, aug_repeats=8, image_size=32, recipe="cifar")
    images, _ = next(iter(loader))
    zero_pixels = (images.abs() < 0.02).all(dim=1).sum(dim=(1, 2))  # the mean, normalized
    # Cutout 16x16 clipped at the border keeps 64..256 pixels at zero; padding adds border zeros.
    assert (zero_pixels >= 64).all()


# -- epochs -----------------------------------------------------------------------------------


def test_every_image_comes_out_exactly_once_per_epoch(color_tree):
    root, truth = color_tree
    loader = make(root, batch_size=5, aug_repeats=2, drop_last=False, recipe="val")
    assert len(loader) == 5  # 24 images in batches of 5
    orders = []
    for _ in range(3):
        files = epoch_files(loader, truth)
        counts = Counter(files)
        assert set(counts) == set(truth) and set(counts.values()) == {2}
        orders.append(files)
    assert orders[0] != orders[1] != orders[2], "shuffling changes the order each epoch"


def test_drop_last_drops_only_the_short_batch(color_tree):
    root, truth = color_tree
    loader = make(root, batch_size=5, aug_repeats=1, drop_last=True, recipe="val")
    files = epoch_files(loader, truth)
    assert len(loader) == 4 and len(files) == 20 == len(set(files))


def test_same_seed_gives_the_same_batches(color_tree):
    root, _ = color_tree
    first = [(x.clone(), y.clone()) for x, y in make(root, seed=11)]
    second = [(x.clone(), y.clone()) for x, y in make(root, seed=11)]
    other = [x for x, _ in make(root, seed=12)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    assert not all(torch.equal(a[0], b) for a, b in zip(first, other))


def test_leaving_an_epoch_early_does_not_disturb_the_next(color_tree):
    root, truth = color_tree
    loader = make(root, batch_size=5, aug_repeats=1, drop_last=False, recipe="val")
    for i, _ in enumerate(loader):
        if i == 1:
            break
    files = epoch_files(loader, truth)
    assert sorted(files) == sorted(truth)


def test_set_epoch_replays_an_epoch(color_tree):
    root, truth = color_tree
    loader = make(root, recipe="val", aug_repeats=1, drop_last=False)
    loader.set_epoch(5)
    fifth = epoch_files(loader, truth)
    epoch_files(loader, truth)
    loader.set_epoch(5)
    assert epoch_files(loader, truth) == fifth


def test_set_epoch_between_iter_and_the_first_batch_counts(color_tree):
    """As with a DataLoader's sampler: Lightning calls iter(loader) before it sets the epoch."""
    root, truth = color_tree
    loader = make(root, recipe="val", aug_repeats=1, drop_last=False)
    loader.set_epoch(5)
    fifth = epoch_files(loader, truth)
    epoch = iter(loader)
    loader.set_epoch(5)
    assert [f for images, _ in epoch for f in identify(images, truth)] == fifth


def test_io_counts_each_file_once_whatever_m(color_tree):
    root, truth = color_tree
    sizes = {path: len(open(path, "rb").read()) for path in truth}
    loader = make(root, batch_size=6, aug_repeats=4, drop_last=False)
    for _ in loader:
        pass
    assert loader.io.files_read == 24 and loader.io.bytes_read == sum(sizes.values())
    assert (loader.io.requests, loader.io.images, loader.io.requests_per_image) == (24, 96, 0.25)


# -- shards -----------------------------------------------------------------------------------


def test_shards_are_disjoint_and_cover_the_data(color_tree):
    root, truth = color_tree
    seen = []
    for shard in range(3):
        loader = make(root, batch_size=3, drop_last=False, recipe="val", shard_id=shard, num_shards=3)
        files = epoch_files(loader, truth)
        assert len(files) == 8 * 3  # 8 images, 3 replicas each
        seen.append(set(files))
    assert set.union(*seen) == set(truth) and sum(map(len, seen)) == len(truth)


def test_torchrun_environment_shards_by_itself(color_tree, monkeypatch):
    root, truth = color_tree
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        loader = make(root, batch_size=4, drop_last=False, recipe="val")
        assert (loader.config.shard_id, loader.config.num_shards) == (rank, 2)
        seen.append(set(epoch_files(loader, truth)))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(truth)


# -- resumable state --------------------------------------------------------------------------


def test_resume_mid_epoch_delivers_exactly_the_rest(color_tree):
    root, truth = color_tree
    full = epoch_files(make(root, batch_size=3, aug_repeats=1, recipe="val"), truth)

    loader = make(root, batch_size=3, aug_repeats=1, recipe="val")
    delivered = []
    for i, (images, _) in enumerate(loader):
        delivered += identify(images, truth)
        if i == 2:
            state = loader.state_dict()
            break
    resumed = make(root, batch_size=3, aug_repeats=1, recipe="val", seed=99)  # the state's seed wins
    resumed.load_state_dict(state)
    rest = epoch_files(resumed, truth)
    assert delivered + rest == full
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["batch"] == 0


def test_state_from_other_data_is_refused(color_tree):
    root, _ = color_tree
    state = make(root).state_dict()
    with pytest.raises(ValueError, match="batch_size=4 but this loader has batch_size=6"):
        make(root, batch_size=6).load_state_dict(state)


# -- awkward files and bad input --------------------------------------------------------------


def test_odd_formats_all_load_as_three_channels(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    rgb = textured((120, 60, 200), 48, 64, 1)
    Image.fromarray(rgb).convert("L").save(folder / "gray.jpg")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).save(folder / "photo.png")
    Image.fromarray(rgb).convert("RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb).save(folder / "UPPER.JPEG")
    Image.fromarray(rgb[:1, :1]).save(folder / "tiny.jpg")
    Image.fromarray(np.tile(rgb, (40, 40, 1))).save(folder / "large.jpg")  # 1920 x 2560
    loader = make(tmp_path, batch_size=8, aug_repeats=2, drop_last=False)
    images, labels = next(iter(loader))
    assert images.shape == (16, 3, 16, 16) and torch.isfinite(images).all()
    assert loader.io.files_read == 8


def test_undecodable_file_is_named(color_tree):
    root, _ = color_tree
    bad = root / "class_1" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 20)
    loader = make(root, batch_size=25, drop_last=False)
    with pytest.raises(DecodeError, match=r"could not decode image file '.*broken\.jpg'") as info:
        for _ in loader:
            pass
    assert info.value.path == str(bad)


def test_truncated_file_is_named(color_tree):
    root, truth = color_tree
    victim = sorted(truth)[5]
    data = open(victim, "rb").read()
    open(victim, "wb").write(data[: len(data) // 3])
    with pytest.raises(DecodeError, match=victim.rsplit("/", 1)[1]):
        for _ in make(root, batch_size=8, drop_last=False):
            pass


def test_skip_mode_warns_with_the_name_and_loses_nothing_else(color_tree):
    root, truth = color_tree
    (root / "class_0" / "empty.jpg").write_bytes(b"")
    (root / "class_2" / "junk.jpg").write_bytes(b"\x00" * 300)
    loader = make(root, batch_size=4, aug_repeats=1, drop_last=False, recipe="val", on_error="skip")
    with pytest.warns(SkippedFileWarning) as caught:
        first = epoch_files(loader, truth)
    named = " ".join(str(w.message) for w in caught)
    assert "empty.jpg" in named and "junk.jpg" in named
    assert sorted(first) == sorted(truth)
    assert sorted(epoch_files(loader, truth)) == sorted(truth), "later epochs skip it quietly"


def test_file_removed_after_the_scan_is_named(color_tree):
    root, truth = color_tree
    loader = make(root, batch_size=24, drop_last=False)
    victim = sorted(truth)[0]
    import os

    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=victim.rsplit("/", 1)[1]):
        next(iter(loader))


def test_batch_larger_than_the_data_with_drop_last_explains(color_tree):
    root, _ = color_tree
    with pytest.raises(ValueError, match="batch_size=100 is larger than the 24 images.*drop_last=False"):
        make(root, batch_size=100)


def test_classes_and_len(color_tree):
    root, _ = color_tree
    loader = make(root, batch_size=5, drop_last=True)
    assert loader.classes == ["class_0", "class_1", "class_2"]
    assert loader.class_to_idx == {"class_0": 0, "class_1": 1, "class_2": 2}
    assert len(loader) == 4 and loader.num_samples == 20


def test_an_epoch_whose_last_batch_is_all_skipped_ends_in_the_saved_state(color_tree):
    root, truth = color_tree
    for k in range(4):  # the last four files in index order: the whole last batch
        (root / "class_2" / f"zz_bad_{k}.jpg").write_bytes(b"\x00" * 300)
    loader = make(root, batch_size=4, aug_repeats=1, drop_last=False, shuffle=False, recipe="val", on_error="skip")
    with pytest.warns(SkippedFileWarning):
        assert sorted(epoch_files(loader, truth)) == sorted(truth)
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 0), "the epoch is over; resuming must not replay it"
    assert len(state["skipped_files"]) == 4


def test_close_ends_the_loaders_threads_and_iterating_it_again_is_an_error(color_tree):
    import gc
    import os

    root, _ = color_tree
    before = len(os.listdir("/proc/self/task"))
    gc.disable()
    try:
        loader = make(root)
        epoch = iter(loader)
        next(epoch)
        loader.close()
        assert len(os.listdir("/proc/self/task")) == before
        with pytest.raises(RuntimeError, match="this loader was closed"):
            next(epoch)
        with pytest.raises(RuntimeError, match="this loader was closed"):
            next(iter(loader))
        loader.close()  # twice is fine
    finally:
        gc.enable()


def test_a_loader_freed_by_the_garbage_collector_joins_no_thread(color_tree, monkeypatch):
    """The collector may run a loader's finalizer inside any thread, even one that is starting and
    holds threading's own locks; a join there deadlocks (a test run hung so, once). It only tells
    the threads to end."""
    import gc
    import threading

    root, _ = color_tree
    loader = make(root)
    next(iter(loader))  # reader and resample threads running
    loader.itself = loader  # a cycle: only the collector frees it
    joined = []
    join = threading.Thread.join
    monkeypatch.setattr(threading.Thread, "join", lambda self, *a, **kw: joined.append(self.name) or join(self, *a, **kw))
    del loader
    gc.collect()
    assert joined == []
