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
