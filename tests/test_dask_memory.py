"""Dask workers run segconvert items without glibc's pinned 128 KiB mmap threshold."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from segconvert.dask_memory import TRIM_VARIABLE, WORKER_ENVIRON, untrimmed_local_workers

distributed = pytest.importorskip("distributed")


def start_local_cluster():
    from distributed.deploy.subprocess import SubprocessCluster

    return SubprocessCluster(
        n_workers=1,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )


@pytest.mark.slow
def test_a_local_cluster_started_untrimmed_has_workers_without_the_trim_threshold(monkeypatch):
    monkeypatch.setenv(TRIM_VARIABLE, "65536")  # as an earlier in-process nanny leaves it
    with untrimmed_local_workers():
        cluster = start_local_cluster()
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        assert client.submit(os.getenv, TRIM_VARIABLE, pure=False).result() is None
    default = start_local_cluster()  # Dask's own default, for contrast
    with default, distributed.Client(default, set_as_default=False) as client:
        assert client.submit(os.getenv, TRIM_VARIABLE, pure=False).result() == "65536"


def test_the_environment_is_restored_after_starting_a_local_cluster(monkeypatch):
    name = next(iter(WORKER_ENVIRON))
    monkeypatch.setenv(name, "{'SOMETHING': 1}")
    with untrimmed_local_workers():
        assert os.environ[name] == WORKER_ENVIRON[name]
    assert os.environ[name] == "{'SOMETHING': 1}"


def test_a_trim_threshold_left_in_this_process_is_back_after_the_start(monkeypatch):
    monkeypatch.setenv(TRIM_VARIABLE, "65536")
    with untrimmed_local_workers():
        assert TRIM_VARIABLE not in os.environ
    assert os.environ[TRIM_VARIABLE] == "65536"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize(("trim", "expected"), [("65536", "True False"), (None, "False False")])
def test_a_worker_raises_the_mmap_threshold_once_and_only_where_dask_pinned_it(trim, expected):
    env = {k: v for k, v in os.environ.items() if k != TRIM_VARIABLE}
    if trim is not None:
        env[TRIM_VARIABLE] = trim
    code = "from segconvert.dask_memory import tune_worker_malloc as t; print(t(), t())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == expected


ITEM_FAULTS = """
import resource
import numpy as np
from segconvert.dask_memory import keep_item_memory

def item_faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):  # items of five arrays of 2 MB, freed together at each item's end
        arrays = [np.ones(2_000_000, np.uint8) for _ in range(5)]
        del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

item_faults()
untuned = item_faults()
kept = keep_item_memory()
item_faults()
print(untuned, kept, item_faults(), keep_item_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_worker_reuses_the_pages_an_item_freed_instead_of_faulting_them_in_again():
    env = {k: v for k, v in os.environ.items() if k != TRIM_VARIABLE}
    done = subprocess.run(
        [sys.executable, "-c", ITEM_FAULTS], env=env, capture_output=True, text=True, check=True
    )
    untuned, kept, tuned, again = done.stdout.split()
    assert kept == "True" and again == "False"  # set once per process
    assert int(untuned) > 20 * 1000  # glibc's defaults: the pages of every item come back
    assert int(tuned) < int(untuned) / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_trimming_policy_in_the_environment_is_left_alone():
    env = {**os.environ, TRIM_VARIABLE: "65536"}
    done = subprocess.run(
        [sys.executable, "-c", ITEM_FAULTS], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split()[1] == "False"
