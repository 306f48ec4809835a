"""What the measurement scripts in this folder share: their command line and the data they read.

Each script times one question about the pipeline; ``dali-ba bench`` is the comparison users run.
Run them as ``.venv/bin/python benchmarks/NAME.py [DATA_DIR] ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(doc: str, *arguments: tuple[tuple[str, ...], dict]) -> argparse.Namespace:
    """The script's arguments: ``DATA_DIR`` and ``arguments``, as ``((flags...), add_argument kwargs)`` pairs.

    Without ``DATA_DIR`` the scripts read the bench's ImageNet-like set (made once and cached, as
    ``dali-ba bench`` does), so their figures are about the same images as the bench's.
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, help="ImageFolder tree (default: the bench's data set)")
    for flags, options in arguments:
        parser.add_argument(*flags, **options)
    args = parser.parse_args()
    if args.data_dir is None:
        from dali_ba.cli import default_dataset

        args.data_dir = default_dataset()
    return args


def median_step_ms(pipe, stage, steps: int, warmup: int = 3) -> float:
    """Median ms of ``steps`` steps of a DALI ``pipe`` (its next outputs, the next run scheduled,
    then ``stage(outputs)`` where a torch stage makes the replicas), after ``warmup`` untimed steps."""
    import time

    import numpy as np

    pipe.schedule_run()
    times = []
    for i in range(steps + warmup):
        start = time.perf_counter()
        outputs = pipe.outputs()
        pipe.schedule_run()
        if stage is not None:
            stage(outputs)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))
