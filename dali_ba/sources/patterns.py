"""Paths and patterns of the files a source reads: WebDataset brace ranges and globs, local or URLs.

Tar shards and Parquet files are named the same way: a path, a pattern (``train-{000000..000146}.tar``,
``train-*.parquet``) or a list of them. Local patterns are expanded here; URLs keep their globs,
which the remote store lists (``remote.RemoteStore.expand``).
"""

from __future__ import annotations

import glob
import os
import re

from .store import is_url

_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_paths(paths, *, what: str = "tar shard", param: str = "shards") -> list[str]:
    """Turns a pattern, or a list of paths and patterns, into existing file paths (or URLs).

    A pattern may hold WebDataset brace ranges (``train-{000000..000146}.tar``, zero padding kept,
    several ranges multiply) and glob characters (``train-*.tar``); globs are sorted. ``what`` and
    ``param`` name the files and the argument in messages (``ParquetLoader`` takes files too).

    Raises:
        TypeError: ``paths`` is neither a string, a path nor a list of them.
        FileNotFoundError: A named file does not exist, or a glob matches nothing.
        ValueError: No file at all.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in paths):
        raise TypeError(f"{param} must be a path, a pattern or a list of them, but got {paths!r}")
    patterns, paths = paths, []
    for pattern in map(os.fspath, patterns):
        if is_url(pattern):  # checked where they are read (one request each), not here
            paths.extend(_brace_expand(pattern))
            continue
        for name in _brace_expand(os.path.expanduser(pattern)):
            if glob.has_magic(name):
                found = sorted(glob.glob(name))
                if not found:
                    raise FileNotFoundError(f"{what} pattern {name!r} matches no file")
                paths.extend(found)
            elif not os.path.isfile(name):
                raise FileNotFoundError(f"{what} {name!r} does not exist")
            else:
                paths.append(name)
    if not paths:
        raise ValueError(f"{param} is empty: expected at least one {what} path or pattern")
    return paths


def _brace_expand(pattern: str) -> list[str]:
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    if int(last) < int(first):
        raise ValueError(f"pattern {pattern!r}: range {{{first}..{last}}} runs backwards")
    width = len(first) if first.startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for n in range(int(first), int(last) + 1) for expanded in _brace_expand(f"{head}{n:0{width}d}{tail}")]


#: The name of dali-ba 0.1, which ``dali_ba.expand_shards`` still exports.
expand_shards = expand_paths
