"""The ``dali-ba`` command line: a thin click layer over the library.

Commands build the same config objects as the Python API; library errors (``ValueError``,
``FileNotFoundError``, ...) become one-line ``click`` errors without a traceback.
"""

from __future__ import annotations

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="dali-ba")
def main():
    """Batch Augmentation data loading on NVIDIA DALI: decode each image once, train on M replicas."""


if __name__ == "__main__":  # pragma: no cover
    main()
