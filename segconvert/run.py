"""The run stage: carry out a :class:`~segconvert.plan.ConversionPlan`.

The host drives the records: it runs every item (through :mod:`segconvert.executors`), journals
each result, counts and reports it, and feeds the records of the items that converted to the
exporter's ``write_dataset`` in input order. An exporter that returns without reading every
record is an error (otherwise the run would convert nothing and exit 0). Items that fail are
recorded in a JSON-lines error report and never stop the run unless ``fail_fast`` is set.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segconvert import schemas, storage
from segconvert.blame import blame
from segconvert.errors import ItemError, PluginError
from segconvert.executors import Executor, default_jobs, make_executor
from segconvert.items import FinishedItem, ItemJob, ItemResult, ItemStatus, unique_references
from segconvert.journal import Journal, check_resumed, has_journal
from segconvert.main_guard import check_main_guard
from segconvert.model import ItemRef, RejectedItem, reference_id
from segconvert.ownership import remove_temporaries, take_ownership
from segconvert.plan import ConversionPlan
from segconvert.storage import atomic_open

ERROR_REPORT_NAME = "segconvert-errors.jsonl"
"""File name of the per-item error report, written inside the output folder."""
NOTES_REPORT_NAME = "segconvert-notes.jsonl"
"""File name of the per-item notes (converted items with something to report)."""

Progress = Callable[[int, "int | None"], None]
"""Called after every item with ``(items done, total or None)``."""


@dataclass
class ConversionReport:
    """What a conversion did: counts, failures, files written and time taken."""

    source: Path
    output: Path
    from_format: str
    to_format: str
    converted: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_report: Path | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)
    notes_report: Path | None = None
    warnings: list[str] = field(default_factory=list)
    """Dataset-level notes worth a warning (e.g. invented categories); also in ``notes``."""
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    next_steps: list[str] = field(default_factory=list)
    """What the user should do next (the exporter's ``next_steps``), one line each."""
    dry_run: bool = False
    """True when nothing was written: ``planned`` lists what would have been."""
    planned: list[str] = field(default_factory=list)
    """Dry run: the reference ids of the items that would be written, in order."""

    @property
    def exit_code(self) -> int:
        """0: every item converted; 3: some failed, the rest written (a dry run: would be);
        1: nothing converted."""
        if self.failed == 0:
            return 0
        return 3 if self.converted or self.planned else 1

    @property
    def items_per_second(self) -> float:
        """Throughput over every item attempted."""
        total = self.converted + self.failed + self.skipped
        return total / self.seconds if self.seconds > 0 else 0.0

    def count(self, result: ItemResult) -> None:
        """Add one item's outcome to the counts, errors and notes."""
        self.notes.extend(result.notes)
        if result.status is ItemStatus.OK:
            self.converted += 1
        elif result.status is ItemStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            assert result.error is not None
            self.errors.append(result.error)

    def summary_line(self) -> str:
        """The counts and the time (or, for a dry run, what would be written), in one line."""
        if self.dry_run:
            return (
                f"dry run, {self.from_format} -> {self.to_format}: {len(self.planned)} item(s) "
                f"would be written into {self.output}"
                + (f", {self.failed} would fail" if self.failed else "")
                + "; nothing written"
            )
        return (
            f"{self.from_format} -> {self.to_format}: {self.converted} converted, "
            f"{self.failed} failed"
            + (f", {self.skipped} skipped" if self.skipped else "")
            + f" in {self.seconds:.1f}s ({self.items_per_second:.1f} items/s)"
        )

    def summary(self) -> str:
        """One human-readable line: counts, time and where the reports are."""
        line = self.summary_line()
        if self.dry_run:
            return line
        if self.error_report:
            line += f"; errors in {self.error_report}"
        if self.notes_report:
            line += f"; {len(self.notes)} note(s) in {self.notes_report}"
        return line

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary for scripts."""
        return {
            "source": str(self.source),
            "output": str(self.output),
            "from": self.from_format,
            "to": self.to_format,
            "converted": self.converted,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "items_per_second": round(self.items_per_second, 2),
            "error_report": str(self.error_report) if self.error_report else None,
            "notes": len(self.notes),
            "notes_report": str(self.notes_report) if self.notes_report else None,
            "warnings": self.warnings,
            "errors_by_rule": _count_rules(self.errors),
            "notes_by_rule": _count_rules(self.notes),
            "next_steps": list(self.next_steps),
            "exit_code": self.exit_code,
            "dry_run": self.dry_run,
            **({"planned": self.planned} if self.dry_run else {}),
        }


def _count_rules(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record.get("rule"))] = counts.get(str(record.get("rule")), 0) + 1
    return counts


class RecordFeed:
    """The records of the converted items, in input order, as the exporter reads them.

    Iterating runs the items; :attr:`exhausted` says whether the exporter read to the end.
    """

    def __init__(
        self,
        results: Iterable[ItemResult],
        on_result: Callable[[ItemResult], None],
    ) -> None:
        self._results = results
        self._on_result = on_result
        self.exhausted = False

    def __iter__(self) -> Iterator[Any]:
        for result in self._results:
            self._on_result(result)
            if result.status is ItemStatus.OK:
                yield result.record
        self.exhausted = True


def _resumable(
    refs: Iterable[ItemRef], journal: Journal, listed: deque[ItemRef]
) -> Iterator[ItemRef]:
    """``refs`` with the items an interrupted run finished replaced by their results (each
    checked to be the same item as then); every ref is also queued on ``listed``."""
    for position, ref in enumerate(refs):
        listed.append(ref)
        finished = journal.previous.get(position)
        if finished is None:
            yield ref
        else:
            check_resumed(position, ref, finished)
            yield FinishedItem(finished.result)


def run_plan(
    plan: ConversionPlan,
    *,
    jobs: int | None = None,
    fail_fast: bool = False,
    progress: Progress | None = None,
    started: float | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    item_timeout: float | None = None,
    start_method: str | None = None,
) -> ConversionReport:
    """Run every item of ``plan``, write the aggregate files and the reports.

    Args:
        jobs: worker processes; ``None`` uses every core, ``1`` runs in-process.
        fail_fast: raise the first item error instead of recording it and going on.
        progress: called after every item with ``(items done, total or None)``.
        started: the ``time.perf_counter()`` the conversion began at (default: now), so the
            report's time includes planning.
        executor: ``"local"`` (this process or ``jobs`` worker processes) or ``"dask"``.
        scheduler: with ``"dask"``, a running scheduler's address (default: a local cluster
            of ``jobs`` workers).
        item_timeout: seconds one item may take before it is stopped and reported.
        start_method: how worker processes start (see :func:`segconvert.executors.run_items`).
    """
    started = time.perf_counter() if started is None else started
    jobs = jobs or default_jobs()
    if storage.in_memory(plan.source) or storage.in_memory(plan.output):
        jobs = 1  # a memory:// filesystem lives in this process only
    remote = storage.is_remote(plan.source) or storage.is_remote(plan.output)
    if remote and start_method is None:
        start_method = "spawn"  # fsspec's async clients do not survive a fork
    runner = make_executor(
        executor,
        jobs=jobs,
        scheduler=scheduler,
        item_timeout=item_timeout,
        start_method=start_method,
    )
    if jobs > 1:
        check_main_guard()  # before anything is written
    ownership = take_ownership(
        plan.output,
        plan.source,
        overwrite=plan.overwrite,
        resume=plan.resume,
        has_journal=has_journal,
    )
    storage.guard_output(ownership.guard)
    try:
        return _run_owned(plan, ownership, runner, fail_fast, progress, started)
    finally:
        storage.guard_output(None)
        ownership.release()


def _run_owned(
    plan: ConversionPlan,
    ownership: Any,
    runner: Executor,
    fail_fast: bool,
    progress: Progress | None,
    started: float,
) -> ConversionReport:
    exporter, context, dataset = plan.exporter, plan.context, plan.dataset
    journal = Journal.open(
        plan.output,
        plan.params,
        plan.resume,
        source=plan.source,
        record_module=getattr(exporter.write_item, "__module__", None),
    )
    report = ConversionReport(plan.source, plan.output, plan.importer.name, exporter.name)
    report.notes.extend(dataset.notes)
    report.warnings.extend(note["message"] for note in dataset.notes)
    done = 0
    listed: deque[ItemRef] = deque()

    def on_result(result: ItemResult) -> None:
        nonlocal done
        journal.add(done, result, listed.popleft())
        done += 1
        if progress:
            progress(done, dataset.size if plan.subset.is_everything else None)
        report.count(result)
        if fail_fast and result.status is ItemStatus.ERROR:
            error = result.error or {}
            raise ItemError(
                f"{error.get('item')}: {error.get('message')} (--fail-fast)",
                rule=str(error.get("rule")),
                item=error.get("item"),
                file=error.get("file"),
            )

    try:
        if exporter.prepare:
            with blame(plan.exporter_provider, exporter.name, "prepare"):
                exporter.prepare(context)
        assert dataset.loader is not None
        job = ItemJob(
            dataset.loader,
            dataset.context,
            exporter.write_item,
            context,
            plan.transform,
            storage_options=plan.storage_options,
            guard=ownership.guard,
        )
        refs = _resumable(unique_references(plan.subset.select(dataset.items)), journal, listed)
        feed = RecordFeed(runner.map(job, refs), on_result)
        with blame(plan.exporter_provider, exporter.name, "write_dataset"):
            report.files = list(exporter.write_dataset(feed, context) or [])
        if not feed.exhausted:
            raise PluginError(
                f"{plan.exporter_provider}: write_dataset of format {exporter.name!r} returned "
                f"without reading all its records (only {done} item(s) ran); "
                "an exporter must consume every record it is given"
            )
        remove_temporaries(plan.output)  # a worker killed mid-write leaves its temporary
    except BaseException:
        journal.close(completed=False)
        raise
    # The reports are final before the run is marked complete, and only then does the
    # journal go: a kill anywhere in between leaves a resumable folder, never one that looks
    # complete with its failures recorded nowhere.
    if exporter.next_steps:
        with blame(plan.exporter_provider, exporter.name, "next_steps"):
            report.next_steps = list(exporter.next_steps(context))
    report.error_report = write_error_report(plan.output, report.errors)
    report.notes_report = write_jsonl_report(plan.output / NOTES_REPORT_NAME, report.notes)
    ownership.finish(complete=True)
    journal.close(completed=True)
    report.seconds = time.perf_counter() - started
    return report


def dry_run_report(plan: ConversionPlan, started: float | None = None) -> ConversionReport:
    """What ``plan`` would write, without writing anything (``--dry-run``): the items it would
    convert (``planned``) and those already known to fail (rejected while listing, duplicate
    reference ids, listed but absent). The output folder is not created."""
    started = time.perf_counter() if started is None else started
    report = ConversionReport(plan.source, plan.output, plan.importer.name, plan.exporter.name)
    report.dry_run = True
    for ref in unique_references(plan.subset.select(plan.dataset.items)):
        if isinstance(ref, RejectedItem):
            report.failed += 1
            report.errors.append(ref.error.to_record())
        else:
            report.planned.append(str(reference_id(ref)))
    report.seconds = time.perf_counter() - started
    return report


def write_error_report(output: Path, errors: list[dict[str, Any]]) -> Path | None:
    """Write the JSON-lines error report (validated) if there were errors; return its path."""
    for record in errors:
        schemas.validate(schemas.ERROR_REPORT, record)
    return write_jsonl_report(output / ERROR_REPORT_NAME, errors)


def write_jsonl_report(path: Path, records: list[dict[str, Any]]) -> Path | None:
    """Write ``records`` as JSON lines to ``path`` if there are any; return the path.

    With none, a stale report of an earlier run into the same folder is removed.
    """
    if not records:
        storage.remove(path)
        return None
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path
