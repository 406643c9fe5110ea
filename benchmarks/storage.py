"""Remote (S3 on a local moto server) against local: the same COCO panoptic -> Nucleus run.

    python benchmarks/storage.py --count 2000 --jobs 2 [--width 320 --height 240]

Generates a synthetic COCO panoptic dataset (benchmarks/generate.py), uploads it to a moto
server started on 127.0.0.1 for the run, then times four conversions with the CLI in a fresh
process each: local -> local, s3 -> s3, and the way back s3 -> local and local -> local. Prints a
Markdown table (append it to benchmarks/results-storage.md). Needs ``segconvert[s3]`` and
``moto[server]``; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from generate import coco_panoptic  # noqa: E402
from objectstores import moto_server  # noqa: E402


def timed(args: list[str]) -> float:
    """Seconds one CLI conversion takes, in a fresh process (startup included)."""
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segconvert.cli", *args], check=True, env=env)
    return time.perf_counter() - started


RUNS = [
    ("local -> local", "{local}", "{root}/n", "coco-panoptic", "nucleus"),
    ("s3 -> s3", "{remote}", "s3://bench/n", "coco-panoptic", "nucleus"),
    ("back: local -> local", "{root}/n", "{root}/b", "nucleus", "coco-panoptic"),
    ("back: s3 -> local", "s3://bench/n", "{root}/b2", "nucleus", "coco-panoptic"),
]
"""(name, source, output, from, to) of the conversions timed, in order."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    rows = []
    with moto_server() as s3, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        json_path = coco_panoptic(root / "coco", args.count, width=args.width, height=args.height)
        s3.bucket("bench")
        started = time.perf_counter()
        s3.upload(json_path.parent, "s3://bench/coco")
        upload = time.perf_counter() - started
        names = {"local": json_path, "remote": f"s3://bench/coco/{json_path.name}", "root": root}
        for name, source, output, source_format, target in RUNS:
            command = ["convert", source.format(**names), output.format(**names)]
            command += ["--from", source_format, "--to", target, "--jobs", str(args.jobs)]
            rows.append((name, timed([*command, "--quiet"])))
    print(
        f"\n{args.count} images of {args.width}x{args.height}, --jobs {args.jobs}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; moto_server on loopback "
        f"(upload of the source: {upload:.1f} s, not counted)\n"
    )
    print("| run | seconds | images/s |")
    print("| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {args.count / seconds:.0f} |")


if __name__ == "__main__":
    main()
