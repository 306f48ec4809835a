"""The loaders users pick instead of dali-ba for sharded or remote data: WebDataset, MosaicML
Streaming and LitData, each over its own copy of the bench's data, at its documented best.

Each peer does ``torch-once``'s work per sample (``loaders.decoded_item``: PIL decode once,
torchvision's recipe M times) on DataLoader workers, one per core, so that the comparison is of
the loaders, not the recipes:

* ``wds``: ``webdataset.WebDataset`` over the tar shards ``dali-ba-tar`` reads (the bench's tar
  copy), its shard shuffle (``detshuffle``: a new order each epoch) and a sample shuffle buffer
  of :data:`WDS_SHUFFLE` (its README's figure), batched in the workers, ``WebLoader`` with
  ``batch_size=None`` as its documentation batches. ``wds-url`` reads the same shards over HTTP
  (``--url``), as webdataset opens URLs: a ``curl`` per shard.
* ``streaming``: ``streaming.StreamingDataset`` over MDS shards written once by its
  ``MDSWriter`` (raw JPEG bytes and the label), ``shuffle=True`` (``py1e``, its default),
  ``StreamingDataLoader`` with persistent workers.
* ``litdata``: ``litdata.StreamingDataset`` over chunks written once by ``litdata.optimize``
  (raw JPEG bytes and the label), ``shuffle=True``, its ``transform`` hook doing the decode and the
  recipe, ``litdata.StreamingDataLoader``.

Streaming and LitData cannot read plain HTTP(S): they download whole shards from object stores
(S3, GCS, Azure, Hugging Face, ...) into a local cache first, so they have no URL variant beside
the bench's latency server. The peers are optional: ``pip install 'dali-ba[peers]'`` for
webdataset and litdata, ``make install-streaming`` for Streaming (its numpy<2.2 pin would take
numpy back, so it goes in without its pins); :func:`missing` says which are not installed and how.

Every factory takes ``ids=True`` for the exactness checks (``bench/exactness.py``): its batches
are then the indices of the samples delivered, nothing decoded.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..sources import SampleIndex

if TYPE_CHECKING:
    from .loaders import BenchLoader, BenchSpec

#: webdataset's sample shuffle buffer (its README's ``.shuffle(1000)``).
WDS_SHUFFLE = 1000
#: The package each peer imports.
PACKAGES = {"wds": "webdataset", "wds-url": "webdataset", "streaming": "streaming", "litdata": "litdata"}
#: How to install each package.
INSTALL = {
    "webdataset": "pip install 'dali-ba[peers]'",
    "litdata": "pip install 'dali-ba[peers]'",
    "streaming": "pip install --no-deps mosaicml-streaming==0.13.0 and the packages it imports (make "
                 "install-streaming in a checkout: its numpy<2.2 pin would take numpy back)",
}


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here (its package is not installed, and how to install it), or ``None``."""
    package = PACKAGES.get(name)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return f"{name} needs the {package!r} package: {INSTALL[package]}"


@dataclass
class PeerCopy:
    """A peer's own copy of the bench's data: what ``run_bench`` needs of an index.

    Attributes:
        root: The copy's folder.
        files: Its files (the cold-cache runs drop them from the page cache).
        classes: Class names, in label order.
        num_samples: Samples in the copy.
    """

    root: Path
    files: list[str]
    classes: tuple[str, ...]
    num_samples: int

    class _NoCache:
        def clear(self) -> None:
            pass

    source = _NoCache()

    def __len__(self) -> int:
        return self.num_samples


def _copy(index: SampleIndex, kind: str, write, timed: dict | None) -> PeerCopy:
    from .runner import _made_once

    folder = _made_once(index, kind, write)
    if timed is not None:
        timed["index_s"] = 0.0  # nothing to index: the peer reads the copy's own metadata when it starts
    files = sorted(str(path) for path in folder.rglob("*") if path.is_file())
    return PeerCopy(folder, files, tuple(index.classes), len(index))


def mds_copy(index: SampleIndex, timed: dict | None = None) -> PeerCopy:
    """MDS shards of ``index`` written by Streaming's own ``MDSWriter``, once, under ``cache_dir()/bench-mds``."""
    def write(folder: Path) -> None:
        from streaming import MDSWriter

        with MDSWriter(out=str(folder), columns={"image": "bytes", "label": "int", "index": "int"},
                       exist_ok=True, progress_bar=False) as out:
            for i in range(len(index)):
                out.write({"image": index.read(i).tobytes(), "label": int(index.labels[i]), "index": i})

    return _copy(index, "bench-mds", write, timed)


def _litdata_sample(item: tuple[str, int, int]) -> dict:
    path, label, i = item
    return {"image": Path(path).read_bytes(), "label": label, "index": i}


