"""Turning bench results into what people read: a table, JSON, CSV and a plot.

Every exported file carries the environment (machine, versions, git SHA, exact command) and the
data set's measured statistics next to the results, so a number never travels without its
context.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .metrics import Result, free_repeats

COLUMNS = (
    ("loader", "loader", "{}"),
    ("M", "aug_repeats", "{}"),
    ("steps/s", "steps_per_s", "{:.2f}"),
    ("(p10..p90)", None, None),
    ("eff img/s", "effective_images_per_s", "{:.0f}"),
    ("uniq img/s", "unique_images_per_s", "{:.0f}"),
    ("decodes/step", "decodes_per_step", "{:.0f}"),
    ("reads/eff img", "reads_per_effective_image", "{:.3f}"),
    ("KiB read/step", "bytes_read_per_step", None),
    ("KiB/eff img", "bytes_read_per_effective_image", None),
    ("OS KiB/step", "os_read_bytes_per_step", None),
    ("read MB/s", "read_mb_per_s", "{:.1f}"),
    ("files/s", "files_per_s", "{:.0f}"),
    ("read wait %", "read_wait_percent", "{:.1f}"),
    ("CPU %", "cpu_util_percent", "{:.0f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("GPU MiB", "gpu_memory_mib", "{:.0f}"),
)


def _cell(result: Result, key, fmt) -> str:
    if key is None:
        return f"({result.steps_per_s_low:.2f}..{result.steps_per_s_high:.2f})"
    value = getattr(result, key)
    if value is None:
        return "-"
    if fmt is None:  # bytes, shown in KiB
        return f"{value / 1024:.0f}" if value >= 10240 else f"{value / 1024:.1f}"
    return fmt.format(value)


def table(results: list[Result]) -> str:
    """A plain-text table, one row per (loader, M), grouped by M."""
    show_gpu = any(r.gpu_memory_mib is not None for r in results)
    columns = [c for c in COLUMNS if show_gpu or c[1] != "gpu_memory_mib"]
    rows = [[title for title, _, _ in columns]]
    rows += [[_cell(r, key, fmt) for _, key, fmt in columns] for r in sorted(results, key=lambda r: r.aug_repeats)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratios(results: list[Result], numerator: str = "dali-ba") -> list[str]:
    """Lines like ``M=4: dali-ba effective images/s = 2.31x torch-once``, for every other loader."""
    lines = []
    for m in sorted({r.aug_repeats for r in results}):
        at_m = {r.loader: r for r in results if r.aug_repeats == m}
        if numerator not in at_m:
            continue
        ours = at_m[numerator]
        parts = []
        for name, other in at_m.items():
            if name == numerator:
                continue
            speed = ours.effective_images_per_s / other.effective_images_per_s
            io = (
                f" (reads/eff img {ours.reads_per_effective_image / other.reads_per_effective_image:.3f}x, "
                f"bytes/eff img {ours.bytes_read_per_effective_image / other.bytes_read_per_effective_image:.3f}x)"
                if other.reads_per_effective_image and other.bytes_read_per_effective_image
                else ""
            )
            parts.append(f"{speed:.2f}x {name}{io}")
        if parts:
            lines.append(f"M={m}: {numerator} effective images/s = " + "; ".join(parts))
    return lines


def summary_lines(results: list[Result], tolerance: float = 0.05) -> list[str]:
    """Per loader: the largest M whose steps/s stays within 5% of its M=1 (the free replicas)."""
    lines = []
    for name, m in free_repeats(results, tolerance).items():
        if m is None:
            lines.append(f"{name}: not run at M=1, no free-replica figure")
        else:
            lines.append(f"{name}: steps/s within {tolerance:.0%} of M=1 up to M={m}")
    return lines


def to_json(path, results: list[Result], environment: dict, dataset: dict, config: dict) -> None:
    payload = {
        "environment": environment,
        "dataset": dataset,
        "config": config,
        "results": [r.as_dict() for r in results],
        "free_repeats": free_repeats(results),
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def to_csv(path, results: list[Result], environment: dict) -> None:
    fields = [k for k in results[0].as_dict() if k != "step_times_ms"] + ["git_sha", "command", "cpu", "gpu", "dali", "torch", "torchvision", "cuda"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results:
            row = {k: v for k, v in r.as_dict().items() if k != "step_times_ms"}
            writer.writerow({**row, **{k: environment.get(k) for k in fields[len(row):]}})


def plot(path, results: list[Result], title: str = "") -> None:
    """Three panels against M, one line per loader: steps/s, effective images/s, bytes per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = (
        ("steps_per_s", "steps/s (median of 5-step windows, p10..p90 band)"),
        ("effective_images_per_s", "effective images/s (B*M)"),
        ("bytes_read_per_effective_image", "KiB read per effective image"),
    )
    for ax, (key, label) in zip(axes, panels):
        for name in dict.fromkeys(r.loader for r in results):
            mine = sorted((r for r in results if r.loader == name), key=lambda r: r.aug_repeats)
            ms = [r.aug_repeats for r in mine]
            values = [getattr(r, key) / (1024 if key.startswith("bytes") else 1) for r in mine]
            (line,) = ax.plot(ms, values, marker="o", label=name)
            if key == "steps_per_s":
                ax.fill_between(ms, [r.steps_per_s_low for r in mine], [r.steps_per_s_high for r in mine], color=line.get_color(), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r.aug_repeats for r in results}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("M (aug_repeats)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
