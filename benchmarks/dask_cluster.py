"""Dask executor benchmark (not named ``dask.py``: run as a script, that name would shadow the
``dask`` package it imports): throughput against the number of workers, and the parent's peak
memory as the dataset grows.

    python benchmarks/dask_cluster.py throughput --count 400   # 640x480 COCO panoptic -> Nucleus
    python benchmarks/dask_cluster.py rss --counts 2000 20000  # parent peak RSS, tiny images

``throughput`` compares ``--jobs 1`` and the local process pool with 1, 2 and 4 single-threaded
Dask workers on 127.0.0.1: segconvert's own local cluster, and ``dask scheduler`` / ``dask
worker`` processes started before the clock (a running cluster, joined with ``--scheduler``).
``rss`` runs each conversion in a fresh process and reports that process's peak RSS
(``VmHWM``: the parent, which hands out references and streams the results; workers are other
processes), for each of ``--modes``: ``jobs1`` (in-process), ``pool`` (the local process pool,
2 workers), ``dask-local`` (segconvert's own local cluster of 2 workers) and ``dask-scheduler``
(``dask scheduler`` and ``dask worker --nworkers 2`` processes on 127.0.0.1, started before the
runs and stopped after, joined with ``--scheduler tcp://...``). Results go to
``benchmarks/results-dask.md`` with ``--write``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent / "tests"))  # processes.dask_cluster

from generate import coco_panoptic  # noqa: E402
from processes import dask_cluster  # noqa: E402

from segconvert import build_registry, convert  # noqa: E402
from segconvert.dask_memory import WORKER_ENVIRON  # noqa: E402

HERE = Path(__file__).parent
RESULTS = HERE / "results-dask.md"


def timed_convert(source: Path, out: Path, **how: object) -> tuple[float, int]:
    started = time.perf_counter()
    report = convert(
        source,
        out,
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=build_registry(load_third_party=False),
        options={"relative_mask_urls": True},
        **how,  # type: ignore[arg-type]
    )
    return time.perf_counter() - started, report.converted


def throughput(count: int, workers: list[int]) -> list[str]:
    """Items per second: in-process, the local pool, then for each worker count segconvert's
    own local cluster (started and stopped inside the timing) and a running cluster of
    ``dask scheduler``/``dask worker`` processes (started before the clock), with Dask's default
    worker environment and with the one docs/scale.md recommends."""
    rows = ["| executor | workers | items | seconds | items/s |", "|---|---|---|---|---|"]

    def row(label: str, n: int, seconds: float, done: int) -> None:
        rows.append(f"| {label} | {n} | {done} | {seconds:.1f} | {done / seconds:.1f} |")
        print(rows[-1], flush=True)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = coco_panoptic(root / "src", count)
        row("in-process (`--jobs 1`)", 1, *timed_convert(source, root / "out-1", jobs=1))
        row("local process pool (`--jobs 2`)", 2, *timed_convert(source, root / "out-2", jobs=2))
        for n in workers:
            row(
                "`--executor dask`, its own local cluster (start and stop timed too)",
                n,
                *timed_convert(source, root / f"out-own-{n}", executor="dask", jobs=n),
            )
            for label, environ in (
                ("Dask's default worker environment", {}),
                ("workers started as docs/scale.md says", WORKER_ENVIRON),
            ):
                with dask_cluster(n, env=environ) as address:
                    seconds, done = timed_convert(
                        source,
                        root / f"out-ext-{n}-{len(environ)}",
                        executor="dask",
                        scheduler=address,
                    )
                row(f"`--scheduler tcp://127.0.0.1:PORT`, {label}", n, seconds, done)
    return rows


CHILD = """
import json, resource, sys, time
from segconvert import build_registry, convert

def peak_rss_kib():
    # VmHWM: the peak RSS of this program. ru_maxrss is not: Linux carries the maxrss of the
    # process that forked it (the benchmark, holding its generated dataset) across exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

if __name__ == "__main__":
    source, out, executor, jobs, scheduler = sys.argv[1:6]
    started = time.perf_counter()
    report = convert(source, out, from_format="coco-panoptic", to_format="nucleus",
                     registry=build_registry(load_third_party=False), executor=executor,
                     jobs=int(jobs), scheduler=scheduler or None,
                     options={"relative_mask_urls": True})
    print(json.dumps({"converted": report.converted, "seconds": time.perf_counter() - started,
                      "maxrss_kib": peak_rss_kib()}))
"""

MODES = {
    "jobs1": ("in-process (`--jobs 1`)", "local", 1),
    "pool": ("local pool (`--jobs 2`)", "local", 2),
    "dask-local": ("`--executor dask -j 2` (its local cluster)", "dask", 2),
    "dask-scheduler": ("`--executor dask --scheduler tcp://...` (2 workers)", "dask", 2),
}
"""``--modes``: the table's heading, ``--executor`` and ``--jobs`` of each."""


def load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def rss(counts: list[int], modes: list[str]) -> list[str]:
    """The parent's peak RSS for each item count and executor, and the ratio of the largest
    count's to the smallest's."""
    headings = [MODES[mode][0] for mode in modes]
    rows = [
        f"Load average at the start: {load()} ({os.cpu_count()} cores).",
        "",
        "| items | " + " | ".join(headings) + " |",
        "|---" * (len(modes) + 1) + "|",
    ]
    peaks: dict[str, list[float]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        root = Path(folder)
        script = root / "child.py"
        script.write_text(CHILD)
        address = ""
        if "dask-scheduler" in modes:
            address = stack.enter_context(dask_cluster(2, env=WORKER_ENVIRON))
        for count in counts:
            source = coco_panoptic(root / f"src{count}", count, width=32, height=24)
            cells = []
            for mode in modes:
                _, executor, jobs = MODES[mode]
                scheduler = address if mode == "dask-scheduler" else ""
                done = subprocess.run(
                    [sys.executable, str(script), str(source), str(root / f"out-{mode}-{count}")]
                    + [executor, str(jobs), scheduler],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"},
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                assert result["converted"] == count, result
                peaks[mode].append(result["maxrss_kib"] / 1024)
                cells.append(f"{peaks[mode][-1]:.0f} MiB ({result['seconds']:.0f} s)")
                print(f"{count} {mode}: {cells[-1]}", flush=True)
            rows.append(f"| {count:,} | " + " | ".join(cells) + " |")
    for at, count in enumerate(counts[1:], 1):
        ratios = [f"**{peaks[mode][at] / peaks[mode][0]:.2f}x**" for mode in modes]
        rows.append(f"| ratio {count:,} / {counts[0]:,} | " + " | ".join(ratios) + " |")
    rows += ["", f"Load average at the end: {load()}."]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    first = sub.add_parser("throughput")
    first.add_argument("--count", type=int, default=400)
    first.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    second = sub.add_parser("rss")
    second.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    second.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    for command in (first, second):
        command.add_argument("--write", action="store_true", help="append to results-dask.md")
    args = parser.parse_args()
    if args.what == "throughput":
        rows = throughput(args.count, args.workers)
    else:
        rows = rss(args.counts, args.modes)
    if args.write:
        with RESULTS.open("a") as handle:
            handle.write("\n".join(rows) + "\n\n")


if __name__ == "__main__":
    main()
