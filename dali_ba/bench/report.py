"""Turning bench results into what people read: a table, JSON, CSV and a plot.

Every exported file carries the environment (machine, versions, git SHA, exact command) and the
data set's measured statistics next to the results, so a number never travels without its
context.
"""

from __future__ import annotations

import csv
import json
import textwrap
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
    ("requests/eff img", "requests_per_effective_image", "{:.3f}"),
    ("KiB read/step", "bytes_read_per_step", None),
    ("KiB/eff img", "bytes_read_per_effective_image", None),
    ("OS KiB/step", "os_read_bytes_per_step", None),
    ("read MB/s", "read_mb_per_s", "{:.1f}"),
    ("files/s", "files_per_s", "{:.0f}"),
    ("read wait %", "read_wait_percent", "{:.1f}"),
    ("CPU %", "cpu_util_percent", "{:.0f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("GPU MiB", "gpu_memory_mib", "{:.0f}"),
    ("index s", "index_s", "{:.2f}"),
    ("1st batch s", "first_batch_s", "{:.2f}"),
)
#: The default table: what a person compares, within 120 columns. ``--wide`` shows all of COLUMNS,
#: and the JSON and CSV exports always hold every figure.
NARROW = ("loader", "M", "steps/s", "eff img/s", "uniq img/s", "reads/eff img", "read MB/s", "CPU %", "peak RSS MiB", "GPU MiB")


def _cell(result: Result, key, fmt) -> str:
    if key is None:
        return f"({result.steps_per_s_low:.2f}..{result.steps_per_s_high:.2f})"
    value = getattr(result, key)
    if value is None:
        return "-"
    if fmt is None:  # bytes, shown in KiB
        return f"{value / 1024:.0f}" if value >= 10240 else f"{value / 1024:.1f}"
    return fmt.format(value)


