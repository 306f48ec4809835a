"""Run under torchrun by test_distributed.py: each rank writes which files its loader delivered."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from conftest import PALETTE, identify  # noqa: E402

from dali_ba import ImageFolderLoader  # noqa: E402

root, out = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
loader = ImageFolderLoader(root, batch_size=3, aug_repeats=2, image_size=16, device="cpu", recipe="val", drop_last=False, num_threads=1)
truth = {f: (int(label), PALETTE[k]) for k, (f, label) in enumerate(zip(loader.files, loader.dataset.labels))}
seen = [f for images, _ in loader for f in identify(images, truth)]
result = {"rank": dist.get_rank(), "shard": [loader.config.shard_id, loader.config.num_shards], "seed": loader.config.seed, "files": seen}
(out / f"rank{dist.get_rank()}.json").write_text(json.dumps(result))
dist.destroy_process_group()
