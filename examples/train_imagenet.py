"""ImageNet classification training with Batch Augmentation, in the shape of torchvision's reference
``references/classification/train.py``.

One GPU:          python examples/train_imagenet.py /data/imagenet --aug-repeats 4 --amp --channels-last
One node, 8 GPUs: torchrun --nproc_per_node 8 examples/train_imagenet.py /data/imagenet --aug-repeats 4 --amp
Many nodes:       torchrun --nnodes N --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 examples/train_imagenet.py ...
SLURM, no torchrun: srun python examples/train_imagenet.py ...   (one task per GPU; ranks from SLURM_*)
Resume:           ... --resume out/checkpoint.pth   (the loader continues mid-epoch where it stopped,
                  on any number of ranks)

Preemption: on SIGUSR1 or SIGTERM (SLURM sends one before the time limit, ``#SBATCH --signal``, or
on preemption) every rank finishes its step, the ranks agree, rank 0 writes the checkpoint with the
loader's position, and every rank exits with code 75 (EXIT_PREEMPTED, sysexits' EX_TEMPFAIL: "try
again"), on which ``docker/slurm/train.sbatch`` requeues the job. Under torchrun, SIGTERM reaches the
workers through torchrun; SIGUSR1 does when TORCHELASTIC_SIGNALS_TO_HANDLE lists it.

The learning rate schedule is the baseline's, whatever M is: like the paper, batch augmentation
keeps the schedule and learning rate of the B-sample baseline (lr = 0.1 * B * world_size / 256),
it does not rescale them for the B*M images a step sees.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision


def get_args(argv=None):
    parser = argparse.ArgumentParser(description="ImageNet training with batch augmentation (dali-ba)")
    parser.add_argument("data_path", help="folder with train/<class>/ and val/<class>/")
    parser.add_argument("--data-backend", choices=["dali-ba", "torchvision"], default="dali-ba")
    parser.add_argument("-M", "--aug-repeats", type=int, default=4, help="M, augmented replicas per image (default 4)")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="B, unique images per step and GPU (default 64)")
    parser.add_argument("--arch", "--model", dest="arch", default="resnet50", help="any torchvision.models name")
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--lr", type=float, default=None, help="default 0.1 * B * world_size / 256, independent of M")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=1e-4)
    parser.add_argument("--lr-step-size", type=int, default=30, help="StepLR: decay every N epochs")
    parser.add_argument("--lr-gamma", type=float, default=0.1)
    # The recipe flags are torchvision's reference script's, with its defaults; dali_ba.reference maps
    # them onto the loaders (and refuses what it cannot do the same way), for both backends alike.
    parser.add_argument("--auto-augment", default=None, help="ra, ta_wide or imagenet (default: none)")
    parser.add_argument("--ra-magnitude", type=int, default=9, help="RandAugment magnitude, with --auto-augment ra")
    parser.add_argument("--random-erase", type=float, default=0.0, help="random erasing probability, per replica (0: off)")
    parser.add_argument("--mixup-alpha", type=float, default=0.0, help="MixUp alpha on each [B*M] batch (0: off)")
    parser.add_argument("--cutmix-alpha", type=float, default=0.0, help="CutMix alpha on each [B*M] batch (0: off)")
    parser.add_argument("--train-crop-size", type=int, default=224)
    parser.add_argument("--val-crop-size", type=int, default=224)
    parser.add_argument("--val-resize-size", type=int, default=256)
    parser.add_argument("--interpolation", default="bilinear", help="bilinear, bicubic or nearest")
    parser.add_argument("--ra-sampler", action="store_true", help="torchvision's repeated-augmentation epochs: "
                        "-M must equal --ra-reps; each step takes -b / K images, K replicas each (dali-ba backend)")
    parser.add_argument("--ra-reps", type=int, default=3, help="K, with --ra-sampler")
    parser.add_argument("-j", "--workers", type=int, default=None, help="DALI threads / DataLoader workers")
    parser.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--output-dir", default=".", help="where checkpoint.pth is written")
    parser.add_argument("--resume", default="", help="checkpoint to resume from")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps (for preemptible jobs)")
    parser.add_argument("--print-freq", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N training steps in all (smoke tests)")
    parser.add_argument("--sample-log", default="", help="folder: each rank appends the samples of every step it "
                        "trained on to samples-rank<R>.txt (dali-ba backend; for audits)")
    args = parser.parse_args(argv)
    if args.ra_sampler and args.data_backend != "dali-ba":
        parser.error("--ra-sampler needs --data-backend dali-ba (this script's torchvision backend has no RASampler; "
                     "torchvision's own train.py has one)")
    if args.sample_log and args.data_backend != "dali-ba":
        parser.error("--sample-log needs --data-backend dali-ba (the torchvision backend does not say which samples a batch holds)")
    return args


#: Exit code after a checkpoint on SIGUSR1/SIGTERM: sysexits' EX_TEMPFAIL, "temporary failure, try again".
EXIT_PREEMPTED = 75


# -- distributed ------------------------------------------------------------------------------------


def init_distributed(device_name: str) -> tuple[torch.device, int, int]:
    """Starts torch.distributed when torchrun set RANK/WORLD_SIZE, or srun started one task per rank."""
    from_slurm_step()
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30))
        return device, dist.get_rank(), dist.get_world_size()
    return device, 0, 1


def from_slurm_step() -> None:
    """Sets torchrun's variables from SLURM's when srun started this process as one of several ranks.

    Only inside an srun step (``SLURM_STEP_NUM_TASKS``), and never under torchrun (which sets
    ``RANK`` itself). ``MASTER_ADDR`` comes from the batch script; the port defaults to 29500.
    """
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1"))
    if "RANK" in os.environ or tasks < 2:
        return
    per_node = os.environ.get("SLURM_STEP_TASKS_PER_NODE", str(tasks)).split("(")[0].split(",")[0]
    os.environ.update(RANK=os.environ["SLURM_PROCID"], WORLD_SIZE=str(tasks), LOCAL_RANK=os.environ["SLURM_LOCALID"],
                      LOCAL_WORLD_SIZE=per_node)
    os.environ.setdefault("MASTER_PORT", "29500")
    if "MASTER_ADDR" not in os.environ:
        raise SystemExit("srun started several ranks, but MASTER_ADDR is not set: export it in the batch script "
                         "(the first host of $SLURM_JOB_NODELIST, see docker/slurm/train.sbatch)")


class StopRequest:
    """Turns SIGUSR1/SIGTERM into a request to stop after the current step, agreed by all ranks."""

    SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

    def __init__(self):
        self.signal: str | None = None
        for sig in self.SIGNALS:
            signal.signal(sig, self._note)

    def _note(self, signum, _frame):
        self.signal = signal.Signals(signum).name  # only noted here; acted on between steps

    def agreed(self, device: torch.device) -> bool:
        """Whether any rank got a signal (one small all-reduce, so that all ranks stop at the same step)."""
        flag = torch.tensor([1.0 if self.signal else 0.0], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def log(rank: int, message: str) -> None:
    if rank == 0:
        print(message, flush=True)


# -- data ---------------------------------------------------------------------------------------------


def make_loaders(args, device):
    if args.data_backend == "dali-ba":
        from dali_ba.reference import reference_loaders

        return reference_loaders(args, aug_repeats=args.aug_repeats, device=str(device), seed=args.seed,
                                 channels_last=args.channels_last)
    return torchvision_loaders(args, device)


class _Replicated(torch.utils.data.Dataset):
    """torchvision ImageFolder item, decoded once and transformed M times: ``[M,3,S,S]``."""

    def __init__(self, folder, transform, repeats):
        self.inner = torchvision.datasets.ImageFolder(folder)
        self.transform, self.repeats = transform, repeats
        self.classes = self.inner.classes

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        path, label = self.inner.samples[i]
        image = self.inner.loader(path)
        return torch.stack([self.transform(image) for _ in range(self.repeats)]), label


class _Flattened:
    """Turns a DataLoader of ``[B,M,...]`` into ``[B*M,...]`` batches on ``device``, as dali-ba gives."""

    def __init__(self, loader, device):
        self.loader, self.device = loader, device
        self.sampler, self.dataset = loader.sampler, loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            m = images.shape[1]
            yield images.flatten(0, 1).to(self.device, non_blocking=True), labels.repeat_interleave(m).to(self.device)


def torchvision_loaders(args, device):
    from torchvision.transforms import v2

    normalize = v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    to_float = [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), normalize]
    policy = {None: [], "ra": [v2.RandAugment(magnitude=args.ra_magnitude)], "ta_wide": [v2.TrivialAugmentWide()],
              "imagenet": [v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)]}[args.auto_augment]
    mode = v2.InterpolationMode(args.interpolation)
    erase = [v2.RandomErasing(p=args.random_erase, value=0)] if args.random_erase > 0 else []
    train_tf = v2.Compose([v2.RandomResizedCrop(args.train_crop_size, interpolation=mode, antialias=True),
                           v2.RandomHorizontalFlip(), *policy, *to_float, *erase])
    val_tf = v2.Compose([v2.Resize(args.val_resize_size, interpolation=mode, antialias=True), v2.CenterCrop(args.val_crop_size),
                         *to_float])
    root = Path(args.data_path)
    train_set = _Replicated(root / "train", train_tf, args.aug_repeats)
    val_set = _Replicated(root / "val", val_tf, 1)
    distributed = dist.is_available() and dist.is_initialized()
    train_sampler = (torch.utils.data.DistributedSampler(train_set, seed=args.seed) if distributed
                     else torch.utils.data.RandomSampler(train_set))
    val_sampler = torch.utils.data.DistributedSampler(val_set, shuffle=False) if distributed else None
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    train = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, sampler=train_sampler, drop_last=True, **common)
    val = torch.utils.data.DataLoader(val_set, batch_size=args.batch_size * args.aug_repeats, sampler=val_sampler, **common)
    train = _Flattened(train, device)
    if args.mixup_alpha > 0 or args.cutmix_alpha > 0:
        from dali_ba.reference import ReplicaMix

        train = ReplicaMix(train, mixup_alpha=args.mixup_alpha, cutmix_alpha=args.cutmix_alpha,
                           aug_repeats=args.aug_repeats, num_classes=len(train_set.classes))
    return train, _Flattened(val, device)


# -- training -------------------------------------------------------------------------------------------


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, epoch, step, train_loader, args):
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "step": step,
        "args": vars(args),
    }
    if hasattr(train_loader, "state_dict"):
        state["train_loader"] = train_loader.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a job killed while saving never leaves a torn checkpoint


def evaluate(model, loader, device, rank) -> tuple[float, float]:
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct@1, correct@5, count
    with torch.inference_mode():
        for images, labels in loader:
            logits = model(images)
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = top5.eq(labels[:, None])
            totals += torch.tensor([hits[:, 0].sum().item(), hits.any(dim=1).sum().item(), labels.numel()], dtype=torch.float64,
                                   device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    correct1, correct5, count = totals.tolist()
    log(rank, f"Test: Acc@1 {100 * correct1 / count:.3f} Acc@5 {100 * correct5 / count:.3f} ({int(count)} images)")
    return correct1 / count, correct5 / count


def main(args):
    stop = StopRequest()  # first: a signal that comes while the job starts up is kept, not fatal
    device, rank, world = init_distributed(args.device)
    torch.manual_seed(args.seed)
    train_loader, val_loader = make_loaders(args, device)
    num_classes = len(train_loader.dataset.classes)
    model = torchvision.models.get_model(args.arch, num_classes=num_classes).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr = args.lr if args.lr is not None else 0.1 * args.batch_size * world / 256
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step_size, gamma=args.lr_gamma)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if args.amp and device.type == "cuda" else None
    train_model = model if world == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = torch.nn.CrossEntropyLoss()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    samples = None
    if args.sample_log:
        Path(args.sample_log).mkdir(parents=True, exist_ok=True)
        samples = open(Path(args.sample_log) / f"samples-rank{rank}.txt", "a")
    start_epoch, step = 0, 0
    if args.resume:
        checkpoint = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["lr_scheduler"])
        if scaler is not None and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        start_epoch, step = checkpoint["epoch"], checkpoint["step"]
        if "train_loader" in checkpoint and hasattr(train_loader, "load_state_dict"):
            train_loader.load_state_dict(checkpoint["train_loader"])
            saved = checkpoint["train_loader"]
            log(rank, f"resumed from {args.resume}: epoch {saved['epoch']}, batch {train_loader.state_dict()['batch']} of "
                      f"{len(train_loader)} (saved on {saved['num_shards']} rank(s), resumed on {world})")
        else:
            log(rank, f"resumed from {args.resume}: epoch {start_epoch} (the epoch restarts: this backend keeps no loader state)")

    log(rank, f"{args.arch}, {world} rank(s) on {device.type}, B={args.batch_size} x M={args.aug_repeats} = "
              f"{args.batch_size * args.aug_repeats} images per step and rank, lr {lr:g}, {len(train_loader)} steps per epoch")
    for epoch in range(start_epoch, args.epochs):
        train_model.train()
        if hasattr(train_loader.sampler, "set_epoch"):  # DistributedSampler, or dali-ba's loader
            train_loader.sampler.set_epoch(epoch)
        first = train_loader.state_dict()["batch"] if hasattr(train_loader, "state_dict") else 0  # > 0 after a resume
        started, images_seen = time.time(), 0
        for i, (images, labels) in enumerate(train_loader, start=first):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
                loss = criterion(train_model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            step += 1
            images_seen += images.shape[0]
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {i}{batch_files(train_loader)}")
            if samples is not None:
                samples.write(f"{epoch} {' '.join(map(str, train_loader.last_indices.tolist()))}\n")
                samples.flush()
            if i % args.print_freq == 0:
                rate = images_seen * world / (time.time() - started)
                log(rank, f"Epoch [{epoch}] [{i}/{len(train_loader)}] loss {loss.item():.4f} "
                          f"lr {optimizer.param_groups[0]['lr']:.4g} {rate:.1f} img/s")
            at_max = args.max_steps and step >= args.max_steps
            signalled = stop.agreed(device)
            if rank == 0 and ((args.checkpoint_every and step % args.checkpoint_every == 0) or at_max or signalled):
                save_checkpoint(out / "checkpoint.pth", model, optimizer, scheduler, scaler, epoch, step, train_loader, args)
            if signalled:
                return stopped_on_signal(stop, rank, step, out)
            if at_max:
                log(rank, f"stopping after {step} steps (--max-steps); checkpoint in {out / 'checkpoint.pth'}")
                return 0
        elapsed = time.time() - started
        log(rank, f"Epoch [{epoch}] done in {elapsed:.1f}s, {images_seen * world / elapsed:.1f} img/s ({images_seen * world} images)")
        scheduler.step()
        evaluate(model, val_loader, device, rank)
        if rank == 0:
            save_checkpoint(out / "checkpoint.pth", model, optimizer, scheduler, scaler, epoch + 1, step, train_loader, args)
        if stop.agreed(device):  # a signal during evaluation: the epoch's checkpoint is written
            return stopped_on_signal(stop, rank, step, out)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


def batch_files(loader) -> str:
    """``; the batch held <files>``, where the loader says which samples a batch holds."""
    if not hasattr(loader, "last_indices"):
        return ""
    names = [loader.dataset.describe(int(i)) for i in loader.last_indices[:8]]
    more = f" and {len(loader.last_indices) - 8} more" if len(loader.last_indices) > 8 else ""
    return f"; the batch held {', '.join(names)}{more}"


def stopped_on_signal(stop: StopRequest, rank: int, step: int, out: Path) -> int:
    """After rank 0 saved the checkpoint: every rank waits for it, then the job exits with EXIT_PREEMPTED."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # no rank leaves (and no launcher tears rank 0 down) before the checkpoint is on disk
        dist.destroy_process_group()
    print(f"rank {rank}: stopped after step {step} on {stop.signal or 'another rank’s signal'}; "
          f"checkpoint in {out / 'checkpoint.pth'}; exit code {EXIT_PREEMPTED}", flush=True)
    return EXIT_PREEMPTED


if __name__ == "__main__":
    sys.exit(main(get_args()))
