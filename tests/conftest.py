"""What every test shares: data made in the tests, a private cache, small loaders, loopback servers.

Every image of ``color_tree`` has its own base colour (well apart from every other) under a
texture, so a test can tell from any crop of any replica which file it came from: the identity
survives decoding, cropping and flipping, and the texture makes random replicas differ.

Every test gets its own ``DALI_BA_CACHE`` (``private_cache``), so nothing cached in the
developer's ``~/.cache/dali-ba`` (a decode-probe verdict, an index) changes what a test tests.
"""

from __future__ import annotations

import io
import itertools
import re
import socket
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dali_ba.recipes import IMAGENET_MEAN, IMAGENET_STD

# 4 x 3 x 2 = 24 colours, at least 60 apart in some channel.
PALETTE = [np.array(c, dtype=np.float64) for c in itertools.product((30, 90, 150, 210), (30, 110, 190), (40, 200))]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Points ``DALI_BA_CACHE`` at a folder of this test's own."""
    monkeypatch.setenv("DALI_BA_CACHE", str(tmp_path / "cache"))


#: What the tests' loaders share: small images, the CPU, few threads, a fixed seed.
SMALL = dict(image_size=16, device="cpu", num_threads=2, seed=3)


def small_loader(make, source, **options):
    """``make(source, **options)`` (a loader class, or any function that builds one) with
    :data:`SMALL`'s options under ``options``. Test files bind their own defaults with
    ``functools.partial(small_loader, TarShardLoader, batch_size=4, ...)``."""
    return make(source, **dict(SMALL, **options))


def textured(color, height, width, seed):
    """An RGB uint8 image: a flat ``color`` plus a +-12 texture that makes crops differ."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    texture = 8 * np.sin(xx / 3.0 + seed)[..., None] + rng.normal(0, 4, (height, width, 1))
    return np.clip(np.asarray(color)[None, None, :] + texture, 0, 255).astype(np.uint8)


def write_color_tree(root, *, classes=3, per_class=8, size=(40, 56)):
    """Writes ``classes * per_class`` JPEGs, sample ``k`` coloured ``PALETTE[k]``.

    Returns:
        ``{path: (label, colour)}`` for every file written.
    """
    assert classes * per_class <= len(PALETTE)
    truth = {}
    for k in range(classes * per_class):
        label = k // per_class
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{k:03d}.jpg"
        Image.fromarray(textured(PALETTE[k], size[0], size[1] + 4 * (k % 3), k)).save(path, quality=95)
        truth[str(path)] = (label, PALETTE[k])
    return truth


@pytest.fixture
def imagenet_tree(tmp_path):
    """``root`` with ``train/`` (3 classes x 8 colour JPEGs) and ``val/`` (3 x 3), as ImageNet is laid out."""
    write_color_tree(tmp_path / "imagenet" / "train", classes=3, per_class=8)
    write_color_tree(tmp_path / "imagenet" / "val", classes=3, per_class=3)
    return tmp_path / "imagenet"


@pytest.fixture
def color_tree(tmp_path):
    """``(root, truth)``: 3 classes x 8 JPEGs, see :func:`write_color_tree`."""
    root = tmp_path / "colors"
    return root, write_color_tree(root)


def identify(images: torch.Tensor, truth: dict) -> list[str]:
    """Maps each image of a normalized ImageNet-recipe batch to the file whose colour it carries."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3)
    std = torch.tensor(IMAGENET_STD).view(1, 3)
    pixels = images.float().mean(dim=(2, 3)) * std + mean  # [N, 3], 0..1
    colors = pixels.numpy() * 255.0
    paths = list(truth)
    palette = np.stack([truth[p][1] for p in paths])
    nearest = np.abs(colors[:, None, :] - palette[None, :, :]).max(axis=2)
    found = nearest.argmin(axis=1)
    assert (nearest.min(axis=1) < 25).all(), f"an image matches no colour: {nearest.min(axis=1)}"
    return [paths[i] for i in found]


def write_tar(path, members: dict, format=tarfile.PAX_FORMAT):
    """Writes the tar ``path`` holding ``members`` (name -> bytes), in order."""
    with tarfile.open(path, "w", format=format) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^./][^.]*)\.([^/]*)$")  # WebDataset's base_plus_ext


def tarfile_index(path):
    """``(keys, image offsets, image sizes, labels)`` of a tar as tarfile and WebDataset's key rule
    give them: the reference for dali-ba's fast paths."""
    from dali_ba.sources.tar import TAR_IMAGE_EXTENSIONS

    samples, labels = {}, {}
    with tarfile.open(path) as tar:
        for m in tar:
            match = KEY_AND_EXTENSION.match(m.name) if m.isfile() else None
            if match:
                key, ext = match.group(1), match.group(2).lower()
                if ext == "cls":
                    labels[key] = int(tar.extractfile(m).read())
                samples.setdefault(key, {})[ext] = m
    keys = list(samples)
    images = [next(samples[k][e] for e in TAR_IMAGE_EXTENSIONS if e in samples[k]) for k in keys]
    return keys, [m.offset_data for m in images], [m.size for m in images], [labels[k] for k in keys]


def same_tar_index(index, reference) -> bool:
    """Whether a tar file's index (``TarIndex``) or a ``SampleIndex`` over tars is ``reference`` (:func:`tarfile_index`)."""
    from dali_ba.sources import SampleIndex

    columns = index.source if isinstance(index, SampleIndex) else index
    return (list(columns.keys), columns.offsets.tolist(), columns.sizes.tolist(), index.labels.tolist()) == tuple(reference)


def free_port() -> int:
    """A loopback TCP port free now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, within_s: float, why_not=lambda: "") -> None:
    """Returns once something listens on loopback ``port``; raises after ``within_s`` seconds,
    with ``why_not()`` (the server's own words, where it has some)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server listened on port {port} within {within_s:g} s {why_not()}".rstrip())


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
