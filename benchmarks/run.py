"""Time segconvert side by side with Datumaro and cityscapesScripts on the same generated data.

    python benchmarks/run.py                 # full run (about 5 minutes, first time longer)
    python benchmarks/run.py --quick         # smaller counts, for a smoke test

Datumaro and cityscapesScripts are installed by this script into their own virtualenv
(``benchmarks/.venv-peers``), never into segconvert's environment. Every conversion is timed
as a whole process (wall time, peak RSS of the process and its workers) in one run, so the
ratios compare like with like on this machine. Results go to stdout and to
``benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import cityscapes, coco_panoptic, subset  # noqa: E402

PEERS = HERE / ".venv-peers"
PEER_PACKAGES = ["datumaro==1.13.*", "cityscapesscripts==2.3.0"]


@dataclass
class Timing:
    name: str
    items: int
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds


LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def timed(name: str, items: int, command: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run ``command`` to completion; wall time and the peak RSS of it and its children.

    A small fresh interpreter launches the command and reports its ``ru_maxrss``: on Linux,
    ``exec`` records the high-water mark of the address space it replaces, so a command
    forked from this (large) process would report this process's memory.
    """
    logs = HERE / "data" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() else "_" for c in name)
    rss_file = logs / f"{stem}.rss"
    with (logs / f"{stem}.log").open("w") as log:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(rss_file), *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{(logs / f'{stem}.log').read_text()[-2000:]}")
    return Timing(name, items, seconds, int(rss_file.read_text()) / 1024)


def peers_python() -> Path:
    """The peers' virtualenv interpreter, created and filled on first use."""
    python = PEERS / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    return python


def segconvert(*args: str) -> list[str]:
    return [sys.executable, "-m", "segconvert.cli", *args, "--quiet", "--overwrite"]


DATUMARO = (
    "import sys; from datumaro import Dataset; "
    "Dataset.import_from(sys.argv[1], sys.argv[2]).export(sys.argv[3], 'coco_panoptic')"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    args = parser.parse_args()
    coco_count, cs_count, small, large = (
        (100, 20, 100, 400) if args.quick else (1000, 200, 500, 4000)
    )
    data, out = args.data, args.data / "out"
    if data.exists():
        shutil.rmtree(data)
    print("generating data ...", flush=True)
    # Datumaro imports every JSON in an annotations/ folder: its dataset stands alone.
    coco_main = coco_panoptic(data / "coco", coco_count)
    memory_json = coco_panoptic(data / "coco-memory", large, seed=1)
    coco_small = subset(memory_json, small, "panoptic_small")
    coco_large = memory_json
    gtfine = cityscapes(data / "cityscapes", cs_count)
    python = str(peers_python())
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    print("timing ...", flush=True)
    rows = {
        "seg_coco": timed(
            "segconvert coco-panoptic -> nucleus",
            coco_count,
            segconvert("coco-to-nucleus", str(coco_main), str(out / "s1")),
            env,
        ),
        "seg_coco_1": timed(
            "segconvert coco-panoptic -> nucleus, --jobs 1",
            coco_count,
            segconvert("coco-to-nucleus", str(coco_main), str(out / "s2"), "-j", "1"),
            env,
        ),
        "dm_coco": timed(
            "Datumaro coco_panoptic -> coco_panoptic",
            coco_count,
            [python, "-c", DATUMARO, str(data / "coco"), "coco_panoptic", str(out / "d1")],
        ),
        "seg_cs": timed(
            "segconvert cityscapes -> coco-panoptic",
            cs_count,
            segconvert(
                "convert",
                str(gtfine),
                str(out / "s3"),
                "--from",
                "cityscapes",
                "--to",
                "coco-panoptic",
            ),
            env,
        ),
        "dm_cs": timed(
            "Datumaro cityscapes -> coco_panoptic",
            cs_count,
            [python, "-c", DATUMARO, str(data / "cityscapes"), "cityscapes", str(out / "d2")],
        ),
        "cs_cs": timed(
            "csCreatePanopticImgs",
            cs_count,
            [
                str(PEERS / "bin" / "csCreatePanopticImgs"),
                "--dataset-folder",
                str(gtfine),
                "--output-folder",
                str(_fresh(out / "c1")),
                "--set-names",
                "val",
            ],
        ),
        "seg_small": timed(
            f"segconvert coco-panoptic -> nucleus, {small} images",
            small,
            segconvert("coco-to-nucleus", str(coco_small), str(out / "s4")),
            env,
        ),
        "seg_large": timed(
            f"segconvert coco-panoptic -> nucleus, {large} images",
            large,
            segconvert("coco-to-nucleus", str(coco_large), str(out / "s5")),
            env,
        ),
    }
    checks = [
        ("coco-panoptic -> nucleus vs Datumaro", rows["seg_coco"].rate / rows["dm_coco"].rate, 3.0),
        ("cityscapes -> coco-panoptic vs Datumaro", rows["seg_cs"].rate / rows["dm_cs"].rate, 3.0),
        (
            "cityscapes -> coco-panoptic vs csCreatePanopticImgs",
            rows["seg_cs"].rate / rows["cs_cs"].rate,
            5.0,
        ),
        (
            f"peak RSS {large} / {small} images (at most)",
            rows["seg_large"].peak_rss_mb / rows["seg_small"].peak_rss_mb,
            1.3,
        ),
    ]
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python benchmarks/run.py`"
        + (" --quick" if args.quick else "")
        + ".",
        "",
        "| conversion | items | seconds | items/s | peak RSS (MB) |",
        "|---|---|---|---|---|",
        *(
            f"| {r.name} | {r.items} | {r.seconds:.1f} | {r.rate:.1f} | {r.peak_rss_mb:.0f} |"
            for r in rows.values()
        ),
        "",
        "| check | measured | target | |",
        "|---|---|---|---|",
    ]
    for name, value, target in checks:
        ok = value <= target if "at most" in name else value >= target
        lines.append(
            f"| {name} | {value:.2f}x | {'<=' if 'at most' in name else '>='} {target}x "
            f"| {'PASS' if ok else 'FAIL'} |"
        )
    text = "\n".join(lines)
    print(text)
    (HERE / "results.md").write_text(text + "\n")


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()
