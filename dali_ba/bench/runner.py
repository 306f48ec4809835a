"""Runs the comparison grid: every loader at every M, one after the other, in one process.

For each (loader, M) the loader is built, warmed up (pipelines and worker queues filled, not
timed), then ``steps`` steps are timed one by one: the wall time between consecutive batches,
including the model's forward/backward when ``model`` is set. Counters are read around the timed
steps only.

With ``cold_cache`` every file of the data set (and of its tar and Parquet copies) is evicted from
the OS page cache right before the timed steps, for every loader alike, so the timed reads come
from storage; the Parquet source's own row-group cache is emptied too.
Loaders that read the tar copy (``dali-ba-tar``, ``wds``) get it made once with ``make_shards`` and
cached; ``dali-ba-parquet`` likewise gets a Parquet copy (``write_parquet``, Hugging Face's
layout), ``streaming`` an MDS copy and ``litdata`` an optimized one (``peers.py``). A peer whose
package is not installed is left out with a warning that says how to install it.
"""

from __future__ import annotations

import gc
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import TrainOptions, resolve_device, resolve_dtype
from ..sources import SampleIndex, index_tar_shards, make_shards, redact, scan_image_folder
from ..sources.cache import entry, folder_built_once
from . import peers
from .loaders import LOADERS, RECIPES, REGISTRY, TIMM_LOADERS, BenchSpec, default_loaders, is_timm_recipe, reading
from .metrics import ProcessTree, Result, make_result

MODELS = ("none", "resnet18", "resnet50")
#: Samples per shard of the bench's tar copy (about 25 MB of ImageNet-like JPEGs), and per file of
#: its Parquet copy (whose row groups hold 100 rows, as Hugging Face writes image sets).
BENCH_SHARD_SIZE = 256


