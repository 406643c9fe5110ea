"""Where per-item work runs: in this process, or in a pool of worker processes.

Items are submitted in small chunks with a bounded number in flight, and their results come
back in input order, so memory stays flat and the output is the same for any ``jobs``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from segconvert.items import FinishedItem, ItemJob, ItemResult
from segconvert.main_guard import check_main_guard
from segconvert.model import ItemRef

CHUNK_SIZE = 4
"""Items per task sent to a worker."""


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_worker_job: ItemJob | None = None


def _init_worker(job: ItemJob) -> None:
    global _worker_job
    _worker_job = job


def _run_chunk(refs: list[ItemRef]) -> list[ItemResult]:
    assert _worker_job is not None
    return [_worker_job.run(ref) for ref in refs]


def _chunks(items: Iterable[ItemRef], size: int) -> Iterator[list[ItemRef]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class _Ready:
    """Results already known, queued in order beside the workers' pending ones."""

    results: list[ItemResult]

    def get(self) -> list[ItemResult]:
        return self.results


def run_items(
    job: ItemJob, refs: Iterable[ItemRef], jobs: int | None, start_method: str | None = None
) -> Iterator[ItemResult]:
    """Results of ``job.run`` over ``refs``, in input order, with ``jobs`` processes
    (``None``: every core; ``1``: in this process) started by ``start_method`` (``"spawn"``,
    ``"fork"``, ``"forkserver"``; ``None``: the platform's default)."""
    jobs = jobs or default_jobs()
    if jobs <= 1:
        for ref in refs:
            yield job.run(ref)
        return
    check_main_guard(start_method)  # a pool re-running an unguarded script would hang
    with multiprocessing.get_context(start_method).Pool(jobs, _init_worker, (job,)) as pool:
        in_flight: deque[Any] = deque()
        limit = 4 * jobs
        for chunk in _chunks(refs, CHUNK_SIZE):
            if all(isinstance(ref, FinishedItem) for ref in chunk):  # --resume: no worker needed
                in_flight.append(_Ready([ref.result for ref in chunk]))
            else:
                in_flight.append(pool.apply_async(_run_chunk, (chunk,)))
            while len(in_flight) >= limit:
                yield from in_flight.popleft().get()
        while in_flight:
            yield from in_flight.popleft().get()
