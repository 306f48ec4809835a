"""Which shard this process reads, and a seed every shard agrees on.

Used by the loader when ``shard_id``/``num_shards`` are left ``None``: under torch.distributed (or
torchrun's ``RANK``/``WORLD_SIZE`` before the process group exists) each rank reads its own shard.
"""

from __future__ import annotations

import os
import secrets

import torch


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def detect_shard() -> tuple[int, int]:
    """``(shard_id, num_shards)`` from torch.distributed, else from ``RANK``/``WORLD_SIZE``, else ``(0, 1)``."""
    if _dist_ready():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is not None and world is not None:
        try:
            return int(rank), int(world)
        except ValueError:
            raise ValueError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be integers (as torchrun sets them)") from None
    return 0, 1


def shared_seed(num_shards: int) -> int:
    """A fresh random seed that every shard agrees on.

    Shards are disjoint only if all ranks draw the same permutation, so with several shards rank
    0's seed is broadcast over torch.distributed. Without a process group there is no way to agree
    on a random seed, so the seed is 0: runs are then reproducible, and the order still changes
    every epoch.
    """
    if num_shards == 1:
        return secrets.randbits(62)
    if not _dist_ready():
        return 0
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    seed = torch.tensor([secrets.randbits(62)], dtype=torch.int64, device=device)
    torch.distributed.broadcast(seed, src=0)
    return int(seed.item())
