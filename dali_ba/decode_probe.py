"""Decode-stage probe: does region decoding work on this GPU, DALI and nvImageCodec? Asked once, in a subprocess.

Part of the decode stage (``decode.py``). DALI 2.4 decodes through nvImageCodec 0.9, and 0.9 has an
open report of GPU JPEG region decoding that fails (``INTERNAL_ERROR`` on A100) or kills the
process with SIGSEGV (H100, B200); ``decoders.image_slice`` and ``decoders.image_random_crop`` on
``device="mixed"`` both take that path. A segfault skips every ``try``, so the question is asked
in a child process: it decodes a few batches of JPEGs made on the spot (4:2:0, 4:4:4, grey,
progressive, odd sizes), checks that the outputs are on the GPU and match libjpeg-turbo's, and
reports its memory and whether nvJPEG was loaded at all. Each *case* is one decoder:

``whole``: ``decoders.image`` (whole images); ``region``: ``decoders.image_slice`` (the loader's
region decode); ``random_crop``: ``decoders.image_random_crop`` (NVIDIA's ResNet-50 pipeline).

A :class:`Verdict` tries the case with :data:`decode.GPU_OPTIONS` first, then with each of
:data:`WORKAROUNDS`, and keeps the first set of options that works, or none. Verdicts are cached
under ``cache_dir()/decode-probe``, one file per device, DALI and nvImageCodec version; a file
lock makes one process of a node probe while the others wait for its verdict. The loader asks for
the ``region`` verdict when it is built on a GPU with ``roi_decode="auto"``: where no option set
works it decodes whole images (and warns once), so a broken region decode costs speed, not the
run. On the CPU the probe runs only when asked for; a verdict found in the cache counts there too,
which is how ``benchmarks/gpu_suite.sh`` rehearses the fallback on a CPU machine.

``dali-ba probe-decode`` runs every case (:func:`probe_all`) and writes a JSON report; each case
runs in a child (:func:`child_main`), the process that may die.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

CASES = ("whole", "region", "random_crop")
#: Option sets tried, in order, after ``decode.GPU_OPTIONS`` alone fails: without the hardware
#: decoder (all JPEGs to the CUDA decoder), then with DALI's own chroma upsampling.
WORKAROUNDS = ({"hw_decoder_load": 0.0}, {"jpeg_fancy_upsampling": False})
#: The memory options of DALI itself, to measure what ours cost beside them (``all`` only).
DALI_DEFAULT_MEMORY = {"device_memory_padding": 16 * 2**20, "host_memory_padding": 8 * 2**20}
#: Largest mean absolute difference (0..255) from libjpeg-turbo's decode that is still a correct
#: decode: IDCT and upsampling differences stay near 1, a wrong region or garbage is tens.
MAX_MEAN_ABS_DIFF = 6.0
RESULT_TAG = "DECODE-PROBE-RESULT "
CHILD_TIMEOUT_S = 180


@dataclass
class Outcome:
    """One case with one option set, as the child process ended.

    Attributes:
        case: ``whole``, ``region`` or ``random_crop``.
        options: Decoder options on top of ``decode.GPU_OPTIONS``.
        ok: The child decoded every batch correctly and exited 0.
        returncode: The child's exit status; negative is a signal.
        signal: The signal's name (``SIGSEGV``), or ``None``.
        message: Why it failed, in a line or a few (the child's error, or its last stderr lines).
        seconds: Wall time of the child, imports included.
        details: What the child measured (memory, libraries, versions, timings), when it got that far.
    """

    case: str
    options: dict
    ok: bool
    returncode: int | None
    signal: str | None
    message: str
    seconds: float
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.ok:
            return "works"
        if self.signal:
            return f"killed by {self.signal}"
        if self.returncode is None:
            return f"timed out after {self.seconds:.0f} s"
        return f"failed (exit {self.returncode}): {self.message.splitlines()[-1] if self.message else '?'}"


@dataclass
class Verdict:
    """Whether ``case`` works on ``device``, and with which options.

    Attributes:
        case: The decoder asked about.
        device: ``cuda:N``'s name (``NVIDIA H200``) or ``cpu``.
        works: Some option set decoded correctly.
        options: The first option set that worked (``{}``: ``decode.GPU_OPTIONS`` as they are).
        tried: Every outcome, in the order tried.
        key: What the verdict is valid for (device, DALI and nvImageCodec versions).
    """

    case: str
    device: str
    works: bool
    options: dict
    tried: list[Outcome]
    key: dict

    def describe(self) -> str:
        if not self.tried:
            return f"{self.case}: not probed"
        if not self.works:
            return f"{self.case}: fails with every option set tried ({'; '.join(o.describe() for o in self.tried)})"
        extra = f" with {self.options}" if self.options else ""
        return f"{self.case}: works{extra}"

    def as_dict(self) -> dict:
        return asdict(self)


# -- the parent: run a case in a child, decide, cache ---------------------------------------------


def run_case(case: str, options: dict | None = None, *, device: str = "cuda", timeout: float = CHILD_TIMEOUT_S,
             command: list[str] | None = None, simulate_crash: bool = False) -> Outcome:
    """Runs one case in a child process and reports how it ended.

    Args:
        case: One of :data:`CASES`.
        options: Decoder options on top of ``decode.GPU_OPTIONS``.
        device: ``cuda``/``cuda:N`` (``mixed`` decoding) or ``cpu`` (DALI's CPU decoder: the same
            code, for rehearsals on machines without a GPU).
        timeout: Seconds before the child is killed and the case counts as failed.
        command: The child's command line instead of ``python -m dali_ba.decode_probe child ...``.
        simulate_crash: The child kills itself with SIGSEGV after its first batch, as a broken
            decoder does (a rehearsal of the fallback on any machine).
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {', '.join(CASES)}, but got {case!r}")
    options = dict(options or {})
    if command is None:
        command = [sys.executable, "-c", "import sys; from dali_ba.decode_probe import child_main; sys.exit(child_main())",
                   "--case", case, "--device", device, "--options", json.dumps(options)]
        command += ["--simulate-crash"] if simulate_crash else []
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        tail = _tail((err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or ""))
        return Outcome(case, options, False, None, None, f"no answer in {timeout:.0f} s. {tail}".strip(),
                       time.perf_counter() - start)
    seconds = time.perf_counter() - start
    details = {}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            details = json.loads(line[len(RESULT_TAG):])
    name = None
    if done.returncode < 0:
        with contextlib.suppress(ValueError):
            name = signal.Signals(-done.returncode).name
    ok = done.returncode == 0 and details.get("ok") is True
    message = details.get("error") or ("" if ok else _tail(done.stderr))
    return Outcome(case, options, ok, done.returncode, name, message, seconds, details)


def _tail(text: str, lines: int = 6) -> str:
    """The useful end of a child's stderr: faulthandler's verdict and innermost frame where it
    crashed (its module list comes last and says nothing), else the last ``lines`` lines."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    fatal = next((i for i, line in enumerate(kept) if line.startswith("Fatal Python error")), None)
    if fatal is not None:
        frame = next((line.strip() for line in kept[fatal:] if line.strip().startswith("File ")), "")
        return f"{kept[fatal]} (innermost Python frame: {frame})" if frame else kept[fatal]
    return "\n".join(kept[-lines:])


def verdict_key(device: str) -> dict:
    """What a verdict holds for: the device's name, the DALI and nvImageCodec versions."""
    import nvidia.dali
    from nvidia.dali import backend

    if device == "cpu":
        name = "cpu"
    else:
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
    return {"device": name, "dali": nvidia.dali.__version__, "nvimagecodec": nvimagecodec_version(backend)}


def nvimagecodec_version(backend=None) -> str:
    if backend is None:
        from nvidia.dali import backend
    try:
        number = int(backend.GetNvimgcodecVersion())  # major * 1000 + minor * 100 + patch
    except (AttributeError, RuntimeError, ValueError):
        return "unknown"
    return f"{number // 1000}.{number % 1000 // 100}.{number % 100}" if number > 0 else "unknown"


def _cache_file(case: str, key: dict) -> Path:
    """The verdict's cache entry: one per case, device name, DALI and nvImageCodec version (``sources.cache``)."""
    from .sources.cache import entry

    return entry("decode-probe", f"{case}-{key['device']}", case, *(f"{k}={v}" for k, v in key.items()), suffix=".json")


def cached_verdict(case: str, device: str) -> Verdict | None:
    """The cached verdict for ``case`` on ``device`` (``cpu``, ``cuda:N``), or ``None``; runs nothing."""
    return _load_verdict(_cache_file(case, verdict_key(device)))


def _load_verdict(path: Path) -> Verdict | None:
    try:
        saved = json.loads(path.read_text())
        saved["tried"] = [Outcome(**o) for o in saved["tried"]]
        return Verdict(**saved)
    except (OSError, ValueError, TypeError, KeyError):
        return None  # none yet, or torn: probe again


def probe_verdict(case: str, device: str, *, run=run_case, simulate_crash: bool = False) -> Verdict:
    """The verdict for ``case`` on ``device``: from the cache, or probed now and cached.

    One process per cache folder probes (``sources.cache.built_once``: a lock released by the OS
    if its holder dies); the others wait for its verdict and read it.

    Args:
        case: One of :data:`CASES`.
        device: ``cuda:N`` or ``cpu``.
        run: ``run(case, options, device=...) -> Outcome``; :func:`run_case` by default.
        simulate_crash: Passed to ``run`` (the rehearsal of a broken decoder).
    """
    from .sources.cache import built_once, written_atomically

    key = verdict_key(device)
    path = _cache_file(case, key)

    def save(verdict: Verdict) -> None:
        try:
            with written_atomically(path, "w") as f:
                json.dump(verdict.as_dict(), f, indent=1)
        except OSError as err:
            warnings.warn(f"cannot keep decode-probe verdicts in {str(path.parent)!r} ({err}); every process will probe "
                          f"(set DALI_BA_CACHE to a writable folder)", stacklevel=4)

    return built_once(path, lambda: _probe(case, device, key, run, simulate_crash), load=_load_verdict, save=save,
                      name=f"the {case} decode probe's verdict")


def _probe(case: str, device: str, key: dict, run, simulate_crash: bool) -> Verdict:
    """Tries ``case`` with each option set until one works."""
    tried = []
    for options in ({}, *WORKAROUNDS):
        kwargs = {"simulate_crash": True} if simulate_crash else {}
        outcome = run(case, options, device=device, **kwargs)
        tried.append(outcome)
        if outcome.ok:
            break
    works = tried[-1].ok
    return Verdict(case, key["device"], works, tried[-1].options if works else {}, tried, key)


class RegionDecodeWarning(UserWarning):
    """Region decoding failed its probe on this GPU; the loader decodes whole images instead."""


def region_decode_plan(roi_decode, device, *, probe=probe_verdict) -> tuple[bool, dict]:
    """Whether a loader on ``device`` decodes regions, and with which decoder options.

    Args:
        roi_decode: The loader's option: ``True`` (always, no probe), ``False`` (never) or
            ``"auto"``: on a GPU, region decoding where the ``region`` probe found an option set
            that works (probed once per GPU, DALI and nvImageCodec, then cached); on the CPU,
            region decoding unless a cached verdict for the CPU says otherwise (none is made
            unless asked for: the CPU decoder's region decode is libjpeg-turbo's).
        device: The loader's ``torch.device``.
        probe: ``probe(case, device) -> Verdict`` (:func:`probe_verdict`).

    Returns:
        ``(roi_decode, gpu_options)``: whether to decode regions, and the options on top of
        ``decode.GPU_OPTIONS`` to do it with.
    """
    if isinstance(roi_decode, bool):
        return roi_decode, {}
    name = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
    verdict = cached_verdict("region", name) if device.type == "cpu" else probe("region", name)
    if verdict is None:
        return True, {}
    if verdict.works:
        return True, dict(verdict.options)

    warnings.warn(
        f"region decoding failed its probe on {verdict.device} (DALI {verdict.key.get('dali')}, nvImageCodec "
        f"{verdict.key.get('nvimagecodec')}): {'; '.join(o.describe() for o in verdict.tried)}. This loader decodes whole "
        f"images instead, which costs decode time, not the run. The verdict is cached in "
        f"{_cache_file('region', verdict.key)}: delete it to probe again, or pass roi_decode=True to decode regions anyway.",
        RegionDecodeWarning,
        stacklevel=3,
    )
    return False, {}


# -- the child: one case, in the process that may die -----------------------------------------------


def _test_jpegs() -> list[tuple[bytes, str]]:
    """A few JPEGs as cameras and ImageNet write them, with a name each."""
    import io

    import numpy as np
    from PIL import Image

    from .synthetic import natural_image

    rng = np.random.default_rng(0)
    specs = [((500, 375), 2, False, "RGB"), ((375, 500), 2, False, "RGB"), ((333, 500), 0, False, "RGB"),
             ((1023, 767), 2, True, "RGB"), ((211, 149), 1, False, "RGB"), ((640, 427), 2, False, "L"),
             ((2400, 1800), 2, False, "RGB"), ((257, 257), 0, True, "RGB")]
    made = []
    for (w, h), subsampling, progressive, mode in specs:
        image = Image.fromarray(natural_image(rng, w, h)).convert(mode)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=92, subsampling=subsampling, progressive=progressive)
        made.append((buf.getvalue(), f"{w}x{h} {mode} subsampling={subsampling}{' progressive' if progressive else ''}"))
    return made


