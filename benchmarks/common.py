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
