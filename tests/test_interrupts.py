"""The command line under process faults: a worker SIGKILLed mid-run, SIGTERM and Ctrl-C.

Each run converts 400 synthetic COCO panoptic images to Nucleus with two workers; the fault
is injected once the first masks are on disk, from outside, as the kernel or a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import default_spec, segconvert_command, write_coco_panoptic
from processes import children_of, descendants_of, running

pytestmark = pytest.mark.slow

IMAGES = 400
ARGS = ["--to", "nucleus", "--from", "coco-panoptic", "--relative-mask-urls", "--no-progress"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """The source JSON and the bytes of an undisturbed ``--jobs 1`` run."""
    root = tmp_path_factory.mktemp("interrupts")
    specs = []
    for n in range(IMAGES):
        spec = default_spec(f"img{n:04d}", seed=n)
        spec.width, spec.height = 400, 300
        specs.append(spec)
    source = write_coco_panoptic(root / "src", specs)
    reference = root / "reference"
    done = subprocess.run(
        [*segconvert_command(), "convert", str(source), str(reference), *ARGS, "-j", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return source, tree_bytes(reference)


def start(source: Path, out: Path, *extra: str, **popen) -> subprocess.Popen[str]:
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    return subprocess.Popen(
        [*segconvert_command(), "convert", str(source), str(out), *ARGS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


def wait_for_masks(out: Path, process: subprocess.Popen[str], count: int = 40) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        masks = out / "masks"
        if masks.is_dir() and sum(1 for _ in masks.iterdir()) >= count:
            return
        assert process.poll() is None, "the run ended before the fault could be injected"
        time.sleep(0.01)
    raise AssertionError("no progress")


def test_a_worker_sigkilled_mid_run_costs_nothing(tmp_path, dataset):
    source, reference = dataset
    out = tmp_path / "out"
    process = start(source, out, "-j", "2", "--json")
    wait_for_masks(out, process)
    workers = children_of(process.pid)
    assert workers, "no worker to kill"
    os.kill(min(workers), signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode in (0, 3), stderr
    summary = json.loads(stdout)
    assert summary["converted"] + summary["failed"] == IMAGES
    assert "Traceback" not in stderr
    if summary["failed"] == 0:  # the killed worker's items were re-run: nothing lost
        assert tree_bytes(out) == reference
    else:
        errors = [json.loads(line) for line in (out / "segconvert-errors.jsonl").open()]
        assert {e["rule"] for e in errors} == {"worker-died"}


@pytest.mark.parametrize(
    ("signal_number", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_a_signal_ends_the_run_in_one_line_and_resume_finishes_it(
    tmp_path, dataset, signal_number, exit_code
):
    source, reference = dataset
    out = tmp_path / "out"
    # its own process group, as a shell job: Ctrl-C reaches the parent and every worker
    process = start(source, out, "-j", "2", start_new_session=True)
    wait_for_masks(out, process)
    workers = descendants_of(process.pid)
    assert workers
    os.killpg(process.pid, signal_number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    lines = stderr.strip().splitlines()
    name = signal.Signals(signal_number).name
    assert len(lines) == 1, stderr
    assert f"interrupted by {name}" in lines[0] and "--resume" in lines[0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(running(pid) for pid in workers), "a worker outlived the run"

    resumed = start(source, out, "-j", "2", "--resume")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert tree_bytes(out) == reference