def _loaded_libraries() -> list[str]:
    """Shared libraries of nvJPEG and nvImageCodec mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps") as f:
            names = {os.path.basename(line.split()[-1]) for line in f if line.rstrip().endswith((".so",)) or ".so." in line}
    except OSError:
        return []
    return sorted(n for n in names if "nvjpeg" in n or "nvimgcodec" in n)


def _nvjpeg_version() -> str | None:
    """The version of the nvJPEG library mapped into this process (``nvjpegGetProperty``), if any."""
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            path = next(line.split()[-1] for line in f if os.path.basename(line.split()[-1]).startswith("libnvjpeg.so"))
        library = ctypes.CDLL(path)
        parts = []
        for kind in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
            value = ctypes.c_int()
            if library.nvjpegGetProperty(kind, ctypes.byref(value)) != 0:
                return None
            parts.append(str(value.value))
        return ".".join(parts)
    except (OSError, StopIteration, AttributeError, IndexError):
        return None


def _memory() -> dict:
    """Resident and locked host memory of this process (``/proc/self/status``), MiB."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                field_name, _, value = line.partition(":")
                if field_name in ("VmRSS", "VmLck", "VmPin"):
                    out[field_name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def child(case: str, device: str, options: dict, batches: int = 3, simulate_crash: bool = False) -> dict:
    """Decodes ``batches`` batches with one case; returns what it measured (raises on a wrong decode)."""
    import io

    import numpy as np
    from nvidia.dali import backend, fn, pipeline_def, types
    from PIL import Image

    from .decode import GPU_OPTIONS

    on_gpu = device != "cpu"
    report = {"case": case, "device": device, "options": options, "nvimagecodec": nvimagecodec_version(backend)}
    free0 = total = index = None
    if on_gpu:
        import torch

        index = torch.device(device).index or 0
        torch.cuda.set_device(index)
        torch.cuda.init()
        free0, total = torch.cuda.mem_get_info(index)
        report["gpu"] = torch.cuda.get_device_name(index)
    host0 = _memory()
    jpegs = _test_jpegs()
    encoded = [np.frombuffer(data, dtype=np.uint8) for data, _ in jpegs]
    references = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data, _ in jpegs]
    # The region: the middle of each image, odd offsets included, as the loader's windows are.
    anchors = [np.array([h // 5 + 1, w // 7 + 1], np.int32) for h, w, _ in (r.shape for r in references)]
    shapes = [np.array([h // 2 + 3, w // 2 + 5], np.int32) for h, w, _ in (r.shape for r in references)]
    decoder_options = dict(GPU_OPTIONS, **options) if on_gpu else {}

    @pipeline_def(batch_size=len(jpegs), num_threads=4, device_id=index, seed=1, prefetch_queue_depth=1)
    def pipe_def():
        data = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        dev = "mixed" if on_gpu else "cpu"
        if case == "whole":
            return fn.decoders.image(data, device=dev, output_type=types.RGB, **decoder_options)
        if case == "region":
            anchor = fn.external_source(name="anchor", dtype=types.INT32, ndim=1)
            shape = fn.external_source(name="shape", dtype=types.INT32, ndim=1)
            return fn.decoders.image_slice(data, anchor, shape, axis_names="HW", normalized_anchor=False,
                                           normalized_shape=False, device=dev, output_type=types.RGB, **decoder_options)
        return fn.decoders.image_random_crop(data, device=dev, output_type=types.RGB, random_area=(0.08, 1.0),
                                             random_aspect_ratio=(0.75, 4 / 3), num_attempts=100, **decoder_options)

    pipe = pipe_def()
    pipe.build()
    times, worst = [], 0.0
    cpu0 = os.times()
    for number in range(batches):
        pipe.feed_input("encoded", encoded)
        if case == "region":
            pipe.feed_input("anchor", anchors)
            pipe.feed_input("shape", shapes)
        start = time.perf_counter()
        (out,) = pipe.run()
        times.append(time.perf_counter() - start)
        if on_gpu and type(out).__name__ != "TensorListGPU":
            raise RuntimeError(f"the mixed decoder's output is a {type(out).__name__}, not on the GPU")
        images = [np.asarray(t) for t in (out.as_cpu() if on_gpu else out)]
        for k, (image, reference) in enumerate(zip(images, references)):
            if case == "region":
                (y, x), (h, w) = anchors[k], shapes[k]
                reference = reference[y:y + h, x:x + w]
            if case == "random_crop":  # a random window: check only that it is an image, not garbage
                if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1 or image.std() < 1:
                    raise RuntimeError(f"random_crop of {jpegs[k][1]} gave a {image.shape} image with std {image.std():.2f}")
                continue
            if image.shape != reference.shape:
                raise RuntimeError(f"{case} of {jpegs[k][1]} gave shape {image.shape}, expected {reference.shape}")
            diff = float(np.abs(image.astype(np.int16) - reference.astype(np.int16)).mean())
            worst = max(worst, diff)
            if diff > MAX_MEAN_ABS_DIFF:
                raise RuntimeError(f"{case} of {jpegs[k][1]} differs from libjpeg-turbo by {diff:.1f} on average (limit "
                                   f"{MAX_MEAN_ABS_DIFF}): a wrong decode")
        if simulate_crash and number == 0:
            os.kill(os.getpid(), signal.SIGSEGV)
    cpu1 = os.times()
    report.update(
        ok=True,
        batches=batches,
        images_per_batch=len(jpegs),
        max_mean_abs_diff=round(worst, 3),
        # The first batch pays for nvJPEG's set-up; the rest is the steady state.
        batch_ms=[round(t * 1000, 2) for t in times],
        cpu_s_per_image=round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (batches * len(jpegs)), 5),
        libraries=_loaded_libraries(),
        nvjpeg=_nvjpeg_version(),
        host_mib_before=host0,
        host_mib_after=_memory(),
    )
    if on_gpu:
        import torch

        free1, _ = torch.cuda.mem_get_info(index)
        report["gpu_mib_used_by_pipeline"] = round((free0 - free1) / 2**20, 1)
        report["gpu_mib_total"] = round(total / 2**20, 1)
        report["nvjpeg_loaded"] = any("nvjpeg" in n for n in report["libraries"])
    return report


# -- the report of every case, and the child's command line ----------------------------------------


def probe_all(device: str, out: Path | None = None, simulate_crash=(), echo=print) -> dict:
    """Every case's verdict (cached for the loader and the bench), and what the decoders cost.

    Besides the verdicts: the ``whole`` case again with DALI's own memory options (GPU and host
    memory of one pipeline, ours against DALI's), and on a GPU the CPU decoder's CPU time per image
    beside the ``mixed`` decoder's (a ``mixed`` decode that costs as much CPU runs on the CPU).

    Args:
        device: ``cuda:N`` or ``cpu``.
        out: Where to write the JSON report.
        simulate_crash: Cases whose children kill themselves with SIGSEGV (a rehearsal).
        echo: Where the one-line summaries go.

    Returns:
        The report: ``key``, ``verdicts`` (case -> Verdict as a dict) and ``extra`` outcomes.
    """
    unknown = set(simulate_crash) - set(CASES)
    if unknown:
        raise ValueError(f"simulate_crash: unknown case {', '.join(sorted(unknown))}; choose from {', '.join(CASES)}")
    report = {"key": verdict_key(device), "verdicts": {}, "extra": []}
    for case in CASES:
        verdict = probe_verdict(case, device, simulate_crash=case in simulate_crash)
        report["verdicts"][case] = verdict.as_dict()
        echo(f"probe {verdict.describe()}")
        for outcome in verdict.tried:
            echo(f"  {outcome.options or 'GPU_OPTIONS'}: {outcome.describe()} ({outcome.seconds:.1f} s)")
    extra = [("DALI's memory options", "whole", DALI_DEFAULT_MEMORY, device)]
    if device != "cpu":
        extra.append(("the CPU decoder", "whole", {}, "cpu"))
    for label, case, options, where in extra:
        outcome = run_case(case, options, device=where)
        report["extra"].append(dict(asdict(outcome), label=label))
        echo(f"probe {case} with {label} on {where}: {outcome.describe()}")
    ours = report["verdicts"]["whole"]["tried"][0]["details"]
    theirs = report["extra"][0]["details"]
    for label, details in (("ours", ours), ("DALI's", theirs)):
        if details:
            before, after = details.get("host_mib_before", {}), details.get("host_mib_after", {})
            echo(f"  memory options {label}: GPU {details.get('gpu_mib_used_by_pipeline', '-')} MiB for one pipeline; host "
                 f"RSS {before.get('VmRSS', 0):.0f} -> {after.get('VmRSS', 0):.0f} MiB, locked {after.get('VmLck', 0):.0f} MiB")
    if ours:
        echo(f"  libraries: {', '.join(ours.get('libraries', [])) or 'none found'}; nvImageCodec {ours.get('nvimagecodec')}, "
             f"nvJPEG {ours.get('nvjpeg')}; "
             f"max mean |diff| from libjpeg-turbo {ours.get('max_mean_abs_diff')}")
    if device != "cpu" and ours and len(report["extra"]) > 1 and report["extra"][1]["details"]:
        cpu = report["extra"][1]["details"]["cpu_s_per_image"]
        share = ours["cpu_s_per_image"] / cpu if cpu else float("nan")
        report["mixed_cpu_time_share"] = share
        echo(f"  CPU time per image: mixed {ours['cpu_s_per_image'] * 1e3:.2f} ms, CPU decoder {cpu * 1e3:.2f} ms "
             f"({share:.0%}; near 100% would mean the 'mixed' decoder decodes on the CPU)")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def child_main(argv=None) -> int:
    """One case in this process, which may die: prints a :data:`RESULT_TAG` line with its report."""
    parser = argparse.ArgumentParser(prog="decode_probe child")
    parser.add_argument("--case", choices=CASES, required=True)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--simulate-crash", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = child(args.case, args.device, json.loads(args.options), args.batches, args.simulate_crash)
    except Exception as err:  # noqa: BLE001 (the parent reads the reason from this line)
        print(RESULT_TAG + json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"[:2000]}), flush=True)
        return 1
    print(RESULT_TAG + json.dumps(report, default=str), flush=True)
    return 0
