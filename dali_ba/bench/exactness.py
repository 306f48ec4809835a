"""What each loader gives a training run, measured on a tiny data set rather than taken from its docs.

Three checks, each on the samples a loader delivers (the peers in their ``ids`` mode, dali-ba by
``last_indices``), with several DataLoader workers or DALI threads as the bench runs them:

* **permutation**: one epoch's worth of batches is every sample exactly once;
* **resume**: a state saved after ``k`` batches, loaded into a new loader, delivers the rest of
  the epoch: the two parts together are every sample exactly once;
* **other ranks**: a state saved by 2 ranks after ``k`` batches each, resumed on 1 rank, delivers
  the rest: the three parts together are every sample exactly once.

A loader without a way to save a position fails ``resume`` and ``other ranks`` with that reason.
Ranks are simulated the way each library finds them: dali-ba's ``shard_id``/``num_shards``,
Streaming's ``RANK``/``WORLD_SIZE`` environment, LitData's ``_DistributedEnv`` (it reads
``torch.distributed``, which a single process cannot be two ranks of), webdataset's ``RANK``/
``WORLD_SIZE`` through ``split_by_node``.

    dali-ba bench-exactness [--loaders dali-ba,wds,streaming,litdata]
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..sources import SampleIndex
from . import peers
from .loaders import BenchSpec

#: The tiny set the checks run on: samples, batch size, shard size, workers; a batch boundary
#: falls on every worker's and rank's share, so an exact loader has no tail to drop.
SAMPLES, BATCH, SHARD, WORKERS = 64, 4, 8, 2


@dataclass
class Exactness:
    """The checks' verdicts for one loader (``None``: not run), and why a check failed."""

    loader: str
    permutation: bool | None = None
    resume: bool | None = None
    other_ranks: bool | None = None
    notes: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def every_sample_once(parts: Iterable[Iterable[int]], num_samples: int) -> tuple[bool, str]:
    """Whether ``parts`` together hold each of ``range(num_samples)`` exactly once, and what is wrong if not."""
    seen = [int(i) for part in parts for i in part]
    counts = torch.bincount(torch.tensor(seen, dtype=torch.long), minlength=num_samples) if seen else torch.zeros(
        num_samples, dtype=torch.long)
    repeated, absent = int((counts > 1).sum()), int((counts == 0).sum())
    if repeated or absent or len(counts) != num_samples:
        return False, f"{repeated} samples delivered more than once, {absent} never"
    return True, ""


# -- the loaders under check: each a function (data, rank, world, state) -> (batches of ids, state_dict) --


@dataclass
class Run:
    """A loader under check, started at ``state`` (or the epoch's start) as rank ``rank`` of ``world``."""

    take: Callable[[int], list[list[int]]]  # the ids of the next n batches
    state_dict: Callable[[], dict] | None
    close: Callable[[], None]


def _spec(workers: int) -> BenchSpec:
    return BenchSpec(batch_size=BATCH, aug_repeats=1, image_size=16, dtype=torch.float32, device=torch.device("cpu"),
                     workers=workers, seed=3)


def _from_bench_loader(bench_loader) -> Run:
    def take(n):
        return [ids.tolist() for ids, _ in (next(bench_loader.batches) for _ in range(n))]

    return Run(take, bench_loader.state_dict, bench_loader.close)


def dali_ba_run(index: SampleIndex, rank: int, world: int, state: dict | None, workers: int) -> Run:
    from ..loader import BatchAugmentLoader

    loader = BatchAugmentLoader(index, batch_size=BATCH, aug_repeats=1, image_size=16, device="cpu", seed=3,
                                num_threads=workers, shard_id=rank, num_shards=world)
    if state is not None:
        loader.load_state_dict(state)
    batches = iter(loader)

    def take(n):
        taken = []
        for _ in range(n):
            next(batches)
            taken.append([int(i) for i in loader.last_indices])
        return taken

    return Run(take, loader.state_dict, loader.close)


def wds_run(index: SampleIndex, rank: int, world: int, state: dict | None, workers: int) -> Run:
    import webdataset

    with _environment(RANK=str(rank), WORLD_SIZE=str(world)):
        return _from_bench_loader(peers.wds(index, _spec(workers), ids=True,
                                            nodesplitter=webdataset.split_by_node if world > 1 else None))


def streaming_run(copy, rank: int, world: int, state: dict | None, workers: int) -> Run:
    with _environment(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world)):
        return _from_bench_loader(peers.streaming(copy, _spec(workers), ids=True, state=state))


def _streaming_ranks(copy, world: int, batches: int, workers: int) -> tuple[list[list[int]], list[dict]]:
    """Streaming's ranks are processes that meet in ``torch.distributed`` (it sets the group up
    itself from the environment, as under torchrun): ``world`` of them, ``batches`` each."""
    import json
    import tempfile

    import torch.multiprocessing

    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.start_processes(_streaming_rank, args=(str(copy.root), world, batches, workers,
                                                                      _free_port(), out),
                                              nprocs=world, start_method="spawn")
        results = [json.loads(Path(out, f"{rank}.json").read_text()) for rank in range(world)]
    return [ids for r in results for ids in r["taken"]], [r["state"] for r in results]


