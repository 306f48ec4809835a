"""The bench's peers (``bench/peers.py``: WebDataset, MosaicML Streaming, LitData) and the
exactness checks that say what each gives a training run (``bench/exactness.py``)."""

import warnings

import pytest
import torch

from dali_ba.bench import exactness, peers
from dali_ba.bench.exactness import Exactness, Run, check, every_sample_once
from dali_ba.bench.loaders import REGISTRY, BenchSpec
from dali_ba.bench.runner import BenchConfig, run_bench, tar_copy
from dali_ba.sources import scan_image_folder
from dali_ba.synthetic import make_dataset

COPIES = {"wds": tar_copy, "streaming": peers.mds_copy, "litdata": peers.litdata_copy}


def needs(name):
    return pytest.mark.skipif(peers.missing(name) is not None, reason=peers.missing(name) or "")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return scan_image_folder(str(make_dataset(tmp_path_factory.mktemp("peers") / "images", images=24, classes=3,
                                              seed=2)))


@pytest.mark.parametrize("name", ["wds", "streaming", "litdata"])
@pytest.mark.parametrize("workers", [0, 2])
def test_each_peer_yields_the_benchs_batches(tiny, name, workers):
    if peers.missing(name):
        pytest.skip(peers.missing(name))
    spec = BenchSpec(batch_size=4, aug_repeats=3, image_size=24, dtype=torch.float32, device=torch.device("cpu"),
                     workers=workers, seed=1)
    loader = REGISTRY[name].factory(COPIES[name](tiny), spec)
    try:
        labels_seen = []
        for _ in range(2):
            images, labels = next(loader.batches)
            assert images.shape == (12, 3, 24, 24) and images.dtype == torch.float32
            assert labels.shape == (12,) and labels.dtype == torch.int64
            # M replicas of each sample side by side, each its own augmentation of one decode
            assert torch.equal(labels.view(4, 3), labels.view(4, 3)[:, :1].expand(4, 3))
            assert not torch.equal(images[0], images[1])
            labels_seen += labels.tolist()
        files, read = loader.read_counts()
        assert files >= 8 and read > 0  # what was delivered (workers may have read ahead of it)
        assert set(labels_seen) <= {0, 1, 2}
    finally:
        loader.close()


def test_the_checks_find_a_duplicated_sample_and_a_lost_one():
    assert every_sample_once([[0, 1], [2, 3]], 4) == (True, "")
    assert every_sample_once([[0, 1], [1, 3]], 4) == (False, "1 samples delivered more than once, 1 never")
    assert not every_sample_once([[0, 1, 2]], 4)[0]


def broken_loader(duplicate: bool, forgets_state: bool):
    """A loader over 16 samples, B=4, that resumes by its state; ``duplicate`` delivers sample 0
    twice an epoch (and never 15), ``forgets_state`` restarts the epoch when resumed."""
    order = list(range(16))
    if duplicate:
        order[15] = 0

    def start(data, rank, world, state, workers):
        shard = order[rank::world]
        position = 0 if state is None or forgets_state else state["position"] // world
        taken = []

        def take(n):
            nonlocal position
            batches = [shard[position + 4 * b: position + 4 * b + 4] for b in range(n)]
            position += 4 * n
            taken.extend(batches)
            return batches

        return Run(take, lambda: {"position": position * world}, lambda: None)

    return start


@pytest.mark.parametrize("duplicate, forgets_state, expected", [
    (False, False, (True, True, True)),
    (True, False, (False, False, False)),
    (False, True, (True, False, False)),
])
def test_the_exactness_checks_fail_a_broken_loader(monkeypatch, duplicate, forgets_state, expected):
    monkeypatch.setattr(exactness, "BATCH", 4)
    verdict = check("broken", broken_loader(duplicate, forgets_state), None, 16)
    assert (verdict.permutation, verdict.resume, verdict.other_ranks) == expected, verdict.notes
    assert bool(verdict.notes) == (expected != (True, True, True))


@pytest.mark.slow
@pytest.mark.timeout(600)
@needs("streaming")
@needs("litdata")
def test_the_checks_on_the_real_loaders(tmp_path):
    """What the README's table says of each loader, measured again: dali-ba, Streaming and LitData
    resume, on other ranks too; webdataset delivers every sample but cannot resume."""
    verdicts = {v.loader: v for v in exactness.check_all(tmp_path)}
    assert verdicts["dali-ba"] == Exactness("dali-ba", True, True, True, "")
    assert verdicts["streaming"] == Exactness("streaming", True, True, True, "")
    assert verdicts["litdata"] == Exactness("litdata", True, True, True, "")
    wds = verdicts["wds"]
    assert (wds.permutation, wds.resume, wds.other_ranks) == (True, False, False) and "no state_dict" in wds.notes


def test_a_peer_not_installed_is_said_and_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "missing", lambda name: f"{name} needs a package: pip install it" if name == "wds" else None)
    data = make_dataset(tmp_path / "images", images=8, classes=2, seed=0)
    config = BenchConfig(data_dir=str(data), loaders=["torch-once", "wds"], aug_repeats=[1], batch_size=2, steps=1,
                         warmup=1, image_size=16, workers=1)
    failures = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_bench(config, failures=failures)
    assert [r.loader for r in results] == ["torch-once"]
    assert [(f.loader, f.error) for f in failures] == [("wds", "wds needs a package: pip install it")]
    assert any("pip install" in str(w.message) for w in caught)
