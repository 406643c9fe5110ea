"""The executors: input order at any --jobs, a pool that survives its workers, time limits,
start methods, and no process outliving the run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from executor_jobs import Order, make_job, orders
from processes import children_of, descendants_of, running

from segconvert.errors import UsageError
from segconvert.executors import (
    CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    TASK_SECONDS,
    DaskExecutor,
    InProcess,
    ProcessPool,
    TaskSizer,
    make_executor,
)
from segconvert.items import ItemStatus

OK, ERROR = ItemStatus.OK, ItemStatus.ERROR


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_come_back_in_input_order_for_any_jobs(jobs):
    refs = orders(*(f"ok-{n}" for n in range(101)))
    executor = make_executor("local", jobs=jobs)
    before = children_of(os.getpid())
    results = list(executor.map(make_job(), refs))
    assert [result.record["reference_id"] for result in results] == [r.reference_id for r in refs]
    assert isinstance(executor, InProcess if jobs == 1 else ProcessPool)
    assert children_of(os.getpid()) == before


def test_a_worker_killed_by_an_item_fails_only_that_item_and_names_the_signal():
    refs = orders(*(f"ok-{n}" for n in range(20)))
    refs[9] = Order("kill-9")
    results = list(ProcessPool(2).map(make_job(), refs))
    assert [r.status for r in results].count(OK) == 19
    assert results[9].status is ERROR
    error = results[9].error
    assert error["rule"] == "worker-died"
    assert error["item"] == "kill-9"
    assert "SIGKILL" in error["message"]
    # the culprit's chunk-mates were re-run and converted
    assert [r.record["reference_id"] for r in results if r.status is OK] == [
        f"ok-{n}" for n in range(20) if n != 9
    ]


def test_a_segfaulting_item_is_reported_with_sigsegv_and_the_run_goes_on():
    refs = orders("ok-0", "segv-1", "ok-2", "segv-3", "ok-4", "ok-5")
    results = list(ProcessPool(2, chunk_size=3).map(make_job(), refs))
    assert [r.status for r in results] == [OK, ERROR, OK, ERROR, OK, OK]
    assert "SIGSEGV" in results[1].error["message"]
    assert results[3].error["item"] == "segv-3"


def test_an_item_over_the_time_limit_is_stopped_and_reported():
    refs = orders("ok-0", "sleep-1", "ok-2", "ok-3", "ok-4")
    started = time.monotonic()
    results = list(ProcessPool(2, item_timeout=0.25).map(make_job(), refs))
    assert time.monotonic() - started < 15
    assert [r.status for r in results] == [OK, ERROR, OK, OK, OK]
    assert results[1].error["rule"] == "item-timeout"
    assert "--item-timeout 0.25s" in results[1].error["message"]


def test_a_time_limit_with_one_job_still_runs_in_a_worker_it_can_stop():
    executor = make_executor("local", jobs=1, item_timeout=0.25)
    assert isinstance(executor, ProcessPool)
    results = list(executor.map(make_job(), orders("sleep-0", "ok-1")))
    assert [r.status for r in results] == [ERROR, OK]


def test_a_plugin_bug_is_an_internal_error_of_its_item_only():
    results = list(ProcessPool(2).map(make_job(), orders("ok-0", "raise-1", "ok-2")))
    assert [r.status for r in results] == [OK, ERROR, OK]
    assert results[1].error["rule"] == "internal-error"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_the_pool_survives_its_workers_under_every_start_method(method):
    refs = orders("ok-0", "ok-1", "kill-2", "ok-3", "ok-4", "ok-5")
    results = list(ProcessPool(2, start_method=method).map(make_job(), refs))
    assert [r.status for r in results] == [OK, OK, ERROR, OK, OK, OK]
    assert results[2].error["rule"] == "worker-died"


def test_stopping_early_leaves_no_worker_behind():
    before = children_of(os.getpid())
    results = ProcessPool(2).map(make_job(), (Order(f"ok-{n}") for n in range(1000)))
    assert next(results).status is OK
    assert children_of(os.getpid()) - before
    results.close()
    assert children_of(os.getpid()) == before


def test_the_pool_reads_its_input_lazily():
    taken = 0

    def refs():
        nonlocal taken
        for n in range(10_000):
            taken += 1
            yield Order(f"ok-{n}")

    results = ProcessPool(2).map(make_job(), refs())
    for _ in range(10):
        next(results)
    # at most a window of 4 tasks per worker, each of at most MAX_CHUNK_SIZE items
    assert taken <= 4 * 2 * MAX_CHUNK_SIZE
    results.close()


def test_tasks_grow_for_quick_items_and_shrink_for_slow_ones():
    sizer = TaskSizer()
    assert sizer.size == CHUNK_SIZE
    for _ in range(20):
        sizer.observe(sizer.size, sizer.size * 0.002)  # two milliseconds per item
    assert sizer.size == round(TASK_SECONDS / 0.002)
    for _ in range(20):
        sizer.observe(sizer.size, sizer.size * 0.2)  # SA-1B-sized items
    assert sizer.size == 1
    for _ in range(30):
        sizer.observe(sizer.size, sizer.size * 1e-6)
    assert sizer.size == MAX_CHUNK_SIZE


def test_a_fixed_task_size_stays_and_a_time_limit_keeps_tasks_small():
    fixed = TaskSizer(3, adaptive=False)
    fixed.observe(3, 1e-6)
    assert fixed.size == 3
    limited = ProcessPool(2, item_timeout=5)._sizer()
    for _ in range(30):
        limited.observe(limited.size, 1e-6)
    assert limited.size == CHUNK_SIZE


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_killing_the_parent_does_not_orphan_its_workers(tmp_path, method):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from executor_jobs import make_job, orders
            from segconvert.executors import ProcessPool
            if __name__ == "__main__":
                for result in ProcessPool(2, start_method={method!r}).map(
                    make_job(), orders(*(f"sleep-{{n}}" for n in range(8)))
                ):
                    pass
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 30
        workers: set[int] = set()
        while time.monotonic() < deadline and parent.poll() is None:
            workers = descendants_of(parent.pid)  # forkserver: the fork server's children
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(workers) >= 2
        time.sleep(0.5)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(running(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(running(pid) for pid in workers)
    finally:
        parent.kill()


def test_bad_executor_settings_are_usage_errors():
    with pytest.raises(UsageError, match="--scheduler needs --executor dask"):
        make_executor("local", jobs=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(UsageError, match="must be one of"):
        make_executor("ray")
    with pytest.raises(UsageError, match="--item-timeout"):
        ProcessPool(2, item_timeout=0)
    assert isinstance(make_executor("dask", jobs=2), DaskExecutor)
