"""Build once, cache on disk, one builder per node: the one helper every cache of dali-ba uses.

What dali-ba makes once and keeps lives under :func:`cache_dir`, one folder per kind: tar shard
indexes (``tar-index``), Parquet indexes (``parquet-index``), decode-probe verdicts
(``decode-probe``), the bench's data copies (``bench-shards``, ``bench-parquet``) and the CLI's
default data set (``datasets``). Every entry is named by :func:`entry` (one key scheme: a readable
label and a digest of everything the entry depends on) and built through :func:`built_once` (a
lock per entry, so the processes sharing a cache, the ranks of a node, build it once between
them; the OS releases the lock if its holder dies). Entries appear whole or not at all
(:func:`written_atomically`, or a folder renamed into place).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path


def cache_dir() -> Path:
    """Where dali-ba keeps what it makes once: ``$DALI_BA_CACHE``, else ``$XDG_CACHE_HOME/dali-ba``, else ``~/.cache/dali-ba``."""
    if os.environ.get("DALI_BA_CACHE"):
        return Path(os.environ["DALI_BA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dali-ba"


def entry(kind: str, label: str, *identity, suffix: str = "") -> Path:
    """``cache_dir()/kind/<label>-<digest><suffix>``: the cache entry of ``label`` under ``identity``.

    ``identity`` is everything the entry depends on (a real path or a URL, a size, an mtime or a
    version tag, a format version, options): any change gives another entry, so a stale one is
    never read. ``label`` only helps a person find the entry (a file or case name); characters
    other than letters, digits, ``.`` and ``-`` become ``_``.
    """
    digest = hashlib.sha1("\0".join(map(str, identity)).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    readable = "".join(c if c.isalnum() or c in ".-" else "_" for c in label)[-60:]
    return cache_dir() / kind / f"{readable}-{digest}{suffix}"


@contextlib.contextmanager
def written_atomically(path: Path, mode: str = "wb", *, permissions: int | None = None, **open_args):
    """A file open for writing ``path``: a temporary name beside it, renamed over ``path`` when
    the block ends (readers see the whole file or none of it), removed if the block raises.

    The temporary name is unique (``mkstemp``): on a shared cache, processes on different hosts
    or in containers often share small pids, so a pid alone would not be. ``permissions`` are set
    before the rename (``mkstemp`` makes the file ``0o600``).
    """
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
        if permissions is not None:
            os.chmod(partial, permissions)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def built_once(cached: Path, build, *, load, save, name: str, wait: bool = True):
    """What ``load(cached)`` finds, else ``build()``'s result, handed to ``save`` to be written
    there. A lock per entry (in ``<folder>-locks`` beside the entries' folder; the OS releases it
    if its holder dies) makes the processes that share the cache, the ranks of a node, build it
    once between them.

    Returns ``None`` where ``wait`` is False and another process holds that lock: the caller goes
    on to other entries and comes back with ``wait`` True, when it is likely built. ``load``
    returns ``None`` for a missing or damaged entry; a cache that cannot be written (read-only)
    is warned of once per entry and ``build()`` is used without it. ``name`` (a path, or a URL
    without credentials) is what messages say.
    """
    found = load(cached) if cached.exists() else None
    if found is not None:
        return found
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        lock_path(cached).parent.mkdir(exist_ok=True)
        lock = open(lock_path(cached), "a")
    except OSError as err:
        warnings.warn(f"could not use the cache {str(cached.parent)!r} ({err}); building {name!r} without it "
                      f"(set DALI_BA_CACHE to a writable folder)", stacklevel=2)
        return build()
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        found = load(cached) if cached.exists() else None  # built while this one waited
        if found is not None:
            return found
        built = build()
        save(built)
        return built


def lock_path(cached: Path) -> Path:
    """The lock of the entry ``cached``: in ``<folder>-locks`` beside the entries' folder, so that
    only entries are in it."""
    return cached.parent.with_name(f"{cached.parent.name}-locks") / f"{cached.name}.lock"


def built_once_each(pool, items, one) -> list:
    """``one(item, wait=...)`` for each item on ``pool``, in order, as :func:`built_once` is meant
    to be used: a first pass that skips entries another process is building, then a pass that
    waits for those (by then they are often cached)."""
    parts = list(pool.map(lambda item: one(item, wait=False), items))
    late = [k for k, part in enumerate(parts) if part is None]
    for k, part in zip(late, pool.map(lambda k: one(items[k], wait=True), late)):
        parts[k] = part
    return parts


def folder_built_once(folder: Path, write, *, name: str) -> Path:
    """``folder``, filled by ``write(partial)`` the first time: ``write`` fills a temporary folder
    beside it, which is renamed into place when complete, so an interrupted run leaves no half
    folder where a complete one is expected. One process of those sharing the cache writes it."""
    def load(path: Path):
        return path if path.is_dir() else None

    def build() -> Path:
        partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{folder.name}.", suffix=".partial"))
        try:
            write(partial)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return partial

    def save(partial: Path) -> None:
        os.replace(partial, folder)

    built = built_once(folder, build, load=load, save=save, name=name)
    return folder if built == folder or folder.is_dir() else built