def _streaming_rank(rank: int, root: str, world: int, batches: int, workers: int, port: int, out: str) -> None:
    import json

    # For the whole process: Streaming reads the world again when it saves its state.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    run = streaming_run(peers.PeerCopy(Path(root), [], (), 0), rank, world, None, workers)
    try:
        taken, state = run.take(batches), run.state_dict()
    finally:
        run.close()
    Path(out, f"{rank}.json").write_text(json.dumps({"taken": taken, "state": state}))
    if torch.distributed.is_initialized():  # rank 0 holds the group's store: no rank leaves before all are done
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


streaming_run.ranks = _streaming_ranks


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def litdata_run(copy, rank: int, world: int, state: dict | None, workers: int) -> Run:
    from litdata.utilities.env import _DistributedEnv

    env = _DistributedEnv(world_size=world, global_rank=rank, num_nodes=1)
    with _patched(_DistributedEnv, "detect", classmethod(lambda cls: env)):
        return _from_bench_loader(peers.litdata(copy, _spec(workers), ids=True, state=state))


class _NoState(Exception):
    """The loader cannot save or load a position."""


@contextlib.contextmanager
def _environment(**variables):
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _patched(owner, name, value):
    saved = owner.__dict__[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


# -- the checks ---------------------------------------------------------------------------------------


def check(name: str, start: Callable, data, num_samples: int, *, workers: int = WORKERS) -> Exactness:
    """The three checks of one loader; ``start(data, rank, world, state, workers) -> Run``."""
    verdict = Exactness(name)
    notes = []
    per_epoch = num_samples // BATCH

    def run(rank, world, state, batches):
        loader = start(data, rank, world, state, workers)
        try:
            return loader.take(batches), (loader.state_dict() if loader.state_dict else None)
        finally:
            loader.close()

    whole, _ = run(0, 1, None, per_epoch)
    verdict.permutation, why = every_sample_once(whole, num_samples)
    if why:
        notes.append(f"permutation: {why}")

    k = per_epoch // 4
    try:
        first, state = run(0, 1, None, k)
        if state is None:
            raise _NoState(f"{name} has no state_dict: an interrupted epoch starts over")
        rest, _ = run(0, 1, state, per_epoch - k)
        verdict.resume, why = every_sample_once(first + rest, num_samples)
        if why:
            notes.append(f"resume: {why}")
        if hasattr(start, "ranks"):  # ranks that must run at once, in processes of their own
            seen, states = start.ranks(data, 2, k, workers)
        else:
            seen, states = [], []
            for rank in range(2):
                taken, state = run(rank, 2, None, k)
                seen += taken
                states.append(state)
        rest, _ = run(0, 1, states[0], per_epoch - 2 * k)
        verdict.other_ranks, why = every_sample_once(seen + rest, num_samples)
        if why:
            notes.append(f"2 ranks resumed on 1: {why}")
    except _NoState as err:
        verdict.resume = verdict.other_ranks = False
        notes.append(str(err))
    except Exception as err:  # noqa: BLE001 (a loader that refuses to resume fails the check, with its words)
        if verdict.resume is None:
            verdict.resume = False
        verdict.other_ranks = False
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        notes.append(f"{type(err).__name__}: {lines[-1][:300] if lines else ''}")  # a child's traceback ends with its error
    verdict.notes = "; ".join(notes)
    return verdict


def check_all(root: Path, loaders: Iterable[str] = ("dali-ba", "wds", "streaming", "litdata")) -> list[Exactness]:
    """Every check for each of ``loaders`` on a tiny set made under ``root`` (its copies cached as the bench's)."""
    from ..sources import make_shards, scan_image_folder
    from ..synthetic import make_dataset

    folder = root / "images"
    if not folder.is_dir():
        make_dataset(folder, images=SAMPLES, classes=4, seed=5)
    index = scan_image_folder(str(folder))
    verdicts = []
    for name in loaders:
        why = peers.missing(name)
        if why is not None:
            verdicts.append(Exactness(name, notes=why))
            continue
        if name == "dali-ba":
            verdicts.append(check(name, dali_ba_run, index, len(index)))
        elif name == "wds":
            from ..sources import index_tar_shards

            shards = root / "shards"
            if not shards.is_dir():
                make_shards(index, shards, shard_size=SHARD, prefix="train")
            verdicts.append(check(name, wds_run, index_tar_shards(str(shards / "train-*.tar")), len(index)))
        elif name == "streaming":
            verdicts.append(check(name, streaming_run, peers.mds_copy(index), len(index)))
        elif name == "litdata":
            verdicts.append(check(name, litdata_run, peers.litdata_copy(index), len(index)))
        else:
            raise ValueError(f"no exactness check for loader {name!r}; choose from dali-ba, wds, streaming, litdata")
    return verdicts
