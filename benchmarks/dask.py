"""Dask executor benchmark: throughput against the number of workers, and the parent's peak
memory as the dataset grows.

    python benchmarks/dask.py throughput --count 400           # 640x480 COCO panoptic -> Nucleus
    python benchmarks/dask.py rss --counts 2000 20000          # parent peak RSS, tiny images

``throughput`` starts a ``distributed.LocalCluster`` of 1, 2 and 4 single-threaded workers on
127.0.0.1 (the cluster is started before the clock starts: only the conversion is timed) and
compares it with ``--jobs 1`` and the local process pool. ``rss`` runs each conversion in a fresh
process with ``--executor dask`` (a local cluster of 2 workers) and reports that process's peak
RSS (``ru_maxrss``: the parent, which hands out references and streams the results; the
workers are other processes). Results go to ``benchmarks/results-dask.md`` with ``--write``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import coco_panoptic  # noqa: E402

from segconvert import build_registry, convert  # noqa: E402

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
    import distributed

    rows = ["| executor | workers | items | seconds | items/s |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        source = coco_panoptic(root / "src", count)
        runs: list[tuple[str, int, dict[str, object]]] = [
            ("in-process (--jobs 1)", 1, {"jobs": 1}),
            ("local pool (--jobs 2)", 2, {"jobs": 2}),
        ]
        for label, n, how in runs:
            seconds, done = timed_convert(source, root / f"out-{label[:5]}-{n}", **how)
            rows.append(f"| {label} | {n} | {done} | {seconds:.1f} | {done / seconds:.1f} |")
            print(rows[-1], flush=True)
        for n in workers:
            with distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster:
                seconds, done = timed_convert(
                    source,
                    root / f"out-dask-{n}",
                    executor="dask",
                    scheduler=cluster.scheduler_address,
                )
            rows.append(
                f"| dask (tcp://127.0.0.1) | {n} | {done} | {seconds:.1f} | {done / seconds:.1f} |"
            )
            print(rows[-1], flush=True)
    return rows


CHILD = """
import json, resource, sys, time
from segconvert import build_registry, convert
if __name__ == "__main__":
    started = time.perf_counter()
    report = convert(sys.argv[1], sys.argv[2], from_format="coco-panoptic", to_format="nucleus",
                     registry=build_registry(load_third_party=False), executor="dask", jobs=2,
                     options={"relative_mask_urls": True})
    print(json.dumps({"converted": report.converted, "seconds": time.perf_counter() - started,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def rss(counts: list[int]) -> list[str]:
    rows = ["| items | converted | seconds | parent peak RSS (MiB) |", "|---|---|---|---|"]
    peaks = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        script = root / "child.py"
        script.write_text(CHILD)
        for count in counts:
            source = coco_panoptic(root / f"src{count}", count, width=32, height=24)
            done = subprocess.run(
                [sys.executable, str(script), str(source), str(root / f"out{count}")],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"},
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            peaks.append(result["maxrss_kib"] / 1024)
            rows.append(
                f"| {count} | {result['converted']} | {result['seconds']:.1f} | {peaks[-1]:.0f} |"
            )
            print(rows[-1], flush=True)
    rows.append("")
    rows.append(f"Ratio of the largest to the smallest peak: {peaks[-1] / peaks[0]:.2f}x")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    first = sub.add_parser("throughput")
    first.add_argument("--count", type=int, default=400)
    first.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    second = sub.add_parser("rss")
    second.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    for command in (first, second):
        command.add_argument("--write", action="store_true", help="append to results-dask.md")
    args = parser.parse_args()
    rows = throughput(args.count, args.workers) if args.what == "throughput" else rss(args.counts)
    if args.write:
        with RESULTS.open("a") as handle:
            handle.write("\n".join(rows) + "\n\n")


if __name__ == "__main__":
    main()