def litdata_copy(index: SampleIndex, timed: dict | None = None) -> PeerCopy:
    """LitData chunks of ``index`` (a folder's) written by ``litdata.optimize``, once, under ``cache_dir()/bench-litdata``."""
    def write(folder: Path) -> None:
        import litdata

        inputs = [(str(index.files[i]), int(index.labels[i]), i) for i in range(len(index))]
        litdata.optimize(fn=_litdata_sample, inputs=inputs, output_dir=str(folder), chunk_bytes="64MB",
                         num_workers=1, mode="overwrite", verbose=False, start_method="spawn")
        written = json.loads((folder / "index.json").read_text()).get("chunks") if (folder / "index.json").exists() else None
        if not written:  # its worker's errors stay in the worker: say so here instead of caching an empty copy
            raise RuntimeError(f"litdata.optimize wrote no chunk into {folder} (its worker process failed; run the "
                               f"bench as a script with an `if __name__ == '__main__'` guard, as spawn requires)")

    return _copy(index, "bench-litdata", write, timed)


# -- the loaders ----------------------------------------------------------------------------------


def _item(data: bytes, label: int, index: int, *, spec, transform, ids: bool):
    from .loaders import decoded_item

    if ids:
        return torch.tensor(index), label, len(data)
    return decoded_item(data, label, transform, spec.aug_repeats)


def _wds_item(sample: dict, *, spec, transform, ids: bool, keys: dict | None):
    (extension,) = [name for name in sample if name in ("jpg", "jpeg", "png", "webp", "JPEG")]
    index = keys[sample["__key__"]] if keys is not None else -1
    return _item(sample[extension], int(sample["cls"]), index, spec=spec, transform=transform, ids=ids)


def wds(index: SampleIndex, spec: BenchSpec, *, ids: bool = False, nodesplitter=None) -> BenchLoader:
    """webdataset over the tar shards of ``index`` (the bench's tar copy, or ``--url``'s shards)."""
    import webdataset

    from .loaders import _train_transform, _torch_loader

    shards = list(dict.fromkeys(index.files))  # a tar index names each sample's shard
    keys = {index.key(i): i for i in range(len(index))} if ids else None
    item = functools.partial(_wds_item, spec=spec, transform=None if ids else _train_transform(spec), ids=ids,
                             keys=keys)
    dataset = (
        webdataset.WebDataset(shards, shardshuffle=len(shards), detshuffle=True, seed=spec.seed,
                              nodesplitter=nodesplitter or webdataset.single_node_only, empty_check=False)
        .shuffle(WDS_SHUFFLE, seed=spec.seed)
        .map(item)
        .batched(spec.batch_size, collation_fn=torch.utils.data.default_collate, partial=False)
    )
    loader = webdataset.WebLoader(dataset, batch_size=None, **_worker_options(spec))
    return _torch_loader(loader, spec, spec.batch_size, "wds")


def streaming(copy: PeerCopy, spec: BenchSpec, *, ids: bool = False, state: dict | None = None) -> BenchLoader:
    """MosaicML Streaming over its MDS copy (local: ``local=`` the copy, nothing to download)."""
    from streaming import StreamingDataLoader
    from streaming.base.util import clean_stale_shared_memory

    from .loaders import _torch_loader, _train_transform
    from .streaming_files import StreamingFiles

    clean_stale_shared_memory()  # what an earlier run's dataset left in /dev/shm
    item = functools.partial(_item, spec=spec, transform=None if ids else _train_transform(spec), ids=ids)
    dataset = StreamingFiles(local=str(copy.root), item=item, shuffle=True, shuffle_seed=spec.seed,
                             batch_size=spec.batch_size)
    loader = StreamingDataLoader(dataset, batch_size=spec.batch_size, drop_last=True, **_worker_options(spec))
    if state is not None:
        loader.load_state_dict(state)
    return _torch_loader(loader, spec, spec.batch_size, "streaming", release=clean_stale_shared_memory)


def _litdata_transform(sample: dict, *, item):
    return item(sample["image"], int(sample["label"]), int(sample["index"]))


def litdata(copy: PeerCopy, spec: BenchSpec, *, ids: bool = False, state: dict | None = None) -> BenchLoader:
    """LitData over its optimized copy, the item work in its ``transform`` hook."""
    import litdata as ld

    from .loaders import _torch_loader, _train_transform

    item = functools.partial(_item, spec=spec, transform=None if ids else _train_transform(spec), ids=ids)
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"dali-ba-litdata-{os.getpid()}-{time.monotonic_ns()}"
    dataset = ld.StreamingDataset(input_dir=str(copy.root), cache_dir=str(cache), shuffle=True, drop_last=True,
                                  seed=spec.seed, transform=functools.partial(_litdata_transform, item=item))
    loader = ld.StreamingDataLoader(dataset, batch_size=spec.batch_size, **_worker_options(spec))
    if state is not None:
        loader.load_state_dict(state)
    return _torch_loader(loader, spec, spec.batch_size, "litdata", release=lambda: shutil.rmtree(cache, ignore_errors=True))


def _worker_options(spec) -> dict:
    """The DataLoader settings every peer documents for speed: a worker per core, kept across epochs."""
    return dict(num_workers=spec.workers, persistent_workers=spec.workers > 0,
                pin_memory=spec.device.type == "cuda",
                multiprocessing_context="forkserver" if spec.workers > 0 else None)
