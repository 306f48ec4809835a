"""Resuming an epoch on another number of ranks: every sample of the epoch exactly once.

Ranks are simulated in one process with explicit ``shard_id``/``num_shards`` (they step together,
as under DDP); the torchrun + gloo version is in ``test_distributed.py``. Samples are identified
by the colour of the images delivered (``conftest.identify``), not by what the loader reports.
"""

import os
from collections import Counter

import pytest

from conftest import identify
from dali_ba import FileListLoader, ImageFolderLoader, ParquetLoader, SkippedFileWarning, TarShardLoader
from dali_ba.sources import scan_image_folder
from dali_ba.sources.tar import make_shards, sample_key

B = 2  # 24 images: 4 ranks take 3 batches each with drop_last=True


@pytest.fixture(params=["folder", "tar", "file-list", "parquet"])
def source(request, color_tree, tmp_path):
    """``(make, truth, name)``: ``make(**options)`` builds a loader over the 24 colour images from one
    source; ``name(loader, i)`` is the truth key of the loader's sample ``i``."""
    root, truth = color_tree
    by_path = lambda loader, i: loader.dataset.files[i]  # noqa: E731
    if request.param == "folder":
        return (lambda **kw: ImageFolderLoader(root, **kw)), truth, by_path
    if request.param == "file-list":
        lines = [f"{os.path.relpath(path, root)} {label}" for path, (label, _) in truth.items()]
        (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
        return (lambda **kw: FileListLoader(tmp_path / "train.txt", file_root=root, **kw)), truth, by_path
    index = scan_image_folder(root)
    if request.param == "parquet":
        pytest.importorskip("pyarrow")
        from dali_ba.sources.parquet import write_parquet

        write_parquet(index, tmp_path / "pq", rows_per_file=10, row_group_size=4, shuffle=False)  # rows in index order
        return (lambda **kw: ParquetLoader(str(tmp_path / "pq" / "*.parquet"), **kw)), truth, lambda loader, i: index.files[i]
    make_shards(index, tmp_path / "shards", shard_size=5)
    by_key = {sample_key(index, i): truth[index.files[i]] for i in range(len(index))}
    return (lambda **kw: TarShardLoader(str(tmp_path / "shards" / "shard-*.tar"), **kw)), by_key, \
        lambda loader, i: loader.dataset.key(i)


def ranks(make, num_shards, **kw):
    options = dict(batch_size=B, aug_repeats=1, image_size=16, device="cpu", recipe="val", seed=5, num_threads=1,
                   read_threads=2)
    options.update(kw)
    return [make(shard_id=k, num_shards=num_shards, **options) for k in range(num_shards)]


def step_together(loaders, truth, steps=None):
    """Every rank takes ``steps`` batches (all of the epoch if ``None``); the samples each rank delivered."""
    epochs = [iter(loader) for loader in loaders]
    seen = [[] for _ in loaders]
    step = 0
    while steps is None or step < steps:
        progressed = False
        for rank, epoch in enumerate(epochs):
            batch = next(epoch, None)
            if batch is not None:
                seen[rank] += identify(batch[0], truth)
                progressed = True
        if not progressed:
            break
        step += 1
    return seen


def flat(per_rank):
    return [sample for rank in per_rank for sample in rank]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("new_shards", [3, 2, 6, 4])
def test_an_epoch_begun_on_4_ranks_finishes_on_any_number_exactly_once(color_tree, new_shards, drop_last):
    root, truth = color_tree
    make = lambda **kw: ImageFolderLoader(root, **kw)  # noqa: E731
    before = ranks(make, 4, drop_last=drop_last)
    first = flat(step_together(before, truth, steps=2))
    states = [loader.state_dict() for loader in before]
    assert len({(s["epoch"], s["position"]) for s in states}) == 1, "every rank saves the same position"
    assert (states[0]["epoch"], states[0]["position"]) == (0, 16)

    after = ranks(make, new_shards, drop_last=drop_last, seed=99)  # the saved seed wins
    for loader in after:
        loader.load_state_dict(states[0])
    # 8 samples are left. With drop_last they are dealt in equal full batches, the rest dropped;
    # on 6 ranks not one full batch is left: the rest of the epoch is empty.
    left = new_shards * (8 // new_shards - 8 // new_shards % B) if drop_last else 8
    assert after[0].state_dict()["epoch"] == (0 if left else 1)
    for loader in after:
        loader.set_epoch(0)  # as a training loop does; it keeps the resume point
    rest = step_together(after, truth)
    if not left:
        assert flat(rest) == []
    else:
        epoch = Counter(first + flat(rest))
        assert max(epoch.values()) == 1, "no sample twice in one epoch"
        assert len(epoch) == 16 + left
        if not drop_last:
            assert set(epoch) == set(truth), "every sample once"
        if new_shards == 4:  # the same number of ranks resumes the same batches
            assert rest == [rank[2 * B :] for rank in step_together(ranks(make, 4, drop_last=drop_last), truth)]
        assert {(loader.state_dict()["epoch"], loader.state_dict()["position"]) for loader in after} == {(1, 0)}

    # The epochs after it are whole epochs on the new number of ranks.
    following = Counter(flat(step_together(after, truth)))
    assert max(following.values()) == 1
    assert len(following) == (sum(loader.num_samples for loader in after))
    if not drop_last:
        assert set(following) == set(truth)


def test_every_source_resumes_on_another_number_of_ranks(source):
    make, truth, _ = source
    before = ranks(make, 4, drop_last=False)
    first = flat(step_together(before, truth, steps=1))
    state = before[2].state_dict()  # any rank's state will do
    after = ranks(make, 3, drop_last=False)
    for loader in after:
        loader.load_state_dict(state)
    assert Counter(first + flat(step_together(after, truth))) == Counter(list(truth)), "each sample of the epoch exactly once"


def test_last_indices_name_the_samples_delivered(source):
    make, truth, name = source
    loader = ranks(make, 1, aug_repeats=3, batch_size=5, drop_last=False)[0]
    assert loader.last_indices.size == 0
    for images, _ in loader:
        named = [name(loader, int(i)) for i in loader.last_indices]
        assert [name for name in named for _ in range(3)] == identify(images, truth)


def test_a_mid_epoch_state_of_uneven_shards_is_the_same_on_every_rank(color_tree):
    """drop_last=False, 25 samples on 4 ranks: rank 0 has one batch more than the others."""
    root, truth = color_tree
    (root / "class_0" / "zz_extra.jpg").write_bytes(open(sorted(truth)[0], "rb").read())  # a 25th image
    make = lambda **kw: ImageFolderLoader(root, **kw)  # noqa: E731
    loaders = ranks(make, 4, drop_last=False, batch_size=3)
    assert [len(loader) for loader in loaders] == [3, 2, 2, 2]
    step_together(loaders, truth, steps=2)
    states = [loader.state_dict() for loader in loaders]  # ranks 1-3 have run out, rank 0 has not
    assert {(s["epoch"], s["position"]) for s in states} == {(0, 24)}
    resumed = ranks(make, 2, drop_last=False, batch_size=3)
    for loader in resumed:
        loader.load_state_dict(states[1])
    assert [len(list(loader)) for loader in resumed] == [1, 0]


def test_skipped_files_stay_skipped_on_the_new_ranks(color_tree):
    root, truth = color_tree
    (root / "class_1" / "junk.jpg").write_bytes(b"\x00" * 300)
    make = lambda **kw: ImageFolderLoader(root, **kw)  # noqa: E731
    before = ranks(make, 4, drop_last=False, on_error="skip", shuffle=False)  # junk.jpg is sample 16 in file order
    with pytest.warns(SkippedFileWarning, match="junk.jpg"):
        first = flat(step_together(before, truth, steps=3))  # 24 positions: junk.jpg is in the third step
    state = before[0].state_dict()
    assert state["position"] == 24 and any(name.endswith("junk.jpg") for name in state["skipped_files"])
    after = ranks(make, 3, drop_last=False, on_error="skip", shuffle=False)
    for loader in after:
        loader.load_state_dict(state)
    assert Counter(first + flat(step_together(after, truth))) == Counter(list(truth))


def test_a_state_of_dali_ba_0_1_still_loads(color_tree):
    root, truth = color_tree
    make = lambda **kw: ImageFolderLoader(root, **kw)  # noqa: E731
    full = step_together(ranks(make, 2, drop_last=False), truth)  # 12 samples a rank
    old = {"version": 1, "epoch": 0, "batch": 3, "seed": 5, "num_files": 24, "batch_size": B, "shuffle": True,
           "drop_last": False, "shard_id": 0, "num_shards": 2, "skipped_files": []}
    resumed = ranks(make, 2, drop_last=False, seed=1)
    for loader in resumed:
        loader.load_state_dict(old)
    assert resumed[0].state_dict()["position"] == 12
    assert step_together(resumed, truth) == [rank[3 * B :] for rank in full]


def test_states_that_cannot_resume_are_refused(color_tree):
    root, _ = color_tree
    loader = ranks(lambda **kw: ImageFolderLoader(root, **kw), 1)[0]
    state = loader.state_dict()
    with pytest.raises(ValueError, match="version None is not supported"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="saved position 99 is outside the epoch's 24 samples"):
        loader.load_state_dict(dict(state, position=99))
    with pytest.raises(ValueError, match="shuffle=False but this loader has shuffle=True"):
        loader.load_state_dict(dict(state, shuffle=False))


@pytest.mark.parametrize("new_shards", [2, 3])
def test_a_shorter_epoch_resumed_on_other_ranks_delivers_its_selection_once(color_tree, new_shards):
    """``epoch_samples`` (the repeated-augmentation sampler's epochs): 14 of the 24 images per epoch."""
    root, truth = color_tree
    make = lambda **kw: ImageFolderLoader(root, **kw)  # noqa: E731
    whole = Counter(flat(step_together(ranks(make, 4, drop_last=False, epoch_samples=14), truth)))
    assert len(whole) == 14 and max(whole.values()) == 1
    before = ranks(make, 4, drop_last=False, epoch_samples=14)
    first = flat(step_together(before, truth, steps=1))
    state = before[0].state_dict()
    assert (state["position"], state["epoch_samples"]) == (8, 14)
    after = ranks(make, new_shards, drop_last=False, epoch_samples=14)
    for loader in after:
        loader.load_state_dict(state)
    rest = flat(step_together(after, truth))
    assert Counter(first + rest) == whole, "the epoch's own 14, each once, across the restart"
    with pytest.raises(ValueError, match="saved loader state has epoch_samples=14 but this loader has epoch_samples=None"):
        ranks(make, 2, drop_last=False)[0].load_state_dict(state)
    following = Counter(flat(step_together(after, truth)))
    assert len(following) == 14 and set(following) != set(whole), "the next epoch selects anew"