def _layout(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(results: list[Result], *, wide: bool = False) -> str:
    """A plain-text table, one row per (loader, M), grouped by M; the NARROW columns unless ``wide``."""
    show_gpu = any(r.gpu_memory_mib is not None for r in results)
    columns = [c for c in COLUMNS if (wide or c[0] in NARROW) and (show_gpu or c[1] != "gpu_memory_mib")]
    rows = [[title for title, _, _ in columns]]
    rows += [[_cell(r, key, fmt) for _, key, fmt in columns] for r in sorted(results, key=lambda r: r.aug_repeats)]
    return _layout(rows)


def startup(results: list[Result]) -> str:
    """A few words on start-up: each source's index time, each loader's first batch (median over M)."""
    import numpy as np

    from .loaders import REGISTRY

    indexes, firsts = {}, {}
    for r in results:
        if r.loader == "synthetic":
            continue
        source = REGISTRY[r.loader].reads if r.loader in REGISTRY else "folder"
        source = "--url source" if source == "url" else source
        if r.index_s is not None:
            indexes.setdefault(source, r.index_s)
        if r.first_batch_s is not None:
            firsts.setdefault(r.loader, []).append(r.first_batch_s)
    if not indexes and not firsts:
        return ""
    parts = ["index of the " + ", ".join(f"{source} {seconds:.2g} s" for source, seconds in indexes.items())] if indexes else []
    if firsts:
        parts.append("loader built to first batch: " + ", ".join(f"{name} {np.median(times):.2g} s" for name, times in firsts.items()))
    return textwrap.fill("Start-up: " + "; ".join(parts) + ".", width=100)


def comparison(results: list[Result], ours: str = "dali-ba") -> str:
    """One small table: ``ours``'s effective images/s over each other loader's, per M, and the I/O saving.

    The I/O column is the other loader's bytes read per effective image over ours, at the largest
    M both ran: how much less ``ours`` reads for the images the model sees. Empty where ``ours``
    was not run.
    """
    ms = sorted({r.aug_repeats for r in results if r.loader == ours})
    by = {(r.loader, r.aug_repeats): r for r in results}
    others = [name for name in dict.fromkeys(r.loader for r in results) if name != ours]
    if not ms or not others:
        return ""
    rows = [[f"{ours} over", *(f"M={m}" for m in ms), "reads less"]]
    for name in others:
        cells = []
        for m in ms:
            theirs = by.get((name, m))
            cells.append(f"{by[(ours, m)].effective_images_per_s / theirs.effective_images_per_s:.2f}x"
                         if theirs and theirs.effective_images_per_s else "-")
        both = [m for m in ms if (name, m) in by]
        if not both or name == "synthetic":
            cells.append("-")  # not run at our M values, or reads nothing by design
        elif not by[(name, both[-1])].bytes_read_per_effective_image:
            cells.append(f"they read 0 at M={both[-1]}")  # everything came from their own cache
        elif not by[(ours, both[-1])].bytes_read_per_effective_image:
            cells.append(f"we read 0 at M={both[-1]}")
        else:
            m = both[-1]
            saving = by[(name, m)].bytes_read_per_effective_image / by[(ours, m)].bytes_read_per_effective_image
            cells.append(f"{saving:.1f}x at M={m}")
        rows.append([name, *cells])
    return f"{ours}'s effective images/s over each loader's (same B, M, size, device):\n" + _layout(rows)


def free_replicas(results: list[Result], *, device: str, model: str, ours: str = "dali-ba", tolerance: float = 0.05) -> str:
    """A few words on the paper's free replicas: up to which M ``ours`` keeps its M=1 steps/s, and why (not)."""
    return textwrap.fill(_free_replicas(results, device, model, ours, tolerance), width=100)


def _free_replicas(results, device, model, ours, tolerance) -> str:
    free = free_repeats(results, tolerance).get(ours)
    mine = sorted((r for r in results if r.loader == ours), key=lambda r: r.aug_repeats)
    if free is None or len(mine) < 2:
        return f"Free replicas: run {ours} at M=1 and a larger M to see whether extra replicas cost steps/s."
    first, last = mine[0], mine[-1]
    change = f"{first.steps_per_s:.2f} steps/s at M=1, {last.steps_per_s:.2f} at M={last.aug_repeats}"
    if free > 1:
        return (f"Free replicas: {ours} keeps its steps/s within {tolerance:.0%} of M=1 up to M={free} ({change}): "
                f"the extra replicas fit in time the step spends anyway, as in the paper's Fig. 5.")
    if device == "cpu":
        why = ("on the CPU every replica's crop, resize and normalize is work of its own on the same cores"
               + (", and there is no model step to hide it behind" if model == "none" else ""))
        return (f"No replica is free here ({change}): {why}. The paper's free replicas need an accelerator, where "
                f"the replicas are made on the GPU while the model is the limit.")
    return (f"No replica is free here ({change}): the step is limited by the input side, not the model; "
            f"try a larger model or a smaller B.")


def to_json(path, results: list[Result], environment: dict, dataset: dict, config: dict, *, planned=(), failures=()) -> None:
    """Writes everything of a bench run; ``planned`` ((loader, M) in run order) and ``failures``
    (``runner.Failure``) let a reader tell which runs failed and which were never reached."""
    payload = {
        "environment": environment,
        "dataset": dataset,
        "config": config,
        "planned": [list(run) for run in planned],
        "results": [r.as_dict() for r in results],
        "failures": [f.as_dict() for f in failures],
        "free_repeats": free_repeats(results),
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def to_csv(path, results: list[Result], environment: dict) -> None:
    if not results:
        Path(path).write_text("")  # nothing finished yet: the JSON says what failed
        return
    fields = [k for k in results[0].as_dict() if k != "step_times_ms"] + ["git_sha", "command", "cpu", "gpu", "dali", "torch",
                                                                          "torchvision", "cuda"]
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
                ax.fill_between(ms, [r.steps_per_s_low for r in mine], [r.steps_per_s_high for r in mine], color=line.get_color(),
                                alpha=0.15)
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
