"""What the bench measures, and the arithmetic that turns timings and counters into figures.

Counters come from two places: the loaders count the files and bytes they read where they read
them (``loaders.py``), and :class:`ProcessTree` reads the OS's own per-process counters
(``/proc/<pid>/{stat,statm,io}``) for this process and its DataLoader workers: CPU time, resident
memory and bytes read through system calls.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class TreeSample:
    """One reading of a process tree: CPU seconds used, resident bytes, bytes read (``rchar``)."""

    cpu_s: float
    rss_bytes: int
    read_bytes: int


class ProcessTree:
    """Reads CPU time, RSS and read bytes of a process and all its descendants from ``/proc``.

    Where ``/proc`` is missing (not Linux) every reading is zero, and the figures that need it are
    reported as ``None``.
    """

    def __init__(self, pid: int | None = None):
        self.pid = pid or os.getpid()
        self.available = os.path.exists(f"/proc/{self.pid}/stat")

    def pids(self) -> list[int]:
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(child) for child in f.read().split())
            except OSError:
                continue  # the process ended meanwhile
        return found

    def sample(self) -> TreeSample:
        cpu = rss = read = 0
        if not self.available:
            return TreeSample(0.0, 0, 0)
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
                with open(f"/proc/{pid}/statm") as f:
                    rss += int(f.read().split()[1]) * _PAGE
                with open(f"/proc/{pid}/io") as f:
                    read += next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
            except (OSError, StopIteration, IndexError, ValueError):
                continue
        return TreeSample(cpu / _TICKS, rss, read)


#: Steps per window. Loaders with worker processes deliver in bursts (a long wait, then batches
#: that were already queued), so single-step times are bimodal and their median says little about
#: throughput; a window of several steps averages a burst out.
WINDOW = 5


@dataclass(frozen=True)
class StepStats:
    """Throughput over sliding windows of timed steps: the median window, and the spread."""

    steps: int
    steps_per_s: float
    steps_per_s_low: float
    steps_per_s_high: float
    total_s: float


def step_stats(step_times_s, window: int = WINDOW) -> StepStats:
    """Summarizes timed steps (seconds each, warm-up already left out).

    ``steps_per_s`` is the median over every run of ``window`` consecutive steps of
    ``window / (their total time)``; ``low``/``high`` are the 10th and 90th percentiles of the
    same window rates. With fewer steps than ``window`` the one window is all steps.

    Raises:
        ValueError: No steps, or a time that is not positive.
    """
    times = np.asarray(step_times_s, dtype=np.float64)
    if times.size == 0:
        raise ValueError("step_stats needs at least one timed step")
    if (times <= 0).any():
        raise ValueError(f"step times must be > 0 seconds, but got {times.min()}")
    width = min(window, times.size)
    sums = np.convolve(times, np.ones(width), mode="valid")
    rates = width / sums
    low, median, high = np.percentile(rates, [10, 50, 90])
    return StepStats(int(times.size), float(median), float(low), float(high), float(times.sum()))


@dataclass(frozen=True)
class Result:
    """One loader at one M: the figures the bench reports (all measured over the timed steps).

    ``bytes_read_*`` come from the loader's own read calls; ``os_read_bytes_per_step`` from the
    OS counters of the whole process tree (it also sees any other reads, so it is a cross-check).
    """

    loader: str
    aug_repeats: int
    batch_size: int
    effective_batch: int
    model: str
    steps: int
    steps_per_s: float
    steps_per_s_low: float
    steps_per_s_high: float
    mean_steps_per_s: float
    effective_images_per_s: float
    unique_images_per_s: float
    decodes_per_step: float
    reads_per_effective_image: float
    bytes_read_per_step: float
    bytes_read_per_effective_image: float
    read_mb_per_s: float
    files_per_s: float
    read_wait_percent: float | None
    os_read_bytes_per_step: float | None
    cpu_util_percent: float | None
    peak_rss_mib: float | None
    gpu_memory_mib: float | None = None
    gpu_util_percent: float | None = None
    #: How the loader ran where it has more than one way (``dali-ba``: region or whole-image
    #: decode; ``dali-large``: fused decode+crop or decode then crop), chosen by the decode probe.
    variant: str | None = None
    #: Start-up: seconds to index the source this loader reads (shared by the loaders of that
    #: source), and from building the loader to its first batch (with ``warmup`` >= 1).
    index_s: float | None = None
    first_batch_s: float | None = None
    #: Reads sent to storage per effective image (row groups for Parquet, requests behind URLs),
    #: where the loader counts them (dali-ba).
    requests_per_effective_image: float | None = None
    step_times_ms: tuple = ()

    def as_dict(self) -> dict:
        return asdict(self)


def make_result(
    *,
    loader: str,
    aug_repeats: int,
    batch_size: int,
    model: str,
    unique_per_step: int,
    step_times_s,
    files_read: int,
    bytes_read: int,
    before: TreeSample,
    after: TreeSample,
    peak_rss_bytes: int,
    cores: int,
    tree_available: bool,
    gpu_memory_mib: float | None = None,
    gpu_util_percent: float | None = None,
    read_wait_s: float | None = None,
    variant: str | None = None,
    index_s: float | None = None,
    first_batch_s: float | None = None,
    requests: int | None = None,
) -> Result:
    """Turns one timed run into a :class:`Result`.

    Args:
        files_read, bytes_read: What the loader read during the timed steps.
        before, after: Process-tree readings at the start and end of the timed steps.
        peak_rss_bytes: Largest tree RSS seen during the timed steps.
        cores: CPU cores available, for utilization (100% = all of them busy).
        tree_available: Whether the ``/proc`` readings are real.
        read_wait_s: Time the training thread waited on reads during the timed steps, where the
            loader can tell.
        requests: Reads sent to storage during the timed steps, where the loader counts them.
    """
    stats = step_stats(step_times_s)
    effective = batch_size * aug_repeats
    wall = stats.total_s
    bytes_per_step = bytes_read / stats.steps
    return Result(
        loader=loader,
        aug_repeats=aug_repeats,
        batch_size=batch_size,
        effective_batch=effective,
        model=model,
        steps=stats.steps,
        steps_per_s=stats.steps_per_s,
        steps_per_s_low=stats.steps_per_s_low,
        steps_per_s_high=stats.steps_per_s_high,
        mean_steps_per_s=stats.steps / stats.total_s,
        effective_images_per_s=effective * stats.steps_per_s,
        unique_images_per_s=unique_per_step * stats.steps_per_s,
        decodes_per_step=files_read / stats.steps,
        reads_per_effective_image=files_read / (stats.steps * effective),
        bytes_read_per_step=bytes_per_step,
        bytes_read_per_effective_image=bytes_per_step / effective,
        read_mb_per_s=bytes_per_step * stats.steps_per_s / 1e6,
        files_per_s=files_read / stats.steps * stats.steps_per_s,
        read_wait_percent=100.0 * read_wait_s / wall if read_wait_s is not None else None,
        os_read_bytes_per_step=(after.read_bytes - before.read_bytes) / stats.steps if tree_available else None,
        cpu_util_percent=100.0 * (after.cpu_s - before.cpu_s) / (wall * cores) if tree_available else None,
        peak_rss_mib=peak_rss_bytes / 2**20 if tree_available else None,
        gpu_memory_mib=gpu_memory_mib,
        gpu_util_percent=gpu_util_percent,
        variant=variant,
        index_s=index_s,
        first_batch_s=first_batch_s,
        requests_per_effective_image=requests / (stats.steps * effective) if requests is not None else None,
        step_times_ms=tuple(round(t * 1000, 3) for t in step_times_s),
    )


def free_repeats(results: list[Result], tolerance: float = 0.05) -> dict[str, int | None]:
    """Per loader, the largest M whose steps/s stays within ``tolerance`` of that loader's M=1.

    These are the replicas that come for free. ``None`` where the loader was not run at M=1.
    """
    out: dict[str, int | None] = {}
    for name in dict.fromkeys(r.loader for r in results):
        mine = sorted((r for r in results if r.loader == name), key=lambda r: r.aug_repeats)
        base = next((r.steps_per_s for r in mine if r.aug_repeats == 1), None)
        if base is None:
            out[name] = None
            continue
        out[name] = max(r.aug_repeats for r in mine if r.steps_per_s >= (1.0 - tolerance) * base)
    return out