@dataclass(frozen=True)
class BenchConfig:
    """One bench run; the CLI flags map 1:1 to these fields.

    Attributes:
        data_dir: ImageFolder tree to read.
        loaders: Loader names, from ``loaders.LOADERS``.
        aug_repeats: The M values to run.
        batch_size: B.
        image_size: Output side.
        steps: Timed steps per (loader, M).
        warmup: Untimed steps before them.
        model: ``none``, ``resnet18`` or ``resnet50``: a training step per batch.
        dtype: Output dtype (and the model's autocast dtype for float16).
        device: ``auto``, ``cpu`` or ``cuda``.
        workers: DALI threads and DataLoader workers; ``None`` = the cores available.
        seed: Seed of orders and augmentations.
        channels_last: Feed the model channels-last tensors.
        cold_cache: Evict the data from the page cache before each timed run.
        recipe: The training recipe every loader runs (``loaders.RECIPES``).
        random_erase: Probability of random erasing per replica.
        interpolation: ``bilinear``, ``bicubic`` or ``nearest``: the crop's resize and the policy's ops.
        ra_magnitude: RandAugment's magnitude (``recipe="randaugment"`` only).
        url: What ``dali-ba-url`` reads: tar shards or Parquet files (a pattern ending in
            ``.parquet``), behind a URL (``s3://``, ``https://``, ...; credentials from the
            store's usual places) or at a path.
    """

    data_dir: str
    loaders: tuple[str, ...] = default_loaders("cpu")
    aug_repeats: tuple[int, ...] = (1, 2, 4, 8)
    batch_size: int = 32
    image_size: int = 224
    steps: int = 20
    warmup: int = 5
    model: str = "none"
    dtype: str = "float32"
    device: str = "auto"
    workers: int | None = None
    seed: int = 0
    channels_last: bool = False
    cold_cache: bool = False
    url: str | None = None
    recipe: str = "imagenet"
    random_erase: float = 0.0
    interpolation: str = "bilinear"
    ra_magnitude: int = 9

    def __post_init__(self):
        unknown = [name for name in self.loaders if name not in LOADERS]
        if unknown or not self.loaders:
            raise ValueError(f"unknown loader {', '.join(unknown) or '(none given)'}; choose from {', '.join(LOADERS)}")
        if not self.aug_repeats or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.aug_repeats):
            raise ValueError(f"aug_repeats must be integers >= 1, but got {self.aug_repeats!r}")
        for name in ("batch_size", "image_size", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, but got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, but got {self.warmup!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, but got {self.model!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be an int >= 1, but got {self.workers!r}")
        resolve_dtype(self.dtype)
        if self.recipe not in RECIPES and not is_timm_recipe(self.recipe):
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)} (the recipes every loader has), or timm's "
                             f"RandAugment ('rand-m9-mstd0.5-inc1'), but got {self.recipe!r}")
        if is_timm_recipe(self.recipe):
            others = [name for name in self.loaders if name not in TIMM_LOADERS]
            if others:
                raise ValueError(f"recipe {self.recipe} (timm's) runs on the loaders {', '.join(TIMM_LOADERS)}; leave out "
                                 f"{', '.join(others)}")
        elif "timm" in self.loaders:
            raise ValueError(f"loader timm runs timm's recipes (--recipe rand-m9-mstd0.5-inc1), but the recipe is {self.recipe}")
        # The loader's own checks, with the names the CLI gives them.
        TrainOptions(recipe=self.recipe, random_erase=self.random_erase, interpolation=self.interpolation,
                     ra_magnitude=self.ra_magnitude, device="cpu")
        device = resolve_device(self.device)
        for name in self.loaders:
            if REGISTRY[name].reads == "url" and not self.url:
                raise ValueError(f"loader {name} reads the url option (--url): give the tar shards or Parquet files to read")
            if name == "wds-url" and self.url.rstrip("/").endswith(".parquet"):
                raise ValueError("loader wds-url reads tar shards, but the url option (--url) names Parquet files")
            if REGISTRY[name].needs_gpu and device.type != "cuda":
                raise ValueError(f"loader {name} needs a CUDA device; leave it out on a CPU-only machine")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _ModelStep:
    """One SGD training step of a torchvision model on each batch (the paper's Fig. 5 setting)."""

    def __init__(self, name: str, num_classes: int, device: torch.device, dtype: torch.dtype, channels_last: bool):
        import torchvision

        self.model = getattr(torchvision.models, name)(num_classes=num_classes).to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.device, self.dtype = device, dtype

    def __call__(self, images, labels):
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(self.model(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def _sync(device: torch.device) -> None:
    """Waits for the step's work on the consumer's stream, not for the whole device: DALI's own
    stream keeps decoding the next batches meanwhile, which is the run-ahead being measured."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def _release_memory(device: torch.device) -> None:
    """Returns what a finished run's pipelines and tensors cached to the device, before the next run."""
    gc.collect()  # ends DataLoader workers and frees pipelines before the next loader starts
    if device.type == "cuda":
        from nvidia.dali.backend import ReleaseUnusedMemory

        ReleaseUnusedMemory()
        torch.cuda.empty_cache()


def evict_from_page_cache(paths) -> None:
    """Asks the OS to drop ``paths`` from its page cache (no root needed).

    ``posix_fadvise(DONTNEED)`` drops clean pages that no process has mapped; pages mapped at that
    moment (DALI's file reader maps the files it reads) stay.
    """
    for path in dict.fromkeys(paths):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def tar_copy(index: SampleIndex, progress=None, timed: dict | None = None) -> SampleIndex:
    """The index of a tar-shard copy of ``index``, made once under ``cache_dir()/bench-shards``.

    ``timed["index_s"]`` is set to the time indexing the copy took (its making aside).
    """
    folder = _made_once(index, "bench-shards", lambda folder: make_shards(
        index, folder, shard_size=BENCH_SHARD_SIZE, prefix="train", progress=progress))
    return _timed(lambda: index_tar_shards(str(folder / "train-*.tar")), timed)


def parquet_copy(index: SampleIndex, timed: dict | None = None) -> SampleIndex:
    """The index of a Parquet copy of ``index``, made once under ``cache_dir()/bench-parquet`` (``timed`` as for tar_copy)."""
    from ..sources.parquet import index_parquet, write_parquet

    folder = _made_once(index, "bench-parquet", lambda folder: write_parquet(
        index, folder, rows_per_file=BENCH_SHARD_SIZE, row_group_size=100))
    return _timed(lambda: index_parquet(str(folder / "train-*.parquet")), timed)


def url_index(url: str, timed: dict | None = None) -> SampleIndex:
    """The index of ``url``: Parquet files where the pattern ends in ``.parquet``, else tar shards
    (``timed`` as for tar_copy)."""
    if url.rstrip("/").endswith(".parquet"):
        from ..sources.parquet import index_parquet

        return _timed(lambda: index_parquet(url), timed)
    return _timed(lambda: index_tar_shards(url), timed)


#: The copies of the bench's data that loaders read (``Entry.reads``), each made once and cached.
COPIES = {"tar copy": tar_copy, "Parquet copy": parquet_copy, "MDS copy": peers.mds_copy,
          "litdata copy": peers.litdata_copy}


def _made_once(index: SampleIndex, kind: str, write) -> Path:
    """The cache entry ``kind`` for the files of ``index`` (``sources.cache``), filled by ``write(folder)`` the first time."""
    digest = hashlib.sha1("\n".join(index.files).encode()).hexdigest()
    folder = entry(kind, Path(index.root).name, digest)
    return folder_built_once(folder, write, name=f"the {kind} copy of {index.root}")


def _timed(build, timed: dict | None) -> SampleIndex:
    """``build()``, with the seconds it took in ``timed["index_s"]``."""
    start = time.perf_counter()
    index = build()
    if timed is not None:
        timed["index_s"] = time.perf_counter() - start
    return index


def run_one(config: BenchConfig, name: str, aug_repeats: int, index, progress=None, evict=(), index_s=None) -> Result:
    """Times one loader at one M; ``progress(n)`` is called after every step.

    ``evict``: files to drop from the page cache right before the timed steps (``cold_cache``).
    ``index_s``: how long indexing ``index`` took, reported with the result.
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype)
    spec = BenchSpec(
        batch_size=config.batch_size,
        aug_repeats=aug_repeats,
        image_size=config.image_size,
        dtype=dtype,
        device=device,
        workers=config.workers or _cores(),
        seed=config.seed,
        channels_last=config.channels_last,
        recipe=config.recipe,
        random_erase=config.random_erase,
        interpolation=config.interpolation,
        ra_magnitude=config.ra_magnitude,
    )
    model = None if config.model == "none" else _ModelStep(config.model, len(index.classes), device, dtype, config.channels_last)
    tree = ProcessTree()
    bench_loader = None
    first_batch_s = None
    try:
        built = time.perf_counter()
        bench_loader = REGISTRY[name].factory(index, spec)
        batches = bench_loader.batches

        def step():
            images, labels = next(batches)
            if config.channels_last:  # a no-op where the loader already made channels-last images
                images = images.contiguous(memory_format=torch.channels_last)
            if model is not None:
                model(images, labels)
            _sync(device)

        for k in range(config.warmup):
            step()
            if k == 0:
                first_batch_s = time.perf_counter() - built
            if progress:
                progress(1)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        evict_from_page_cache(evict)
        if evict:
            index.source.clear()
        files0, bytes0 = bench_loader.read_counts()
        wait0 = bench_loader.read_wait_s() if bench_loader.read_wait_s else None
        requests0 = bench_loader.requests() if bench_loader.requests else None
        before = tree.sample()
        peak_rss = before.rss_bytes
        times = []
        start = time.perf_counter()
        for _ in range(config.steps):
            step()
            now = time.perf_counter()
            times.append(now - start)
            start = now
            peak_rss = max(peak_rss, tree.sample().rss_bytes)
            if progress:
                progress(1)
        after = tree.sample()
        files1, bytes1 = bench_loader.read_counts()
        waited = bench_loader.read_wait_s() - wait0 if bench_loader.read_wait_s else None
        requests = bench_loader.requests() - requests0 if bench_loader.requests else None
        gpu_mem, gpu_util = _gpu_figures(device)
        return make_result(
            loader=name,
            aug_repeats=aug_repeats,
            batch_size=config.batch_size,
            model=config.model,
            unique_per_step=bench_loader.unique_per_step,
            step_times_s=times,
            files_read=files1 - files0,
            bytes_read=bytes1 - bytes0,
            before=before,
            after=after,
            peak_rss_bytes=peak_rss,
            cores=_cores(),
            tree_available=tree.available,
            gpu_memory_mib=gpu_mem,
            gpu_util_percent=gpu_util,
            read_wait_s=waited,
            requests=requests,
            variant=bench_loader.variant,
            index_s=index_s,
            first_batch_s=first_batch_s,
        )
    finally:
        if bench_loader is not None:
            bench_loader.close()
        bench_loader = model = None  # before the memory is released: nothing of this run may hold it
        _release_memory(device)


def _gpu_figures(device: torch.device):
    if device.type != "cuda":
        return None, None
    free, total = torch.cuda.mem_get_info(device)  # device-wide: counts DALI's memory too
    try:
        util = float(torch.cuda.utilization(device))
    except Exception:  # noqa: BLE001 (needs pynvml; the figure is optional)
        util = None
    return (total - free) / 2**20, util


@dataclass(frozen=True)
class Failure:
    """A (loader, M) run that raised: the bench records it and goes on with the next run."""

    loader: str
    aug_repeats: int
    error: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def planned_runs(config: BenchConfig) -> list[tuple[str, int]]:
    """Every (loader, M) of ``config`` in the order they run: M by M as given, loaders within each M."""
    return [(name, m) for m in config.aug_repeats for name in config.loaders]


def run_bench(config: BenchConfig, progress=None, on_result=None, failures: list | None = None) -> list[Result]:
    """Runs every loader at every M of ``config``, in the order of :func:`planned_runs`.

    A run that raises (a loader that cannot be built for this B*M, a device out of memory) is
    appended to ``failures`` as a :class:`Failure`, with a warning, and the bench goes on.
    ``on_result(results)`` is called after each (loader, M), finished or failed, so that a run cut
    short (a time limit on a lent GPU) keeps what it finished.
    """
    failures = [] if failures is None else failures
    loaders = []
    for name in config.loaders:  # a peer whose package is missing is said and left out, not a crash
        why = peers.missing(name)
        if why is None:
            loaders.append(name)
        else:
            warnings.warn(why, stacklevel=2)
            failures.extend(Failure(name, m, why, 0.0) for m in config.aug_repeats)
    start = time.perf_counter()
    index = scan_image_folder(config.data_dir)
    index_s = {None: time.perf_counter() - start}  # per source: the folder, its tar and Parquet copies
    copies = {}  # the tar and Parquet copies, made once and cached on disk
    for data, copy in COPIES.items():
        names = reading(data)
        if any(name in names for name in loaders):
            timed = {}
            copies.update(dict.fromkeys(names, copy(index, timed=timed)))
            index_s.update(dict.fromkeys(names, timed["index_s"]))
    evict = (*index.files, *(f for copy in copies.values() for f in copy.files)) if config.cold_cache else ()
    if any(name in reading("url") for name in loaders):  # after the evict list: a remote source's reads are its own
        timed = {}
        copies.update(dict.fromkeys(reading("url"), url_index(config.url, timed=timed)))
        index_s.update(dict.fromkeys(reading("url"), timed["index_s"]))
    results = []
    for name, aug_repeats in planned_runs(config):
        if name not in loaders:
            continue
        source = copies.get(name, index)
        source.source.clear()  # no run starts with the row groups an earlier one left
        start = time.perf_counter()
        try:
            results.append(run_one(config, name, aug_repeats, source, progress, evict=evict,
                                   index_s=index_s.get(name, index_s[None])))
        except Exception as err:  # noqa: BLE001 (one broken run must not lose the others)
            message = f"{type(err).__name__}: {err}".strip().splitlines()
            failure = Failure(name, aug_repeats, " ".join(line.strip() for line in message)[:500], time.perf_counter() - start)
            failures.append(failure)
            warnings.warn(f"{name} at M={aug_repeats} failed: {failure.error}", stacklevel=2)
        if on_result:
            on_result(results)
    return results


@dataclass
class Environment:
    """Where and with what a result was measured."""

    cpu: str
    cores: int
    memory_gib: float
    gpu: str | None
    driver: str | None
    cuda: str | None
    python: str
    dali: str
    torch: str
    torchvision: str
    dali_ba: str
    git_sha: str | None
    command: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def environment() -> Environment:
    import nvidia.dali
    import torchvision

    from .. import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = 0.0
    gpu = driver = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            ).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            driver = None
    try:
        here = os.path.dirname(__file__)
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=here).stdout.strip() or None
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10, cwd=here
        ).stdout.strip()
        if sha and changed:
            sha += "-dirty"  # the code that ran is not exactly this commit
    except (OSError, subprocess.SubprocessError):
        sha = None
    return Environment(
        cpu=cpu,
        cores=_cores(),
        memory_gib=round(memory, 1),
        gpu=gpu,
        driver=driver,
        cuda=torch.version.cuda,
        python=platform.python_version(),
        dali=nvidia.dali.__version__,
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        dali_ba=__version__,
        git_sha=sha,
        command=redact(shlex.join([os.path.basename(sys.argv[0])] + sys.argv[1:])),  # no user:password@ of a --url
    )
