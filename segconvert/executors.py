"""Where per-item work runs: in this process, a local process pool, or a Dask cluster.

Every executor has one method, :meth:`Executor.map`: the results of ``job.run`` over a lazy
stream of references, **in input order**, with a bounded number of items in flight (memory
stays flat at any dataset size and the output is the same for any executor and any
``--jobs``).

The local pool (:class:`ProcessPool`) survives its workers. Each worker holds one chunk at a
time, so the parent always knows which items a worker had when it died (segfault, SIGKILL,
OOM kill) or overran the per-item time limit: those items are re-run one by one in fresh
workers, and the one that kills its worker again is reported with rule ``worker-died`` (naming
the signal) or ``item-timeout``; every other item converts and the run goes on. Workers
ignore SIGINT (the parent alone answers Ctrl-C), die with their parent (``PR_SET_PDEATHSIG``
on Linux, and a watcher thread everywhere) and are terminated when :meth:`map` ends, however
it ends. This works under the ``fork``, ``spawn`` and ``forkserver`` start methods.

:class:`DaskExecutor` sends batches of items to a ``distributed`` cluster (an existing one,
``tcp://HOST:PORT``, or a local one started and stopped here); Dask re-runs the tasks of a lost
worker, and a batch Dask gives up on is retried item by item like the pool does.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.connection import Connection, wait
from typing import Any

from segconvert.dask_memory import keep_item_memory, tune_worker_malloc, untrimmed_local_workers
from segconvert.errors import UsageError
from segconvert.items import FinishedItem, ItemJob, ItemResult
from segconvert.main_guard import check_main_guard
from segconvert.model import ItemRef, RejectedItem, reference_file, reference_id

CHUNK_SIZE = 4
"""Items per task sent to a local worker at the start of a run, and at most with a time limit."""
MAX_CHUNK_SIZE = 64
"""The most items one task of the local pool carries."""
TASK_SECONDS = 0.05
"""How long a task of the local pool should take: long enough that sending it and its results
costs little next to the work, short enough that the last tasks end together."""
DASK_BATCH_SIZE = 16
"""Items per Dask task: a task costs about 8 ms of scheduling, so items travel in batches."""
EXECUTORS = ("local", "dask")
"""Names accepted by ``--executor``."""
DASK_EXTRA_HINT = "pip install 'segconvert[dask]'"
DASK_MESSAGE_LOG = "distributed.admin.low-level-log-length"
"""Dask's setting for how many recent messages each connection keeps (set to 0 in the parent)."""


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGINT or SIGTERM); the output is resumable.

    A ``BaseException`` (like ``KeyboardInterrupt``) so no ``except Exception`` swallows it,
    but its own class so the CLI can tell which signal it was.
    """

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        """``"SIGINT"`` or ``"SIGTERM"``."""
        return signal.Signals(self.signal_number).name


def item_failure(ref: ItemRef, rule: str, message: str) -> ItemResult:
    """The result of an item that failed outside the formats' own checks (its worker died,
    it ran out of time, its result could not travel back)."""
    error = {"item": reference_id(ref), "file": reference_file(ref), "rule": rule}
    return ItemResult.failed({**error, "message": message})


def run_many(job: ItemJob, refs: list[ItemRef]) -> list[ItemResult]:
    """``job.run`` over a batch, in order (what a worker or a Dask task does)."""
    return [job.run(ref) for ref in refs]


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _runs_in_parent(ref: ItemRef) -> bool:
    """Whether the result of ``ref`` is known without loading anything."""
    return isinstance(ref, (FinishedItem, RejectedItem))


def chunks(items: Iterable[ItemRef], size: int) -> Iterator[list[ItemRef]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# ---------------------------------------------------------------- the interface


class Executor:
    """Runs :meth:`ItemJob.run` over references; subclasses decide where."""

    name = "abstract"

    def map(self, job: ItemJob, refs: Iterable[ItemRef]) -> Iterator[ItemResult]:
        """The result of every reference, in input order, produced lazily."""
        raise NotImplementedError


class InProcess(Executor):
    """Every item in this process, one after the other (``--jobs 1``)."""

    name = "in-process"

    def map(self, job: ItemJob, refs: Iterable[ItemRef]) -> Iterator[ItemResult]:
        """See :meth:`Executor.map`."""
        for ref in refs:
            yield job.run(ref)


# ---------------------------------------------------------------- the local process pool


@dataclass
class TaskSizer:
    """How many items the next task of the local pool carries.

    Items of 640x480 take a few milliseconds each, SA-1B's or Cityscapes' tens: a fixed task
    size either pays a round trip through the parent every few milliseconds or leaves one
    worker with the last big task. So the size follows the work: each finished task's seconds
    per item (a moving average) give tasks of about :data:`TASK_SECONDS`, between 1 and
    ``largest`` items. A fixed size (``adaptive=False``) stays as it is.
    """

    size: int = CHUNK_SIZE
    adaptive: bool = True
    largest: int = MAX_CHUNK_SIZE
    seconds_per_item: float | None = None

    def observe(self, items: int, seconds: float) -> None:
        """A task of ``items`` items came back ``seconds`` after it was sent."""
        if not self.adaptive or items <= 0:
            return
        measured = max(seconds, 1e-6) / items
        previous = self.seconds_per_item
        self.seconds_per_item = measured if previous is None else 0.7 * previous + 0.3 * measured
        self.size = max(1, min(self.largest, round(TASK_SECONDS / self.seconds_per_item)))


@dataclass
class _Slot:
    """One chunk's place in the output order; filled as its results arrive."""

    results: list[ItemResult | None]

    @property
    def done(self) -> bool:
        return all(result is not None for result in self.results)


