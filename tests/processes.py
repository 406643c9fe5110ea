"""Processes for tests and benchmarks: the process table of tests that kill things (Linux
/proc), loopback ports, stopping servers, and a Dask cluster of separate processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _stat(pid: int | str) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def children_of(pid: int) -> set[int]:
    """Running processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields and int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Every running process below ``pid``."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(children_of(p) for p in frontier)) - found
        found |= children
        frontier = children
    return found


def free_port() -> int:
    """A TCP port nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """Terminate ``processes`` (last started first), then wait for each; kill what lingers."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def dask_cluster(
    workers: int, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` processes on
    127.0.0.1, as a user starts them (``env`` added to the workers' environment, ``cwd`` their
    folder); yields the scheduler's address once every worker has joined, stops them after."""
    import distributed

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
    processes = [subprocess.Popen([*scheduler, "--port", str(port), "--no-dashboard"], **quiet)]
    try:
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host"]
        options = ["127.0.0.1", "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"]
        processes.append(
            subprocess.Popen(
                [*worker, *options], env={**os.environ, **(env or {})}, cwd=cwd, **quiet
            )
        )
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        stop(processes)
