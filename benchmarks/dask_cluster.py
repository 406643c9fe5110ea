"""Dask executor benchmark (not named ``dask.py``: run as a script, that name would shadow the
``dask`` package it imports): throughput against the number of workers, and the parent's peak
memory as the dataset grows.

    python benchmarks/dask_cluster.py throughput --count 400   # 640x480 COCO panoptic -> Nucleus
    python benchmarks/dask_cluster.py rss --counts 2000 20000  # parent peak RSS, tiny images

``throughput`` compares ``--jobs 1`` and the local process pool with 1, 2 and 4 single-threaded
Dask workers on 127.0.0.1: segconvert's own local cluster, and ``dask scheduler`` / ``dask
worker`` processes started before the clock (a running cluster, joined with ``--scheduler``).
``rss`` runs each conversion in a fresh process with ``--executor dask`` (a local cluster of
2 workers) and reports that process's peak RSS (``ru_maxrss``: the parent, which hands out
references and streams the results; the workers are other processes). Results go to
``benchmarks/results-dask.md`` with ``--write``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import coco_panoptic  # noqa: E402

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


@contextlib.contextmanager
def external_cluster(workers: int, environ: dict[str, str]) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker --nworkers N`` processes on 127.0.0.1, as a user
    starts them (``environ`` added to the workers' environment); yields the address once every
    worker has joined."""
    import distributed

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
            + ["--port", str(port), "--no-dashboard"],
            **quiet,  # type: ignore[call-overload]
        )
    ]
    try:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address]
                + ["--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"]
                + ["--host", "127.0.0.1"],
                env={**os.environ, **environ},
                **quiet,  # type: ignore[call-overload]
            )
        )
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


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
                with external_cluster(n, environ) as address:
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