@dataclass
class _Task:
    """Some items of a slot sent to one worker."""

    slot: _Slot
    offsets: list[int]
    refs: list[ItemRef]
    deadline: float | None = None
    sent: float = 0.0
    """``time.monotonic()`` when it went to its worker."""

    def split(self) -> list[_Task]:
        return [_Task(self.slot, [o], [r]) for o, r in zip(self.offsets, self.refs, strict=True)]

    def fail(self, rule: str, message: str) -> None:
        for offset, ref in zip(self.offsets, self.refs, strict=True):
            self.slot.results[offset] = item_failure(ref, rule, message)


@dataclass
class _Worker:
    process: Any
    connection: Connection
    task: _Task | None = None
    finished_tasks: int = field(default=0)


class ProcessPool(Executor):
    """A local pool of ``jobs`` worker processes that survives its workers.

    Args:
        jobs: worker processes.
        item_timeout: seconds an item may take before its worker is killed and the item
            reported with rule ``item-timeout`` (``None``: no limit).
        start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; ``None`` takes the
            platform's default (or ``SEGCONVERT_START_METHOD``).
        chunk_size: items per task; ``None`` sizes tasks to the work (see :class:`TaskSizer`;
            with ``item_timeout``, at most :data:`CHUNK_SIZE` items, so a stuck item is
            found soon).
    """

    name = "process-pool"

    def __init__(
        self,
        jobs: int,
        *,
        item_timeout: float | None = None,
        start_method: str | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if item_timeout is not None and item_timeout <= 0:
            raise UsageError("--item-timeout must be a positive number of seconds")
        self.jobs = jobs
        self.item_timeout = item_timeout
        self.start_method = start_method or os.environ.get("SEGCONVERT_START_METHOD") or None
        self.chunk_size = chunk_size

    def map(self, job: ItemJob, refs: Iterable[ItemRef]) -> Iterator[ItemResult]:
        """See :meth:`Executor.map`."""
        check_main_guard(self.start_method)  # a pool re-running an unguarded script would hang
        context = multiprocessing.get_context(self.start_method)
        workers: list[_Worker] = []
        window = 4 * self.jobs
        pending: deque[_Slot] = deque()
        queued: deque[_Task] = deque()
        sizer = self._sizer()
        source = iter(refs)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window:
                    chunk = list(islice(source, sizer.size))
                    if not chunk:
                        exhausted = True
                        break
                    pending.append(self._admit(job, chunk, queued))
                self._assign(context, job, workers, queued)
                while pending and pending[0].done:
                    for result in pending.popleft().results:
                        assert result is not None
                        yield result
                if not pending and exhausted:
                    return
                if any(w.task is not None for w in workers):
                    self._collect(workers, queued, sizer)
        finally:
            _stop(workers)

    def _sizer(self) -> TaskSizer:
        if self.chunk_size is not None:
            return TaskSizer(self.chunk_size, adaptive=False)
        largest = CHUNK_SIZE if self.item_timeout is not None else MAX_CHUNK_SIZE
        return TaskSizer(CHUNK_SIZE, largest=largest)

    def _admit(self, job: ItemJob, chunk: list[ItemRef], queued: deque[_Task]) -> _Slot:
        slot = _Slot([None] * len(chunk))
        offsets, work = [], []
        for offset, ref in enumerate(chunk):
            if _runs_in_parent(ref):
                slot.results[offset] = job.run(ref)
            else:
                offsets.append(offset)
                work.append(ref)
        if work:
            queued.append(_Task(slot, offsets, work))
        return slot

    def _assign(
        self, context: Any, job: ItemJob, workers: list[_Worker], queued: deque[_Task]
    ) -> None:
        while queued:
            idle = next((w for w in workers if w.task is None), None)
            if idle is None and len(workers) < self.jobs:
                idle = _start_worker(context, job)
                workers.append(idle)
            if idle is None:
                return
            task = queued.popleft()
            task.sent = time.monotonic()
            if self.item_timeout is not None:
                task.deadline = task.sent + self.item_timeout * len(task.refs)
            try:
                idle.connection.send(task.refs)
            except OSError:  # the worker is gone: forget it, a new one takes the task
                queued.appendleft(task)
                _discard(workers, idle)
                continue
            except Exception as exc:  # a reference that does not pickle
                task.fail("internal-error", f"internal error: item cannot be sent: {exc}")
                continue
            idle.task = task

    def _collect(self, workers: list[_Worker], queued: deque[_Task], sizer: TaskSizer) -> None:
        busy = [w for w in workers if w.task is not None]
        deadlines = [w.task.deadline for w in busy if w.task and w.task.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        by_handle: dict[Any, _Worker] = {}
        for worker in busy:
            by_handle[worker.connection] = worker
            by_handle[worker.process.sentinel] = worker
        ready = wait(list(by_handle), timeout)
        handled: set[int] = set()
        for handle in ready:
            worker = by_handle[handle]
            if id(worker) in handled:
                continue
            handled.add(id(worker))
            self._receive(worker, workers, queued, sizer)
        now = time.monotonic()
        for worker in busy:
            task = worker.task
            if id(worker) in handled or task is None or task.deadline is None:
                continue
            if now >= task.deadline:
                _discard(workers, worker)
                self._retry(task, queued, "item-timeout", self._timeout_message())

    def _receive(
        self, worker: _Worker, workers: list[_Worker], queued: deque[_Task], sizer: TaskSizer
    ) -> None:
        task = worker.task
        assert task is not None
        try:
            if worker.connection.poll():
                results = worker.connection.recv()
                for offset, result in zip(task.offsets, results, strict=True):
                    task.slot.results[offset] = result
                worker.task = None
                if worker.finished_tasks:  # a worker's first task includes its start-up
                    sizer.observe(len(task.refs), time.monotonic() - task.sent)
                worker.finished_tasks += 1
                return
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        _discard(workers, worker)
        self._retry(task, queued, "worker-died", _death_message(worker.process))

    def _retry(self, task: _Task, queued: deque[_Task], rule: str, message: str) -> None:
        """Re-run a lost task's items one by one, or report the single item it was."""
        if len(task.refs) == 1:
            task.fail(rule, message)
        else:
            queued.extendleft(reversed(task.split()))

    def _timeout_message(self) -> str:
        limit = f"--item-timeout {self.item_timeout:g}s"
        return f"the item took longer than {limit}; its worker was stopped"


def _start_worker(context: Any, job: ItemJob) -> _Worker:
    parent_end, child_end = context.Pipe(duplex=True)
    process = context.Process(
        target=_worker_main,
        args=(child_end, job, os.getpid()),
        name="segconvert-worker",
        daemon=True,
    )
    process.start()
    child_end.close()
    return _Worker(process, parent_end)


def _death_message(process: Any) -> str:
    process.join(timeout=1.0)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker converting this item died with {name} (signal {-code})"
    return f"the worker converting this item exited unexpectedly (exit code {code})"


def _discard(workers: list[_Worker], worker: _Worker) -> None:
    """Kill and forget one worker (a new one replaces it when there is work)."""
    workers.remove(worker)
    _kill(worker)


def _kill(worker: _Worker) -> None:
    with contextlib.suppress(OSError, ValueError):
        worker.connection.close()
    if worker.process.is_alive():
        with contextlib.suppress(OSError, ValueError):
            worker.process.kill()
    with contextlib.suppress(OSError, ValueError, AssertionError):
        worker.process.join(timeout=5.0)


def _stop(workers: list[_Worker]) -> None:
    """End every worker: ask idle ones to leave, kill busy ones, reap all."""
    for worker in workers:
        if worker.task is None:
            with contextlib.suppress(OSError, ValueError):
                worker.connection.send(None)
        else:
            with contextlib.suppress(OSError, ValueError):
                worker.process.terminate()
    deadline = time.monotonic() + 2.0
    for worker in workers:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        _kill(worker)
    workers.clear()


# ---------------------------------------------------------------- inside a worker


def _worker_main(connection: Connection, job: ItemJob, parent_pid: int) -> None:
    """A worker's life: run the chunks it is sent until told to stop or its parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to answer
    faulthandler.disable()  # a crash is reported by the parent, item by item
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid)
    keep_item_memory()  # a worker lives for one conversion: freed arrays serve the next item
    try:
        while True:
            refs = connection.recv()
            if refs is None:
                break
            results = run_many(job, refs)
            try:
                payload = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                message = f"internal error: the result cannot be sent back: {_describe(exc)}"
                payload = pickle.dumps(
                    [item_failure(ref, "internal-error", message) for ref in refs]
                )
            connection.send_bytes(payload)
    except (EOFError, OSError, KeyboardInterrupt, Interrupted):
        pass  # the parent went away or is stopping us: leave quietly
    finally:
        with contextlib.suppress(OSError):
            connection.close()
    sys.stdout.flush()
    os._exit(0)


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when the process ``parent_pid`` (its creator) ends.

    On Linux the kernel sends SIGKILL when the parent exits (``PR_SET_PDEATHSIG``); a daemon
    thread also checks every half second that the parent is still there (every platform,
    and the ``forkserver`` case where the kernel's parent is the fork server).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if not _alive(parent_pid):
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if not _alive(parent_pid):
                os._exit(1)

    threading.Thread(target=watch, name="segconvert-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc: os.kill said it exists


# ---------------------------------------------------------------- Dask


def _dask_run_batch(job: ItemJob, refs: list[ItemRef]) -> list[ItemResult]:
    tune_worker_malloc()  # once per worker process (see segconvert.dask_memory)
    keep_item_memory()
    return run_many(job, refs)


def _dask_identity(job: ItemJob) -> ItemJob:
    return job


class DaskExecutor(Executor):
    """Items in batches on a ``distributed`` cluster.

    Args:
        scheduler: address of a running scheduler (``tcp://HOST:PORT``); ``None`` starts a
            local cluster of ``workers`` single-threaded worker processes on 127.0.0.1 and
            stops it at the end.
        workers: local workers to start when no scheduler is given.
        batch_size: items per task.
    """

    name = "dask"

    def __init__(
        self, scheduler: str | None = None, *, workers: int = 1, batch_size: int = DASK_BATCH_SIZE
    ) -> None:
        self.scheduler = scheduler
        self.workers = max(1, workers)
        self.batch_size = batch_size

    def map(self, job: ItemJob, refs: Iterable[ItemRef]) -> Iterator[ItemResult]:
        """See :meth:`Executor.map`.

        At most ``window`` batches (4 per worker thread) are between the reference stream and
        the caller: submitted, running, or done and waiting for an earlier batch. A batch's
        future is released as soon as it completes (its results kept until their turn), so the
        parent holds nothing per item beyond the window.
        """
        distributed = import_distributed()
        import dask

        with contextlib.ExitStack() as stack:
            # The client keeps its last messages (the batches it sent) for debugging: keep none.
            stack.enter_context(dask.config.set({DASK_MESSAGE_LOG: 0}))
            client = stack.enter_context(self._client(distributed))
            # The job travels once per worker as the result of a task (not scattered data),
            # so the scheduler can recompute it if every worker holding it is lost.
            job_future = client.submit(_dask_identity, job, pure=False)
            threads = sum(client.nthreads().values()) or self.workers
            window = max(2, 4 * threads)
            completed = distributed.as_completed(loop=client.loop)
            slots: deque[_Batch] = deque()
            running: dict[str, _Batch] = {}
            source = chunks(refs, self.batch_size)
            exhausted = False
            while True:
                while not exhausted and len(slots) < window:
                    batch = next(source, None)
                    if batch is None:
                        exhausted = True
                        break
                    slot = self._submit(client, job, job_future, batch)
                    slots.append(slot)
                    if slot.future is not None:
                        running[slot.future.key] = slot
                        completed.add(slot.future)
                while slots and slots[0].results is not None:
                    yield from slots.popleft().results or ()
                if not running:
                    if exhausted and not slots:
                        break
                    continue
                done = next(completed)
                slot = running.pop(done.key)
                slot.results = self._gather(client, job, job_future, slot)
            job_future.release()

    @contextlib.contextmanager
    def _client(self, distributed: Any) -> Iterator[Any]:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        if self.scheduler:
            try:
                client = distributed.Client(self.scheduler, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise UsageError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {exc}"
                ) from None
            with client:
                yield client
            return
        settings: dict[str, Any] = {
            "n_workers": self.workers,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "silence_logs": logging.ERROR,
        }
        with untrimmed_local_workers():
            try:  # the scheduler in its own process: the parent stays a small client
                from distributed.deploy.subprocess import SubprocessCluster

                cluster = SubprocessCluster(**settings)
            except (ImportError, RuntimeError):  # older distributed, or Windows
                cluster = distributed.LocalCluster(processes=True, **settings)
        with cluster, distributed.Client(cluster, set_as_default=False) as client:
            yield client

    def _submit(self, client: Any, job: ItemJob, job_future: Any, batch: list[ItemRef]) -> _Batch:
        if all(_runs_in_parent(ref) for ref in batch):
            return _Batch(batch, results=run_many(job, batch))
        return _Batch(batch, client.submit(_dask_run_batch, job_future, batch, pure=False))

    def _gather(self, client: Any, job: ItemJob, job_future: Any, slot: _Batch) -> list[ItemResult]:
        """The results of a submitted batch (waiting for it); its future is released."""
        if slot.results is not None:
            return slot.results
        distributed = import_distributed()
        future, batch = slot.future, slot.refs
        try:
            results: list[ItemResult] = future.result()
            return results
        except distributed.KilledWorker as exc:
            if len(batch) == 1:
                message = f"the Dask workers running this item died ({exc})"
                return [item_failure(batch[0], "worker-died", message)]
            singles = [self._submit(client, job, job_future, [ref]) for ref in batch]
            return [r for single in singles for r in self._gather(client, job, job_future, single)]
        except Exception as exc:  # the task itself broke (e.g. cannot unpickle a reference)
            message = f"internal error on the Dask worker: {_describe(exc)}"
            return [item_failure(ref, "internal-error", message) for ref in batch]
        finally:
            future.release()
            slot.future = None


@dataclass
class _Batch:
    """One batch's place in the output order: its references, its future while it runs,
    its results once known."""

    refs: list[ItemRef]
    future: Any = None
    results: list[ItemResult] | None = None


def import_distributed() -> Any:
    """The ``distributed`` module, or a one-line :class:`UsageError` naming the extra."""
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--executor dask needs the dask extra: {DASK_EXTRA_HINT}") from None
    return distributed


# ---------------------------------------------------------------- choosing one


def make_executor(
    name: str = "local",
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    item_timeout: float | None = None,
    start_method: str | None = None,
) -> Executor:
    """The executor for ``--executor NAME`` with ``--jobs``, ``--scheduler``, ``--item-timeout``.

    ``local`` runs in-process with one job and no time limit, else a :class:`ProcessPool`
    (a time limit needs a process to stop). ``dask`` joins ``scheduler`` or starts ``jobs``
    local workers.
    """
    if name not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
    if name == "dask":
        if item_timeout is not None:
            raise UsageError("--item-timeout is not supported with --executor dask")
        import_distributed()
        return DaskExecutor(scheduler, workers=jobs)
    if scheduler is not None:
        raise UsageError("--scheduler needs --executor dask")
    if jobs <= 1 and item_timeout is None:
        return InProcess()
    return ProcessPool(jobs, item_timeout=item_timeout, start_method=start_method)


def run_items(
    job: ItemJob, refs: Iterable[ItemRef], jobs: int | None, start_method: str | None = None
) -> Iterator[ItemResult]:
    """Results of ``job.run`` over ``refs``, in input order, with ``jobs`` local processes
    (``None``: every core; ``1``: in this process) started by ``start_method`` (``"spawn"``,
    ``"fork"``, ``"forkserver"``; ``None``: the platform's default)."""
    return make_executor("local", jobs=jobs or default_jobs(), start_method=start_method).map(
        job, refs
    )


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (and SIGINT) raise :class:`Interrupted` in the main thread.

    The pipeline's ``finally`` clauses then stop the workers and keep the journal, so the
    caller can say "interrupted; rerun with --resume" in one line.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(number: int, frame: Any) -> None:
        raise Interrupted(number)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
