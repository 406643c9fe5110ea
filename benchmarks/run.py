"""Time segconvert side by side with Datumaro and cityscapesScripts on the same generated data.

    python benchmarks/run.py                 # full run (about 8 minutes, first time longer)
    python benchmarks/run.py --quick         # smaller counts, for a smoke test
    python benchmarks/run.py --suite rle     # only the COCO RLE / SA-1B jobs

Each segconvert job is compared with a minimal correct script using the same codecs
(``benchmarks/minimal.py``) timed in the same run: the contenders of a ratio run in turn, for
three rounds, and the best of each counts.

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
from generate import cityscapes, coco_instances, coco_panoptic, sa1b, subset  # noqa: E402

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


def timed(
    name: str,
    items: int,
    command: list[str],
    env: dict[str, str] | None = None,
    output: Path | None = None,
) -> Timing:
    """Run ``command`` to completion; wall time and the peak RSS of it and its children.

    ``output`` (the command's output folder) is emptied before the clock starts, and the disk
    is synced: every contender writes into an empty folder and none pays for another's
    deletes or write-back (this disk is mounted with ``discard``: deleting thousands of files
    stalls the next file creations).

    A small fresh interpreter launches the command and reports its ``ru_maxrss``: on Linux,
    ``exec`` records the high-water mark of the address space it replaces, so a command
    forked from this (large) process would report this process's memory.
    """
    if output is not None:
        _fresh(output)
    os.sync()
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


def minimal(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "minimal.py"), *args]


KEPT_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864"}
"""The glibc thresholds segconvert's workers set for themselves
(``segconvert.dask_memory.keep_item_memory``), given to a second run of each minimal script so
the tables also show segconvert against a floor with the same allocator settings."""


@dataclass(frozen=True)
class Contender:
    """One command to time against others on the same data (see :func:`contest`)."""

    name: str
    items: int
    command: list[str]
    env: dict[str, str] | None = None
    output: Path | None = None


ROUNDS = 3
"""Rounds of every contest: each contender runs once per round."""


def contest(contenders: dict[str, Contender], rounds: int = ROUNDS) -> dict[str, Timing]:
    """Each contender once per round, in turn, for ``rounds`` rounds; the fastest run of each.

    Interleaved, so that a slow spell of this shared machine (it swings by 1.5x between
    identical runs) falls on every contender of a ratio, not on whichever ran during it; the
    best of each is its least disturbed run.
    """
    best: dict[str, Timing] = {}
    for _ in range(rounds):
        for key, c in contenders.items():
            timing = timed(c.name, c.items, c.command, c.env, c.output)
            if key not in best or timing.seconds < best[key].seconds:
                best[key] = timing
    return best


def floors(
    key: str, name: str, items: int, command: list[str], output: Path
) -> dict[str, Contender]:
    """A minimal script as written (``key``) and with the malloc settings of segconvert's
    workers (``key_kept``), to run in the same :func:`contest` as the segconvert job."""
    return {
        key: Contender(name, items, command, output=output),
        f"{key}_kept": Contender(
            f"{name}, malloc kept as segconvert's workers keep it",
            items,
            command,
            {**os.environ, **KEPT_MALLOC},
            output,
        ),
    }


def against_floors(
    key: str,
    job: Contender,
    floor_key: str,
    floor_name: str,
    floor_command: list[str],
    floor_output: Path,
) -> dict[str, Timing]:
    """A segconvert job and its minimal script (as written and with segconvert's malloc
    settings) in one :func:`contest`."""
    return contest(
        {key: job, **floors(floor_key, floor_name, job.items, floor_command, floor_output)}
    )


def convert(source: Path, target: Path, source_format: str, target_format: str) -> list[str]:
    """``segconvert convert SOURCE TARGET --from ... --to ...``."""
    return segconvert(
        "convert", str(source), str(target), "--from", source_format, "--to", target_format
    )


DATUMARO_SA1B = """
import sys
from datumaro import Dataset
from datumaro.components.annotation import AnnotationType, LabelCategories
from datumaro.components.transformer import ItemTransform


class LabelEveryMask(ItemTransform):
    def categories(self):
        categories = dict(self._extractor.categories())
        categories[AnnotationType.label] = LabelCategories.from_iterable(["object"])
        return categories

    def transform_item(self, item):
        return item.wrap(annotations=[a.wrap(label=0) for a in item.annotations])


dataset = Dataset.import_from(sys.argv[1], "segment_anything")
dataset.transform(LabelEveryMask)
dataset.export(sys.argv[2], "voc_instance_segmentation")
"""


def same_masks(ours: Path, theirs: Path) -> bool:
    """Whether two Nucleus outputs hold pixel-identical masks under the same names."""
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in (ours / "masks").glob("*.png"))
    if names != sorted(p.name for p in (theirs / "masks").glob("*.png")):
        return False
    return all(
        np.array_equal(
            np.asarray(Image.open(ours / "masks" / n)), np.asarray(Image.open(theirs / "masks" / n))
        )
        for n in names
    )


def same_rles(ours: Path, theirs: Path) -> bool:
    """Whether two COCO RLE outputs list the same masks (counts and areas) in the same order."""
    import json

    mine = json.loads((ours / "instances.json").read_text())["annotations"]
    other = json.loads((theirs / "instances.json").read_text())["annotations"]
    return len(mine) == len(other) and all(
        a["segmentation"]["counts"] == b["segmentation"]["counts"] and a["area"] == b["area"]
        for a, b in zip(mine, other, strict=True)
    )


def rle_suite(
    data: Path, out: Path, python: str, env: dict[str, str], quick: bool
) -> tuple[dict[str, Timing], list[tuple[str, float, float]]]:
    """SA-1B-style -> Nucleus and back, COCO instances -> Nucleus, memory at 1x/4x/8x."""
    images, instances, memory = (10, 200, 250) if quick else (120, 4000, 1000)
    print("generating RLE data ...", flush=True)
    sa1b_dir = sa1b(data / "sa1b", images)
    instances_json = coco_instances(data / "instances", instances)
    sizes = {k: coco_instances(data / f"instances-{k}x", memory * k, seed=k) for k in (1, 4, 8)}
    print("timing RLE jobs ...", flush=True)
    rows = {
        **against_floors(
            "seg_sa1b",
            Contender(
                "segconvert SA-1B-style -> nucleus",
                images,
                convert(sa1b_dir, out / "r1", "coco-rle", "nucleus"),
                env,
                out / "r1",
            ),
            "min_sa1b",
            "minimal script SA-1B-style -> nucleus",
            minimal("sa1b-to-nucleus", str(sa1b_dir), str(out / "m1")),
            out / "m1",
        ),
        "dm_sa1b": timed(
            "Datumaro segment_anything -> voc_instance_segmentation",
            images,
            [python, "-c", DATUMARO_SA1B, str(sa1b_dir), str(out / "d3")],
            output=out / "d3",
        ),
        **against_floors(
            "seg_back",
            Contender(
                "segconvert nucleus -> coco-rle",
                images,
                convert(out / "r1", out / "r2", "nucleus", "coco-rle"),
                env,
                out / "r2",
            ),
            "min_back",
            "minimal script nucleus -> coco-rle",
            minimal("nucleus-to-rle", str(out / "r1"), str(out / "m2")),
            out / "m2",
        ),
        **against_floors(
            "seg_inst",
            Contender(
                "segconvert COCO instances -> nucleus",
                instances,
                convert(instances_json, out / "r3", "coco-rle", "nucleus"),
                env,
                out / "r3",
            ),
            "min_inst",
            "minimal script COCO instances -> nucleus",
            minimal("instances-to-nucleus", str(instances_json), str(out / "m3")),
            out / "m3",
        ),
    }
    for k, path in sizes.items():
        rows[f"mem_{k}"] = timed(
            f"segconvert COCO instances {k}x -> nucleus",
            memory * k,
            convert(path, out / f"r{k}x", "coco-rle", "nucleus"),
            env,
        )
        rows[f"val_{k}"] = timed(
            f"segconvert validate COCO instances {k}x",
            memory * k,
            [sys.executable, "-m", "segconvert.cli", "validate", str(path), "--format", "coco-rle"],
            env,
        )
    if not same_masks(out / "r1", out / "m1"):
        raise SystemExit("the minimal SA-1B script's masks differ from segconvert's")
    if not same_rles(out / "r2", out / "m2"):
        raise SystemExit("the minimal way back's RLEs differ from segconvert's")
    checks = [
        (
            "SA-1B-style -> nucleus vs minimal script",
            rows["seg_sa1b"].rate / rows["min_sa1b"].rate,
            0.8,
        ),
        (
            "SA-1B-style -> nucleus vs minimal script with the same malloc settings",
            rows["seg_sa1b"].rate / rows["min_sa1b_kept"].rate,
            0.8,
        ),
        ("SA-1B-style -> nucleus vs Datumaro", rows["seg_sa1b"].rate / rows["dm_sa1b"].rate, 3.0),
        (
            "nucleus -> coco-rle vs minimal script",
            rows["seg_back"].rate / rows["min_back"].rate,
            0.8,
        ),
        (
            "nucleus -> coco-rle vs minimal script with the same malloc settings",
            rows["seg_back"].rate / rows["min_back_kept"].rate,
            0.8,
        ),
        (
            "COCO instances -> nucleus vs minimal script",
            rows["seg_inst"].rate / rows["min_inst"].rate,
            0.8,
        ),
        (
            "COCO instances -> nucleus vs minimal script with the same malloc settings",
            rows["seg_inst"].rate / rows["min_inst_kept"].rate,
            0.8,
        ),
    ]
    for k in (4, 8):
        for kind in ("mem", "val"):
            what = "convert" if kind == "mem" else "validate"
            checks.append(
                (
                    f"peak RSS {what} COCO instances {k}x / 1x (at most)",
                    rows[f"{kind}_{k}"].peak_rss_mb / rows[f"{kind}_1"].peak_rss_mb,
                    1.3,
                )
            )
    return rows, checks


DATUMARO = (
    "import sys; from datumaro import Dataset; "
    "Dataset.import_from(sys.argv[1], sys.argv[2]).export(sys.argv[3], 'coco_panoptic')"
)


def panoptic_suite(
    data: Path, out: Path, python: str, env: dict[str, str], quick: bool
) -> tuple[dict[str, Timing], list[tuple[str, float, float]]]:
    """COCO panoptic -> Nucleus and Cityscapes -> COCO panoptic against the peers and the floor."""
    coco_count, cs_count, small, large = (100, 20, 100, 400) if quick else (1000, 200, 500, 4000)
    print("generating data ...", flush=True)
    # Datumaro imports every JSON in an annotations/ folder: its dataset stands alone.
    coco_main = coco_panoptic(data / "coco", coco_count)
    memory_json = coco_panoptic(data / "coco-memory", large, seed=1)
    coco_small = subset(memory_json, small, "panoptic_small")
    coco_large = memory_json
    gtfine = cityscapes(data / "cityscapes", cs_count)
    print("timing ...", flush=True)
    rows = {
        **against_floors(
            "seg_coco",
            Contender(
                "segconvert coco-panoptic -> nucleus",
                coco_count,
                segconvert("coco-to-nucleus", str(coco_main), str(out / "s1")),
                env,
                out / "s1",
            ),
            "min_coco",
            "minimal script coco-panoptic -> nucleus",
            minimal("panoptic-to-nucleus", str(coco_main), str(out / "m0")),
            out / "m0",
        ),
        "seg_coco_1": timed(
            "segconvert coco-panoptic -> nucleus, --jobs 1",
            coco_count,
            segconvert("coco-to-nucleus", str(coco_main), str(out / "s2"), "-j", "1"),
            env,
            output=out / "s2",
        ),
        "dm_coco": timed(
            "Datumaro coco_panoptic -> coco_panoptic",
            coco_count,
            [python, "-c", DATUMARO, str(data / "coco"), "coco_panoptic", str(out / "d1")],
            output=out / "d1",
        ),
        "seg_cs": timed(
            "segconvert cityscapes -> coco-panoptic",
            cs_count,
            convert(gtfine, out / "s3", "cityscapes", "coco-panoptic"),
            env,
            output=out / "s3",
        ),
        "dm_cs": timed(
            "Datumaro cityscapes -> coco_panoptic",
            cs_count,
            [python, "-c", DATUMARO, str(data / "cityscapes"), "cityscapes", str(out / "d2")],
            output=out / "d2",
        ),
        "cs_cs": timed(
            "csCreatePanopticImgs",
            cs_count,
            [
                str(PEERS / "bin" / "csCreatePanopticImgs"),
                "--dataset-folder",
                str(gtfine),
                "--output-folder",
                str(out / "c1"),
                "--set-names",
                "val",
            ],
            output=out / "c1",
        ),
        "seg_small": timed(
            f"segconvert coco-panoptic -> nucleus, {small} images",
            small,
            segconvert("coco-to-nucleus", str(coco_small), str(out / "s4")),
            env,
            output=out / "s4",
        ),
        "seg_large": timed(
            f"segconvert coco-panoptic -> nucleus, {large} images",
            large,
            segconvert("coco-to-nucleus", str(coco_large), str(out / "s5")),
            env,
            output=out / "s5",
        ),
    }
    checks = [
        ("coco-panoptic -> nucleus vs Datumaro", rows["seg_coco"].rate / rows["dm_coco"].rate, 3.0),
        (
            "coco-panoptic -> nucleus vs minimal script",
            rows["seg_coco"].rate / rows["min_coco"].rate,
            0.9,
        ),
        (
            "coco-panoptic -> nucleus vs minimal script with the same malloc settings",
            rows["seg_coco"].rate / rows["min_coco_kept"].rate,
            0.9,
        ),
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
    return rows, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--suite", choices=["all", "panoptic", "rle"], default="all")
    args = parser.parse_args()
    data, out = args.data, args.data / "out"
    if data.exists():
        shutil.rmtree(data)
    python = str(peers_python())
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    rows: dict[str, Timing] = {}
    checks: list[tuple[str, float, float]] = []
    suites = (
        [panoptic_suite, rle_suite]
        if args.suite == "all"
        else [panoptic_suite if args.suite == "panoptic" else rle_suite]
    )
    for suite in suites:
        suite_rows, suite_checks = suite(data, out, python, env, args.quick)
        rows.update(suite_rows)
        checks.extend(suite_checks)
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python benchmarks/run.py`"
        + (" --quick" if args.quick else "")
        + (f" --suite {args.suite}" if args.suite != "all" else "")
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
