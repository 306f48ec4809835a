"""The last thing gpu_suite.sh prints: what each step planned, finished, failed and never reached.

    python benchmarks/suite_summary.py OUT_DIR

Reads ``OUT_DIR/gpu-*.json`` (the bench's exports, rewritten after every (loader, M), so a step
cut by its time limit still says what it finished), ``OUT_DIR/probe.json`` and the last line of
``OUT_DIR/pytest.log``. A run is *cut* when its step was stopped before reaching it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def step_summary(path: Path) -> list[str]:
    saved = json.loads(path.read_text())
    planned = [tuple(run) for run in saved.get("planned", [])]
    done = {(r["loader"], r["aug_repeats"]): r for r in saved["results"]}
    failed = {(f["loader"], f["aug_repeats"]): f for f in saved.get("failures", [])}
    cut = [run for run in planned if run not in done and run not in failed]
    name = path.stem.removeprefix("gpu-")
    lines = [f"{name}: {len(planned)} planned, {len(done)} done, {len(failed)} failed, {len(cut)} cut"]
    for (loader, m), r in done.items():
        variant = f" [{r['variant']}]" if r.get("variant") else ""
        lines.append(f"  {loader:<12} M={m:<2} {r['steps_per_s']:8.2f} steps/s {r['effective_images_per_s']:9.0f} eff img/s{variant}")
    lines += [f"  failed: {loader} M={m}: {f['error'][:160]}" for (loader, m), f in failed.items()]
    if cut:
        lines.append("  cut: " + ", ".join(f"{loader} M={m}" for loader, m in cut))
    return lines


def summary(out: Path) -> str:
    lines = []
    probe = out / "probe.json"
    if probe.exists():
        verdicts = json.loads(probe.read_text())["verdicts"]
        lines.append("probe: " + "; ".join(
            f"{case} {'works' + (' with ' + str(v['options']) if v['options'] else '') if v['works'] else 'FAILS'}"
            for case, v in verdicts.items()))
    else:
        lines.append("probe: no report (the step did not finish)")
    log = out / "pytest.log"
    if log.exists():
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        lines.append(f"GPU tests: {last[-1].strip('= ') if last else 'no output'}")
    for path in sorted(out.glob("gpu-*.json")):
        try:
            lines += step_summary(path)
        except (ValueError, KeyError) as err:
            lines.append(f"{path.name}: unreadable ({err})")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(summary(Path(sys.argv[1])))
