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
from s3server import S3Server, free_port  # noqa: E402


def start_moto() -> tuple[subprocess.Popen[bytes], S3Server]:
    """moto_server on a free loopback port, with the environment a client needs."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }
    os.environ.update(env)
    deadline = time.monotonic() + 30
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)
    return process, S3Server(endpoint, env)


def timed(args: list[str]) -> float:
    """Seconds one CLI conversion takes, in a fresh process (startup included)."""
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segconvert.cli", *args], check=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    process, s3 = start_moto()
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            json_path = coco_panoptic(
                root / "coco", args.count, width=args.width, height=args.height
            )
            s3.bucket("bench")
            started = time.perf_counter()
            s3.upload(json_path.parent, "s3://bench/coco")
            upload = time.perf_counter() - started
            remote_json = f"s3://bench/coco/{json_path.name}"
            common = ["--jobs", str(args.jobs), "--quiet"]
            rows = [
                (
                    "local -> local",
                    timed(
                        [
                            "convert",
                            str(json_path),
                            str(root / "n"),
                            "--from",
                            "coco-panoptic",
                            "--to",
                            "nucleus",
                            *common,
                        ]
                    ),
                ),
                (
                    "s3 -> s3",
                    timed(
                        [
                            "convert",
                            remote_json,
                            "s3://bench/n",
                            "--from",
                            "coco-panoptic",
                            "--to",
                            "nucleus",
                            *common,
                        ]
                    ),
                ),
                (
                    "back: local -> local",
                    timed(
                        [
                            "convert",
                            str(root / "n"),
                            str(root / "b"),
                            "--from",
                            "nucleus",
                            "--to",
                            "coco-panoptic",
                            *common,
                        ]
                    ),
                ),
                (
                    "back: s3 -> local",
                    timed(
                        [
                            "convert",
                            "s3://bench/n",
                            str(root / "b2"),
                            "--from",
                            "nucleus",
                            "--to",
                            "coco-panoptic",
                            *common,
                        ]
                    ),
                ),
            ]
    finally:
        process.terminate()
        process.wait()
    print(
        f"\n{args.count} images of {args.width}x{args.height}, --jobs {args.jobs}, "
        f"{platform.python_version()}, {os.cpu_count()} cores; moto_server on loopback "
        f"(upload of the source: {upload:.1f} s, not counted)\n"
    )
    print("| run | seconds | images/s |")
    print("| --- | ---: | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {args.count / seconds:.0f} |")


if __name__ == "__main__":
    main()
