"""``--executor dask``: a real scheduler and workers on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import default_spec, read_jsonl, run_cli, write_coco_panoptic
from processes import dask_cluster, free_port

from segconvert import SegconvertError, convert

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow

IMAGES = 60
ARGS = ["--from", "coco-panoptic", "--to", "nucleus", "--relative-mask-urls", "--no-progress"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """60 images, two of them broken (a missing PNG, a PNG of the wrong size)."""
    root = tmp_path_factory.mktemp("dask")
    specs = [default_spec(f"img{n:03d}", seed=n) for n in range(IMAGES)]
    path = write_coco_panoptic(root / "src", specs, skip_png={"img007"})
    document = json.loads(path.read_text())
    document["images"][33]["height"] += 1
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("reference") / "out"
    done = run_cli("convert", str(source), str(out), *ARGS, "-j", "1")
    assert done.returncode == 3, done.stderr
    return tree_bytes(out)


@pytest.fixture(scope="module")
def scheduler():
    """``dask scheduler`` and ``dask worker`` (2 processes) on loopback, as a user runs them."""
    with dask_cluster(2, cwd=Path(__file__).parent) as address:
        yield address


def test_output_on_a_running_scheduler_is_byte_identical_to_one_job(
    tmp_path, source, reference, scheduler
):
    out = tmp_path / "out"
    done = run_cli(
        "convert", str(source), str(out), *ARGS, "--executor", "dask", "--scheduler", scheduler
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert tree_bytes(out) == reference  # masks, annotations, and the error report
    rules = {e["item"]: e["rule"] for e in read_jsonl(out / "segconvert-errors.jsonl")}
    assert rules == {"img007": "png-missing", "img033": "mask-size"}


def test_a_local_cluster_of_jobs_workers_is_started_and_stopped(tmp_path, source, reference):
    out = tmp_path / "out"
    done = run_cli("convert", str(source), str(out), *ARGS, "--executor", "dask", "-j", "2")
    assert done.returncode == 3, done.stderr
    assert tree_bytes(out) == reference


def test_a_dask_worker_killed_mid_run_costs_only_a_retry(tmp_path, registry):
    # images large enough (~10 ms each) that the killed worker has a batch in hand
    specs = [default_spec(f"img{n:03d}", seed=n) for n in range(200)]
    for spec in specs:
        spec.width, spec.height = 400, 300
    source = write_coco_panoptic(tmp_path / "src", specs, skip_png={"img007"})
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one(done: int, total: int | None) -> None:
            if done == 40 and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        report = convert(
            source,
            tmp_path / "out",
            from_format="coco-panoptic",
            to_format="nucleus",
            options={"relative_mask_urls": True},
            registry=registry,
            executor="dask",
            scheduler=cluster.scheduler_address,
            progress=kill_one,
        )
    assert killed
    assert report.converted + report.failed == 200
    assert [(e["item"], e["rule"]) for e in report.errors] == [("img007", "png-missing")]
    masks = sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir())
    assert masks == [f"img{n:03d}" for n in range(200) if n != 7]


def test_without_distributed_dask_is_a_one_line_error_naming_the_extra(tmp_path, source):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('not installed')\n")
    done = run_cli(
        "convert",
        str(source),
        str(tmp_path / "out"),
        *ARGS,
        "--executor",
        "dask",
        env={"PYTHONPATH": str(blocker)},
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "segconvert: error: --executor dask needs the dask extra: pip install 'segconvert[dask]'"
    ]
    assert not (tmp_path / "out").exists()


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path, source):
    started = time.monotonic()
    done = run_cli(
        "convert",
        str(source),
        str(tmp_path / "out"),
        *ARGS,
        "--executor",
        "dask",
        "--scheduler",
        f"tcp://127.0.0.1:{free_port()}",
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0]
    assert time.monotonic() - started < 60


def test_resume_on_dask_finishes_an_interrupted_run_to_the_same_bytes(
    tmp_path, source, reference, registry
):
    out = tmp_path / "out"
    how = {
        "from_format": "coco-panoptic",
        "to_format": "nucleus",
        "options": {"relative_mask_urls": True},
        "registry": registry,
    }
    with pytest.raises(SegconvertError):  # stops at the first bad item, journal kept
        convert(source, out, jobs=1, fail_fast=True, **how)
    assert (out / ".segconvert-journal.jsonl").is_file()
    report = convert(source, out, resume=True, executor="dask", jobs=2, **how)
    assert report.converted == IMAGES - 2
    assert tree_bytes(out) == reference


def item_names(results) -> list[str]:
    return [r.record["reference_id"] if r.record else r.error["item"] for r in results]


def test_a_stream_longer_than_the_window_comes_back_whole_and_in_order(scheduler):
    from executor_jobs import Order, make_job

    from segconvert import reject
    from segconvert.executors import DaskExecutor

    # Batches rejected while listing (or finished before a --resume) are done in the parent
    # at once, so a whole window can be done before the next batch is read: the stream must
    # go on, not stop there.
    refs = [
        Order(f"ok-{n}") if n < 20 or n >= 600 else reject(f"bad-{n}", "schema", "bad")
        for n in range(650)
    ]
    results = list(DaskExecutor(scheduler, batch_size=16).map(make_job(), refs))
    assert item_names(results) == [ref.reference_id for ref in refs]


def test_the_dask_executor_reads_its_input_lazily_and_keeps_a_bounded_window(scheduler):
    from executor_jobs import Order, make_job

    from segconvert.executors import DaskExecutor

    taken = 0

    def refs():
        nonlocal taken
        for n in range(100_000):
            taken += 1
            yield Order(f"ok-{n}")

    results = DaskExecutor(scheduler, batch_size=4).map(make_job(), refs())
    first = [next(results) for _ in range(40)]
    assert item_names(first) == [f"ok-{n}" for n in range(40)]
    assert taken <= 40 + 4 * 2 * 4 + 4  # what was yielded, a window of 4 batches per thread
    results.close()
