"""The ``dali-ba`` command line: a thin click layer over the library.

Commands build the same config objects as the Python API (``BenchConfig``); library errors
(``ValueError``, ``FileNotFoundError``, ...) become one ``Error:`` line and exit code 2, with no
traceback. Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .bench.loaders import LOADERS, REGISTRY, default_loaders
from .bench.loaders import RECIPES as BENCH_RECIPES
from .bench.loaders import TIMM_LOADERS, is_timm_recipe
from .recipes import INTERPOLATION, RANDOM, RECIPES, recipe_named
from .sources.cache import entry, folder_built_once

CONTEXT = {"help_option_names": ["-h", "--help"]}
DEFAULT_IMAGES = 1000
DEFAULT_CLASSES = 100


class UsageProblem(click.ClickException):
    """A bad argument or data folder: one line on stderr, exit code 2."""

    exit_code = 2


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise UsageProblem(f"--{param.name.replace('_', '-')} expects comma-separated integers like 1,2,4,8, but got {value!r}") from None
    if any(n < 1 for n in numbers):
        raise UsageProblem(f"--{param.name.replace('_', '-')} values must be >= 1, but got {value!r}")
    return numbers


def _names(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _make_dataset(out: Path, images: int, classes: int, seed: int) -> None:
    from .synthetic import check_request, make_dataset

    check_request(out, images=images, classes=classes)
    with click.progressbar(length=images, label=f"writing {images} JPEGs to {out}", file=sys.stderr) as bar:
        make_dataset(out, images=images, classes=classes, seed=seed, progress=bar.update)


def default_dataset(images: int = DEFAULT_IMAGES, seed: int = 0) -> Path:
    """The embedded ImageNet-like set, generated on first use and cached (``sources.cache``, kind ``datasets``)."""
    from .synthetic import DATASET_VERSION

    label = f"imagenet-like-{images}-seed{seed}"
    root = entry("datasets", label, images, seed, DATASET_VERSION)
    if not root.is_dir():
        click.echo(f"no DATA_DIR given: making the default ImageNet-like data set once, in {root}", err=True)
    return folder_built_once(root, lambda partial: _make_dataset(partial, images, min(DEFAULT_CLASSES, images), seed),
                             name=label)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="dali-ba")
def main():
    """Batch Augmentation data loading on NVIDIA DALI: decode each image once, train on M replicas."""


@main.command("make-dataset")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", default=DEFAULT_IMAGES, show_default=True, help="Number of JPEGs.")
@click.option("--classes", default=DEFAULT_CLASSES, show_default=True, help="Number of class folders.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same files.")
def make_dataset_command(out: Path, images: int, classes: int, seed: int):
    """Write an ImageNet-like JPEG data set (ImageFolder layout) into OUT and print its statistics."""
    from .synthetic import dataset_stats

    try:
        _make_dataset(out, images, classes, seed)
    except ValueError as err:
        raise UsageProblem(str(err)) from None
    click.echo(dataset_stats(out).summary())


@main.command("make-shards")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shard-size", default=1000, show_default=True, help="Samples per tar shard.")
@click.option("--prefix", default="shard", show_default=True, help="Shards are named PREFIX-000000.tar, ...")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="Spread the samples over the shards in random order.")
@click.option("--seed", default=0, show_default=True, help="Seed of that order.")
def make_shards_command(src: Path, out: Path, shard_size: int, prefix: str, shuffle: bool, seed: int):
    """Write the ImageFolder tree SRC as WebDataset tar shards in OUT.

    Each image keeps its bytes as <key>.<ext>; its class index goes in <key>.cls. Read them back
    with dali_ba.TarShardLoader("OUT/PREFIX-{000000..NNNNNN}.tar").
    """
    from .sources import make_shards, scan_image_folder

    try:
        index = scan_image_folder(src)
        with click.progressbar(length=len(index), label=f"writing {len(index)} samples to {out}", file=sys.stderr) as bar:
            shards = make_shards(index, out, shard_size=shard_size, prefix=prefix, shuffle=shuffle, seed=seed,
                                 progress=bar.update)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        raise UsageProblem(str(err)) from None
    last = len(shards) - 1
    click.echo(f"wrote {len(shards)} shard(s), {len(index)} samples, {len(index.classes)} classes: "
               f"{out / prefix}-{{{0:06d}..{last:06d}}}.tar")


@main.command("index-shards")
@click.argument("shards", nargs=-1, required=True)
@click.option("--jobs", type=int, default=None,
              help="Shards indexed at once [default: the cores available; 4 behind URLs].")
@click.option("--force", is_flag=True, help="Rewrite sidecars that exist already.")
def index_shards_command(shards, jobs: int | None, force: bool):
    """Write the sidecar indexes (.idx, DALI's wds2idx format, and .labels) beside each tar shard in SHARDS.

    SHARDS are paths or patterns as TarShardLoader takes them ("train-{000000..001281}.tar"), or
    URLs ("s3://bucket/train-{000000..001281}.tar"; credentials from the store's usual places):
    each shard is then read once and its sidecars written beside it, which needs write access.
    With sidecars, the first use of the shards reads one small file per shard instead of every
    tar header; DALI's fn.readers.webdataset reads the same .idx files. Behind a URL, the .labels
    file saves one request per sample. Shards made by make-shards have theirs already.
    """
    from .sources.tar import shards_to_index, write_sidecars

    try:
        paths, todo = shards_to_index(list(shards), force=force)
        with click.progressbar(length=len(todo), label=f"indexing {len(todo)} of {len(paths)} shard(s)", file=sys.stderr) as bar:
            written = write_sidecars(todo, jobs=jobs, force=True, progress=bar.update) if todo else []
    except (OSError, ValueError, TypeError) as err:  # OSError: a shard that cannot be read (or its sidecars written)
        raise UsageProblem(str(err)) from None
    click.echo(f"wrote {len(written)} sidecar index(es); {len(paths) - len(written)} shard(s) had one already")


@main.command("preview")
@click.argument("source")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default="replicas.png", show_default=True,
              help="PNG to write.")
@click.option("--recipe", default="imagenet", show_default=True, callback=lambda c, p, v: _any_recipe(p, v),
              help=", ".join(RECIPES) + ", or timm's RandAugment (rand-m9-mstd0.5-inc1) or AutoAugment (original, v0, ...).")
@click.option("-M", "--aug-repeats", default=8, show_default=True, help="Replicas per image (columns after the original).")
@click.option("-n", "--images", default=6, show_default=True, help="Images (rows).")
@click.option("--image-size", default=160, show_default=True, help="Side of each tile.")
@click.option("--interpolation", type=click.Choice([*INTERPOLATION, RANDOM]), default="bilinear", show_default=True,
              help="random: timm's, bilinear or bicubic per replica (imagenet and timm's recipes).")
@click.option("--random-erase", default=0.0, show_default=True, help="Random erasing probability per replica.")
@click.option("--ra-magnitude", default=9, show_default=True, help="RandAugment magnitude (recipe randaugment).")
@click.option("--seed", default=0, show_default=True, help="Which images, and which draws.")
def preview_command(source, out, recipe, aug_repeats, images, image_size, interpolation, random_erase, ra_magnitude, seed):
    """Write a grid of images from SOURCE, each original followed by its M replicas.

    SOURCE is what the loaders take: an ImageFolder tree, a .txt file list, .tar shards or
    .parquet files (a path or a pattern). The replicas are denormalized: what the model sees.
    """
    from .preview import save_replica_grid

    try:
        path = save_replica_grid(out, source, images=images, aug_repeats=aug_repeats, recipe=recipe, image_size=image_size,
                                 seed=seed, interpolation=interpolation, random_erase=random_erase, ra_magnitude=ra_magnitude)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as err:
        raise UsageProblem(str(err)) from None
    click.echo(f"wrote {path}: {images} image(s), each with {aug_repeats} replica(s) of recipe {recipe}")


@main.command("probe-decode")
@click.option("--device", default="cuda:0", show_default=True, help="cuda:N, or cpu (DALI's CPU decoder: a rehearsal).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON.")
@click.option("--simulate-crash", default="", help="Comma-separated cases whose probes die by SIGSEGV (a rehearsal).")
def probe_decode_command(device: str, out: Path | None, simulate_crash: str):
    """Probe the decoders in child processes: whole, region and fused random-crop decoding.

    Each verdict is cached per device, DALI and nvImageCodec version; the loader's roi_decode="auto"
    and the bench's dali-large follow it. Exit code 1 where even whole-image decoding fails.
    """
    from .decode_probe import probe_all

    try:
        report = probe_all(device, out, [c for c in simulate_crash.split(",") if c], echo=click.echo)
    except ValueError as err:
        raise UsageProblem(str(err)) from None
    if not report["verdicts"]["whole"]["works"]:
        sys.exit(1)


def _any_recipe(param, value: str) -> str:
    try:
        recipe_named(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from None
    return value


def _bench_recipe(param, value: str) -> str:
    if value in BENCH_RECIPES or is_timm_recipe(value):
        return value
    raise click.BadParameter(f"{value!r} is not one of {', '.join(BENCH_RECIPES)}, nor timm's RandAugment "
                             f"(rand-m9-mstd0.5-inc1)", param=param)


@main.command("bench")
@click.argument("data_dir", required=False, type=click.Path(path_type=Path))
@click.option("-M", "--aug-repeats", default="1,2,4,8", show_default=True, callback=_int_list, help="M values, comma-separated.")
@click.option("--loaders", default=None, callback=lambda c, p, v: _names(c, p, v) if v else None,
              help="Comma-separated, from: " + "; ".join(f"{e.name} ({e.what})" for e in REGISTRY.values())
                   + ". Default: " + ", ".join(default_loaders("cpu")) + "; on a GPU also "
                   + ", ".join(n for n in default_loaders("cuda") if n not in default_loaders("cpu"))
                   + "; with --url, " + ", ".join(n for n in LOADERS if REGISTRY[n].reads == "url") + " too.")
@click.option("-b", "--batch-size", default=32, show_default=True, help="B, unique images per step.")
@click.option("--image-size", default=224, show_default=True)
@click.option("--steps", default=20, show_default=True, help="Timed steps per loader and M.")
@click.option("--warmup", default=5, show_default=True, help="Untimed steps first.")
@click.option("--model", type=click.Choice(["auto", "none", "resnet18", "resnet50"]), default="auto", show_default=True,
              help="Train this model on each batch; auto = resnet50 on a GPU, none on CPU.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--channels-last", is_flag=True, help="Feed the model channels-last tensors.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--workers", type=int, default=None, help="DALI threads and DataLoader workers [default: all cores].")
@click.option("--images", default=DEFAULT_IMAGES, show_default=True, help="Size of the default data set (no DATA_DIR).")
@click.option("--seed", default=0, show_default=True)
@click.option("--cold-cache", is_flag=True,
              help="Evict the data set's files from the page cache before each timed run (reads come from storage).")
@click.option("--export-json", type=click.Path(dir_okay=False, path_type=Path), help="Write results + environment as JSON.")
@click.option("--export-csv", type=click.Path(dir_okay=False, path_type=Path), help="Write results as CSV.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot.")
@click.option("--wide", is_flag=True, help="Show every column (the exports always hold them all).")
@click.option("--url", default=None,
              help="Tar shards or Parquet files (a pattern ending in .parquet) for loader dali-ba-url: URLs "
                   "(s3://, gs://, hf://, https://; credentials from the store's usual places) or paths. The data "
                   "summary describes DATA_DIR.")
@click.option("--recipe", default="imagenet", show_default=True, callback=lambda c, p, v: _bench_recipe(p, v),
              help="The training recipe every loader runs: " + ", ".join(BENCH_RECIPES) + " (the torch loaders "
                   "torchvision's transforms, dali-large NVIDIA's auto_aug policies), or timm's RandAugment, e.g. "
                   "rand-m9-mstd0.5-inc1 (DeiT's; with timm's erasing, on the loaders "
                   + ", ".join(TIMM_LOADERS) + ").")
@click.option("--random-erase", default=0.0, show_default=True, help="Random erasing probability per replica.")
@click.option("--interpolation", type=click.Choice(list(INTERPOLATION)), default="bilinear", show_default=True,
              help="The crop's resize and the policy's geometric ops.")
@click.option("--ra-magnitude", default=9, show_default=True, help="RandAugment's magnitude (--recipe randaugment).")
def bench_command(data_dir, aug_repeats, loaders, batch_size, image_size, steps, warmup, model, dtype, channels_last,
                  device, workers, images, seed, cold_cache, export_json, export_csv, plot_path, wide, url, recipe,
                  random_erase, interpolation, ra_magnitude):
    """Compare steps/s, throughput and bytes read of dali-ba against the usual loaders.

    DATA_DIR is an ImageFolder tree; without it, an ImageNet-like set is generated once and cached.
    """
    from .bench import report
    from .bench.runner import BenchConfig, environment, planned_runs, run_bench
    from .config import resolve_device
    from .sources import redact
    from .synthetic import dataset_stats

    try:
        on_gpu = resolve_device(device).type == "cuda"
    except ValueError as err:
        raise UsageProblem(str(err)) from None
    if data_dir is None:
        data_dir = default_dataset(images, seed)
    elif not data_dir.is_dir():
        raise UsageProblem(f"DATA_DIR {str(data_dir)!r} does not exist or is not a folder")
    if model == "auto":
        model = "resnet50" if on_gpu else "none"
    try:
        config = BenchConfig(
            data_dir=str(data_dir),
            loaders=loaders or default_loaders("cuda" if on_gpu else "cpu", url=bool(url)),
            aug_repeats=aug_repeats,
            batch_size=batch_size,
            image_size=image_size,
            steps=steps,
            warmup=warmup,
            model=model,
            dtype=dtype,
            device=device,
            workers=workers,
            seed=seed,
            channels_last=channels_last,
            cold_cache=cold_cache,
            url=url,
            recipe=recipe,
            random_erase=random_erase,
            interpolation=interpolation,
            ra_magnitude=ra_magnitude,
        )
        stats = dataset_stats(data_dir)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        raise UsageProblem(str(err)) from None
    click.echo(f"data: {data_dir}: {stats.summary()}", err=True)
    total = len(config.loaders) * len(config.aug_repeats) * (config.steps + config.warmup)
    env = environment()
    config_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()}
    config_dict["url"] = redact(url) if url else None  # the exports never hold a credential

    failures = []

    def export(results):  # after every (loader, M): a run cut short keeps what it finished
        if export_json:
            report.to_json(export_json, results, env.as_dict(), stats.as_dict(), config_dict, planned=planned_runs(config),
                           failures=failures)
        if export_csv:
            report.to_csv(export_csv, results, env.as_dict())

    export([])  # the plan is on disk before the first run: a step cut at once still says what it missed
    with click.progressbar(length=total, label="benchmarking", file=sys.stderr) as bar:
        try:
            results = run_bench(config, progress=bar.update, on_result=export, failures=failures)
        except (OSError, ValueError) as err:  # indexing a source before any run: a --url that cannot be read
            raise UsageProblem(str(err)) from None
    if not results:
        raise click.ClickException("every run failed: " + "; ".join(f"{f.loader} at M={f.aug_repeats}: {f.error}" for f in failures))
    recipe_text = recipe + (f" (magnitude {ra_magnitude})" if recipe == "randaugment" else "") + (
        f" + random erasing {random_erase}" if random_erase else "") + f", {interpolation}"
    click.echo(f"dali-ba bench, {recipe_text}, B={batch_size}, {image_size}px, {dtype}, model={model}, "
               f"device={'cuda' if on_gpu else 'cpu'}")
    click.echo(f"{config.steps} timed steps after {config.warmup} warm-up"
               + (", page cache evicted before each timed run" if cold_cache else ", warm page cache"))
    click.echo(f"machine: {env.cpu} x{env.cores}" + (f", {env.gpu} (driver {env.driver})" if env.gpu else ", no GPU"))
    click.echo(f"data: {stats.summary()}")
    click.echo("")
    click.echo(report.table(results, wide=wide))
    if line := report.startup(results):
        click.echo(line)
    click.echo("")
    if comparison := report.comparison(results):
        click.echo(comparison)
        click.echo("")
    click.echo(report.free_replicas(results, device="cuda" if on_gpu else "cpu", model=model))
    for path in (export_json, export_csv):
        if path:
            click.echo(f"wrote {path}", err=True)
    if plot_path:
        report.plot(plot_path, results, title=f"{env.cpu} x{env.cores}{', ' + env.gpu if env.gpu else ''} | B={batch_size}, "
                    f"{image_size}px, {dtype}, model={model} | {stats.images} imgs, mean {stats.mean_kib:.0f} KiB")
        click.echo(f"wrote {plot_path}", err=True)
    if failures:
        click.echo("")
        click.echo(f"{len(failures)} of {len(planned_runs(config))} runs failed (the exports record them):")
        for failure in failures:
            click.echo(f"  {failure.loader} at M={failure.aug_repeats}: {failure.error}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
