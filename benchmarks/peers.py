"""dali-ba beside the loaders people pick instead (WebDataset, MosaicML Streaming, LitData): the
README's table, from one command (``make bench-peers``).

    .venv/bin/python benchmarks/peers.py [--rounds 3] [--latency-ms 20] [-M 1,4] [--steps 20]
        [--out benchmarks/results] [--summary-only]

Per round, alternating: ``dali-ba bench`` over the bench's data on disk (dali-ba over the folder and
over the tar copy, wds over that same tar copy, streaming and litdata over their own copies, made
once), then over the tar copy served by ``remote_reads.py``'s latency server (each response held
back ``--latency-ms``, as an object store's first byte; dali-ba-url and wds-url; Streaming and LitData
read no HTTP). Then the exactness checks (``dali_ba/bench/exactness.py``) once. The table gives
medians over the rounds: effective images/s at each M, dali-ba's ratio to each, reads and bytes
per effective image, time to first batch, and the checks' verdicts.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
LOCAL = "dali-ba,dali-ba-tar,wds,streaming,litdata"
URL = "dali-ba-url,wds-url"


def run_rounds(args) -> None:
    sys.path.insert(0, str(HERE))
    from remote_reads import Server

    from dali_ba.bench.runner import tar_copy
    from dali_ba.sources import scan_image_folder

    bench = [sys.executable, "-m", "dali_ba", "bench", "-M", args.M, "--steps", str(args.steps)]

    def once(out: str, *options) -> None:  # a rerun keeps what an earlier run finished whole
        if _finished(Path(out)):
            print(f"   {out} is there already, every run in it: kept", flush=True)
        else:
            subprocess.run(bench + list(options) + ["--export-json", out], check=True)

    for r in range(1, args.rounds + 1):
        print(f"== round {r}: on disk", flush=True)
        once(f"{args.out}/peers-local-{r}.json", "--loaders", LOCAL)
        data = json.loads(Path(f"{args.out}/peers-local-{r}.json").read_text())["config"]["data_dir"]
        shards = sorted(Path(p) for p in set(tar_copy(scan_image_folder(data)).files))
        numbers = [p.name.removeprefix("train-").removesuffix(".tar") for p in shards]
        server = Server(shards[0].parent, args.latency_ms)
        try:
            url = f"http://127.0.0.1:{server.port}/train-{{{numbers[0]}..{numbers[-1]}}}.tar"
            print(f"== round {r}: over a URL, {args.latency_ms} ms a request", flush=True)
            once(f"{args.out}/peers-url-{r}.json", "--loaders", URL, "--url", url)
        finally:
            server.close()
    print("== the exactness checks", flush=True)
    from dali_ba.bench.exactness import check_all

    with tempfile.TemporaryDirectory() as root:
        verdicts = [v.as_dict() for v in check_all(Path(root))]
    Path(f"{args.out}/peers-exactness.json").write_text(json.dumps(verdicts, indent=1) + "\n")


def _finished(path: Path) -> bool:
    """Whether ``path`` holds a bench run with a result for every loader and M it planned (the
    bench writes its plan first, so a cut or failed run leaves a file too)."""
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    return len(data["results"]) == len(data["config"]["loaders"]) * len(data["config"]["aug_repeats"])


def summarize(out: str, ms: list[int]) -> str:
    rows = {}  # (place, loader, M) -> [result]
    for place in ("local", "url"):
        for path in sorted(glob.glob(f"{out}/peers-{place}-*.json")):
            for result in json.loads(Path(path).read_text())["results"]:
                rows.setdefault((place, result["loader"], result["aug_repeats"]), []).append(result)
    verdicts = {v["loader"]: v for v in json.loads(Path(f"{out}/peers-exactness.json").read_text())}
    med = statistics.median

    def ratio(place, name, m):
        ours = "dali-ba" if place == "local" else "dali-ba-url"
        pairs = [a["effective_images_per_s"] / b["effective_images_per_s"]
                 for a, b in zip(rows.get((place, ours, m), []), rows.get((place, name, m), []))]
        return f"{med(pairs):.2f}x" if pairs and name != ours else ""

    def yes(value):
        return {True: "yes", False: "**no**", None: "-"}[value]

    head = ["where", "loader"] + [f"M={m} img/s" for m in ms] + [f"dali-ba over it, M={m}" for m in ms] + [
        f"reads / eff. image, M={ms[-1]}", f"KiB / eff. image, M={ms[-1]}", "first batch s",
        "epoch = permutation", "resumes mid-epoch", "resumes on other ranks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = list(dict.fromkeys((place, name) for place, name, _ in rows))
    for place, name in names:
        last = rows.get((place, name, ms[-1]), [])
        base = name.removesuffix("-url").removesuffix("-tar")
        verdict = verdicts.get(base, {})
        cells = [("disk" if place == "local" else "URL"), name]
        cells += [f"{med(r['effective_images_per_s'] for r in rows.get((place, name, m), [])):.0f}"
                  if rows.get((place, name, m)) else "" for m in ms]
        cells += [ratio(place, name, m) for m in ms]
        cells += [f"{med(r['reads_per_effective_image'] for r in last):.3f}" if last else "",
                  f"{med(r['bytes_read_per_effective_image'] for r in last) / 1024:.1f}" if last else "",
                  f"{med(r['first_batch_s'] for r in rows[(place, name, ms[0])]):.1f}"]
        cells += [yes(verdict.get("permutation")), yes(verdict.get("resume")), yes(verdict.get("other_ranks"))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {v['loader']}: {v['notes']}" for v in verdicts.values() if v["notes"]]
    return "\n".join(lines + ([""] + notes if notes else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("-M", default="1,4")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--summary-only", action="store_true", help="only the table, from the files of an earlier run")
    args = parser.parse_args()
    if not args.summary_only:
        run_rounds(args)
    print(summarize(args.out, [int(m) for m in args.M.split(",")]))


if __name__ == "__main__":
    main()
