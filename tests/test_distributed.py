"""torchrun with 2 CPU ranks (gloo): sharding, the training script, resuming it, and stopping it on a signal."""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import write_color_tree

HERE = Path(__file__).parent
TRAIN = HERE.parent / "examples" / "train_imagenet.py"
#: The training script's crops, small enough for a CPU.
SMALL_CROPS = ("--train-crop-size", "32", "--val-crop-size", "32", "--val-resize-size", "36")


def torchrun(*args, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_two_ranks_read_disjoint_shards_that_cover_the_data(tmp_path):
    data = tmp_path / "data"
    files = set(write_color_tree(data))
    torchrun(HERE / "shard_probe.py", data, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["shard"] for r in ranks] == [[0, 2], [1, 2]]
    assert ranks[0]["seed"] == ranks[1]["seed"], "rank 0's seed is broadcast, so the shards agree"
    seen = [set(r["files"]) for r in ranks]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == files
    for r in ranks:  # a sample's M replicas stay on its rank
        assert all(r["files"].count(f) == 2 for f in set(r["files"]))


@pytest.mark.slow
def test_training_runs_on_two_ranks_and_resumes_mid_epoch(imagenet_tree, tmp_path):
    common = [TRAIN, imagenet_tree, "--arch", "resnet18", "-b", "2", "-M", "2", *SMALL_CROPS, "--device", "cpu",
              "-j", "1", "--output-dir", tmp_path / "out", "--epochs", "1", "--print-freq", "1"]
    first = torchrun(*common, "--max-steps", "2")
    assert "2 rank(s) on cpu" in first and "6 steps per epoch" in first  # 24 images / 2 ranks / B=2
    assert "stopping after 2 steps" in first
    resumed = torchrun(*common, "--resume", tmp_path / "out" / "checkpoint.pth")
    assert "resumed from" in resumed and "epoch 0, batch 2 of 6" in resumed
    # The rest of the epoch: 4 batches x 2 images x M=2 x 2 ranks = 32 images, none twice.
    assert "(32 images)" in resumed
    assert "Test: Acc@1" in resumed and "(9 images)" in resumed  # every val image exactly once


def test_training_script_runs_with_the_torchvision_backend(imagenet_tree, tmp_path):
    done = subprocess.run(
        [sys.executable, TRAIN, imagenet_tree, "--data-backend", "torchvision", "--arch", "resnet18", "-b", "4", "-M", "2",
         *SMALL_CROPS, "--device", "cpu", "-j", "0", "--epochs", "1", "--output-dir", tmp_path],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(48 images)" in done.stdout and "Test: Acc@1" in done.stdout and (tmp_path / "checkpoint.pth").exists()


# -- preemption: a signal mid-epoch, a checkpoint, and a resume on another number of ranks -----------


def write_tree(root, classes, per_class, size=24):
    """A small ImageFolder tree of JPEGs (identities come from the loader's sample log here)."""
    from PIL import Image

    from conftest import PALETTE, textured

    for k in range(classes * per_class):
        folder = root / f"class_{k // per_class}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(textured(PALETTE[k % len(PALETTE)], size, size, k)).save(folder / f"img_{k:03d}.jpg", quality=90)


def children(pid):
    """The processes whose parent is ``pid``, as ``{RANK: pid}`` from their environment."""
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            env = dict(item.split("=", 1) for item in open(f"/proc/{entry}/environ").read().split("\0") if "=" in item)
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and "RANK" in env:
            found[int(env["RANK"])] = int(entry)
    return found


def start(cmd, env=None):
    """Starts ``cmd`` with its output read on a thread into a queue of lines (so reads never block the test)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # the end of the output

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for(lines, text, seen, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never came; output:\n{''.join(seen)[-3000:]}")


def finish(proc, lines, seen, timeout=180):
    """The whole output of ``proc`` (``seen`` and the rest), once it has ended."""
    proc.wait(timeout=timeout)
    for line in iter(lambda: lines.get(timeout=timeout), None):  # to the end of its output, not just what has come
        seen.append(line)
    return "".join(seen)


def trained_samples(folder):
    """``{epoch: [sample, ...]}`` over every rank's sample log in ``folder``."""
    epochs = {}
    for path in folder.glob("samples-rank*.txt"):
        for line in path.read_text().splitlines():
            epoch, *samples = map(int, line.split())
            epochs.setdefault(epoch, []).extend(samples)
    return epochs


@pytest.mark.slow
def test_a_signal_mid_epoch_checkpoints_and_three_ranks_finish_the_epoch_exactly_once(tmp_path):
    write_tree(tmp_path / "data" / "train", classes=4, per_class=16)  # 64 images: 16 steps of B=2 on 2 ranks
    write_tree(tmp_path / "data" / "val", classes=4, per_class=2)
    common = [TRAIN, tmp_path / "data", "--arch", "resnet18", "-b", "2", "-M", "2", *SMALL_CROPS, "--device", "cpu",
              "-j", "1", "--output-dir", tmp_path / "out", "--epochs", "1", "--print-freq", "1",
              "--sample-log", tmp_path / "samples"]
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    proc, lines = start([*run, "--nproc_per_node", "2", *map(str, common)])
    seen = []
    wait_for(lines, "rank(s) on cpu", seen)  # printed just before the first step
    workers = {}
    while len(workers) < 2 and proc.poll() is None:
        workers = children(proc.pid)
    os.kill(workers[1], signal.SIGUSR1)  # one rank only: the others learn it from the all-reduce
    first = finish(proc, lines, seen)
    stops = re.findall(r"rank (\d): stopped after step (\d+) on (\w+)", first)
    assert sorted(rank for rank, _, _ in stops) == ["0", "1"], first[-3000:]
    assert len({step for _, step, _ in stops}) == 1, "both ranks stop after the same step"
    assert dict((rank, sig) for rank, _, sig in stops)["1"] == "SIGUSR1"
    assert "exit code 75" in first and (tmp_path / "out" / "checkpoint.pth").exists()
    steps = int(stops[0][1])
    assert 1 <= steps < 16, "stopped mid-epoch"

    resumed = subprocess.run([*run, "--nproc_per_node", "3", *map(str, common), "--resume", tmp_path / "out" / "checkpoint.pth"],
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "saved on 2 rank(s), resumed on 3" in resumed.stdout
    epoch = trained_samples(tmp_path / "samples")[0]
    assert len(epoch) == len(set(epoch)), "no sample trained on twice in the epoch"
    rest = 64 - 4 * steps  # dealt over 3 ranks in equal full batches of 2
    assert len(epoch) == 4 * steps + 3 * (rest // 3 - rest // 3 % 2)


@pytest.mark.slow
def test_ranks_started_by_srun_stop_on_the_signal_with_exit_code_75(imagenet_tree, tmp_path):
    """Two ranks started as ``srun`` starts them (SLURM_* variables, no torchrun), both signalled."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = dict(os.environ, SLURM_STEP_NUM_TASKS="2", SLURM_STEP_TASKS_PER_NODE="2", SLURM_PROCID=str(rank),
                   SLURM_LOCALID=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(start([sys.executable, str(TRAIN), str(imagenet_tree), "--arch", "resnet18", "-b", "2", "-M", "2",
                            *SMALL_CROPS, "--device", "cpu", "-j", "1", "--output-dir", str(tmp_path / "out"),
                            "--epochs", "3", "--print-freq", "1"], env=env))
    seen = []
    wait_for(procs[0][1], "2 rank(s) on cpu", seen)
    for proc, _ in procs:
        os.kill(proc.pid, signal.SIGUSR1)  # srun --signal / sbatch --signal reach every task
    outputs = [finish(proc, lines, seen if rank == 0 else []) for rank, (proc, lines) in enumerate(procs)]
    assert [proc.returncode for proc, _ in procs] == [75, 75], outputs[0][-2000:] + outputs[1][-2000:]
    assert (tmp_path / "out" / "checkpoint.pth").exists()
