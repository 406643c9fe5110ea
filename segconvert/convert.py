"""The conversion pipeline: scan -> load -> write, per item, in-process or in worker processes.

Per-item work (``Importer.load`` then ``Exporter.write_item``) runs in workers when
``jobs > 1``; items are submitted in small chunks with a bounded number in flight, and their
results come back in input order, so memory stays flat and the output is the same for any
``jobs``. The exporter's ``write_dataset`` runs in the parent and consumes the records of the
items that succeeded. Items that fail are recorded in a JSON-lines error report and counted;
they never stop the run unless ``fail_fast`` is set.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import posixpath
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from segconvert import schemas, storage
from segconvert.descriptors import ExportContext, Exporter, Importer, Option
from segconvert.errors import ItemError, OutputError, UsageError
from segconvert.journal import Finished, Journal, check_resumed, has_journal
from segconvert.model import Dataset, ItemRef, RejectedItem, Sample
from segconvert.ownership import check_containment, take_ownership
from segconvert.registry import Registry, build_registry
from segconvert.storage import OutputGuard, atomic_open
from segconvert.transforms import LabelMap, SkipItem, Transform

ERROR_REPORT_NAME = "segconvert-errors.jsonl"
"""File name of the per-item error report, written inside the output folder."""
NOTES_REPORT_NAME = "segconvert-notes.jsonl"
"""File name of the per-item notes (converted items with something to report)."""

CHUNK_SIZE = 4
"""Items per task sent to a worker."""
OK, ERROR, SKIPPED = "ok", "error", "skipped"


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
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0: every item converted; 3: some failed, the rest written; 1: nothing converted."""
        if self.failed == 0:
            return 0
        return 3 if self.converted else 1

    @property
    def items_per_second(self) -> float:
        """Throughput over every item attempted."""
        total = self.converted + self.failed + self.skipped
        return total / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One human-readable line."""
        line = (
            f"{self.from_format} -> {self.to_format}: {self.converted} converted, "
            f"{self.failed} failed"
            + (f", {self.skipped} skipped" if self.skipped else "")
            + f" in {self.seconds:.1f}s ({self.items_per_second:.1f} items/s)"
        )
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
            "exit_code": self.exit_code,
        }


def split_options(
    importer: Importer, exporter: Exporter, options: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one options mapping into the importer's and the exporter's, defaults filled in.

    Keys may be given kebab- or snake-case. A key neither format takes is a usage error.
    """
    given = {k.replace("-", "_"): v for k, v in (options or {}).items() if v is not None}
    known_import = {o.key: o for o in importer.options}
    known_export = {o.key: o for o in exporter.options}
    unknown = sorted(set(given) - set(known_import) - set(known_export))
    if unknown:
        names = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(
            f"option(s) {names} not accepted by importer {importer.name!r} "
            f"or exporter {exporter.name!r}"
        )
    return _with_defaults(known_import, given), _with_defaults(known_export, given)


def _with_defaults(known: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for key, option in known.items():
        value = given.get(key, option.default)
        if option.choices and value is not None and value not in option.choices:
            raise UsageError(
                f"--{option.name} must be one of {', '.join(option.choices)}, not {value!r}"
            )
        values[key] = value
    return values


# ---------------------------------------------------------------- per-item work


@dataclass(frozen=True)
class ItemJob:
    """Everything a worker needs, sent once per worker."""

    loader: Callable[[ItemRef, Any], Sample]
    load_context: Any
    write_item: Callable[[Sample, ExportContext], Any]
    export_context: ExportContext
    transform: Transform = Transform()
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    guard: OutputGuard | None = None
    start_method: str | None = None
    """How worker processes start: ``"spawn"`` when a location is remote (fsspec's async
    clients do not survive a fork); None: the platform's default."""

    def run(self, ref: ItemRef) -> tuple[str, Any, list[dict[str, Any]]]:
        """``("ok", record, notes)``, ``("error", error record, [])`` or
        ``("skipped", None, [note])`` for one item."""
        if storage.current_guard() is not self.guard:  # once per worker process
            storage.configure(self.storage_options)
            storage.guard_output(self.guard)
        if isinstance(ref, FinishedItem):
            return ref.result
        if isinstance(ref, RejectedItem):
            return ERROR, ref.error.to_record(), []
        try:
            sample = self.loader(ref, self.load_context)
            sample.check()
            sample = self.transform.apply(sample)
            record = self.write_item(sample, self.export_context)
            notes = [{"item": sample.reference_id, **note} for note in sample.notes]
            return OK, record, notes
        except SkipItem as skip:
            return SKIPPED, None, [{"item": getattr(ref, "reference_id", None), **skip.note}]
        except ItemError as exc:
            if exc.item is None:
                exc.item = getattr(ref, "reference_id", None)
            return ERROR, exc.to_record(), []
        except OutputError:
            raise  # the output cannot be written (full disk, read-only): the run stops
        except OSError as exc:
            raise OutputError(storage.describe_os_error(exc)) from None
        except Exception as exc:  # a bug in one item must not kill the other 100k
            item = getattr(ref, "reference_id", None)
            message = f"internal error: {type(exc).__name__}: {exc}"
            error = {"item": item, "file": None, "rule": "internal-error", "message": message}
            return ERROR, error, []


@dataclass(frozen=True)
class FinishedItem:
    """An item an interrupted run already finished (``--resume``): its result is reused."""

    result: tuple[str, Any, list[dict[str, Any]]]


def output_name_key(reference_id: str) -> str:
    """The name ``reference_id`` gives its output files, normalised: ``x/a``, ``x/./a`` and
    ``x//a`` are one file."""
    normal = posixpath.normpath(reference_id.replace("\\", "/")) if reference_id else ""
    return normal.lstrip("/")


def unique_references(refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
    """``refs`` with every item whose output name repeats an earlier one's turned into an error.

    Two items with one reference id, or ids that normalise to one path (``x/a``, ``x/./a``,
    ``x//a``), would write the same files: the first one wins. Ids that differ only in case
    are refused too, and said to be so (one file on case-insensitive file systems).
    """
    seen: dict[str, str] = {}
    folded: dict[str, str] = {}
    for ref in refs:
        reference_id = getattr(ref, "reference_id", None)
        if isinstance(reference_id, str):
            key = output_name_key(reference_id)
            earlier = seen.get(key)
            if earlier is None and key.casefold() in folded:
                message = (
                    f"reference id {reference_id!r} differs only in case from the earlier "
                    f"{folded[key.casefold()]!r} (one file on case-insensitive file systems)"
                )
            elif earlier == reference_id:
                message = f"reference id {reference_id!r} is used by an earlier item"
            elif earlier is not None:
                message = f"reference id {reference_id!r} names the same files as {earlier!r}"
            else:
                seen[key] = reference_id
                folded[key.casefold()] = reference_id
                yield ref
                continue
            rule = "duplicate-reference-id" if earlier == reference_id else "duplicate-output-name"
            yield RejectedItem(
                ItemError(message, rule=rule, item=reference_id, file=getattr(ref, "file", None))
            )
            continue
        yield ref


_worker_job: ItemJob | None = None


def _init_worker(job: ItemJob) -> None:
    global _worker_job
    _worker_job = job


def _run_chunk(refs: list[ItemRef]) -> list[tuple[str, Any, list[dict[str, Any]]]]:
    assert _worker_job is not None
    return [_worker_job.run(ref) for ref in refs]


def _chunks(items: Iterable[ItemRef], size: int) -> Iterator[list[ItemRef]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class _Ready:
    """Results already known, queued in order beside the workers' pending ones."""

    results: list[tuple[str, Any, list[dict[str, Any]]]]

    def get(self) -> list[tuple[str, Any, list[dict[str, Any]]]]:
        return self.results


def run_items(
    job: ItemJob, refs: Iterable[ItemRef], jobs: int
) -> Iterator[tuple[str, Any, list[dict[str, Any]]]]:
    """Results of ``job.run`` over ``refs``, in input order, with ``jobs`` processes."""
    if jobs <= 1:
        for ref in refs:
            yield job.run(ref)
        return
    with multiprocessing.get_context(job.start_method).Pool(jobs, _init_worker, (job,)) as pool:
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


# ---------------------------------------------------------------- the whole conversion


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    to_format: str,
    from_format: str | None = None,
    options: Mapping[str, Any] | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    registry: Registry | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    mode: str = "panoptic",
    label_map: str | os.PathLike[str] | LabelMap | None = None,
    on_overflow: str = "error",
    void_label: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ConversionReport:
    """Convert the dataset at ``source`` into ``output`` as ``to_format``.

    Args:
        source: a file or folder the importer understands: a local path or an fsspec URL
            (``s3://bucket/coco/panoptic.json``, ``gs://``, ``az://``, ``memory://``).
        output: the folder to write (local or a URL); must be empty unless ``overwrite``.
        to_format: exporter name, e.g. ``"nucleus"``.
        from_format: importer name; detected from ``source`` when omitted.
        options: format options by name (``{"mask_url_prefix": "s3://b/masks/"}``).
        jobs: worker processes; ``None`` uses every core, ``1`` runs in-process.
        fail_fast: raise the first item error instead of recording it and going on.
        overwrite: write into a non-empty output folder: files an earlier segconvert run wrote
            there are replaced or removed, files segconvert did not write are never touched.
        resume: continue an interrupted conversion into ``output`` (same source and options),
            reusing the items it finished; the result equals an uninterrupted run.
        registry: the formats to use; by default built-ins plus installed plugins.
        progress: called after every item with ``(items done, total or None)``.
        mode: ``"panoptic"``, ``"instance"`` or ``"semantic"`` (see :mod:`segconvert.transforms`).
        label_map: a label map file (or :class:`~segconvert.transforms.LabelMap`) renaming,
            merging and dropping categories; checked against the dataset before any work.
        on_overflow: ``"error"``, ``"semantic"`` or ``"skip"``: what to do with an item that
            has more segments than the target holds (Nucleus: 256).
        void_label: label of the void Segment (default ``"void"``; ``"background"`` in
            instance mode).
        storage_options: fsspec options for URL sources and outputs (``endpoint_url``,
            ``key``, ``anon``...), on top of what the environment and fsspec's config give.

    Returns:
        A :class:`ConversionReport`; its ``exit_code`` says whether every item made it.

    Raises:
        SegconvertError: when nothing can be done (unknown format, unreadable input, ...).
    """
    started = time.perf_counter()
    options_for_storage = dict(storage_options or {})
    previous_options = storage.current_options()
    storage.configure(options_for_storage)
    try:
        return _convert(
            source,
            output,
            to_format=to_format,
            from_format=from_format,
            options=options,
            jobs=jobs,
            fail_fast=fail_fast,
            overwrite=overwrite,
            resume=resume,
            registry=registry,
            progress=progress,
            mode=mode,
            label_map=label_map,
            on_overflow=on_overflow,
            void_label=void_label,
            storage_options=options_for_storage,
            started=started,
        )
    except OSError as exc:
        raise OutputError(storage.describe_os_error(exc, "cannot use")) from None
    finally:
        storage.guard_output(None)
        storage.configure(previous_options)


def _convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    to_format: str,
    from_format: str | None,
    options: Mapping[str, Any] | None,
    jobs: int | None,
    fail_fast: bool,
    overwrite: bool,
    resume: bool,
    registry: Registry | None,
    progress: Callable[[int, int | None], None] | None,
    mode: str,
    label_map: str | os.PathLike[str] | LabelMap | None,
    on_overflow: str,
    void_label: str | None,
    storage_options: dict[str, Any],
    started: float,
) -> ConversionReport:
    source_path, output_path = storage.location(source), storage.location(output)
    registry = registry or build_registry()
    importer = registry.importer(from_format) if from_format else registry.detect(source_path)
    exporter = registry.exporter(to_format)
    import_options, export_options = split_options(importer, exporter, options)
    for descriptor in (importer, exporter):
        missing = descriptor.missing_requirements()
        if missing:
            raise UsageError(f"format {descriptor.name!r} needs {', '.join(missing)} installed")
    if not source_path.exists():
        raise UsageError(f"source {source_path} does not exist")
    check_containment(output_path, source_path)
    return _run(
        source_path,
        output_path,
        importer,
        exporter,
        import_options,
        export_options,
        overwrite=overwrite,
        jobs=jobs,
        fail_fast=fail_fast,
        resume=resume,
        progress=progress,
        mode=mode,
        label_map=label_map,
        on_overflow=on_overflow,
        void_label=void_label,
        storage_options=storage_options,
        started=started,
    )


def _run(
    source_path: Path,
    output_path: Path,
    importer: Importer,
    exporter: Exporter,
    import_options: dict[str, Any],
    export_options: dict[str, Any],
    *,
    overwrite: bool,
    jobs: int | None,
    fail_fast: bool,
    resume: bool,
    progress: Callable[[int, int | None], None] | None,
    mode: str,
    label_map: str | os.PathLike[str] | LabelMap | None,
    on_overflow: str,
    void_label: str | None,
    storage_options: dict[str, Any],
    started: float,
) -> ConversionReport:
    transform = Transform(
        mode=mode,
        on_overflow=on_overflow,
        void_label=void_label,
        max_segments=exporter.max_segments,
    )

    dataset: Dataset = importer.open(source_path, import_options)
    categories = list(dataset.categories)
    if label_map is not None:
        mapping = label_map if isinstance(label_map, LabelMap) else LabelMap.load(label_map)
        categories, category_map = mapping.apply_to(categories)
        transform = dataclasses.replace(transform, category_map=category_map)
    transform = dataclasses.replace(
        transform, things=frozenset(c.id for c in categories if c.isthing)
    )
    params = {
        "source": str(source_path.resolve()),
        "from": importer.name,
        "to": exporter.name,
        "options": {**import_options, **export_options},
        "mode": mode,
        "label_map": str(label_map) if label_map is not None else None,
        "on_overflow": on_overflow,
        "void_label": void_label,
    }
    ownership = take_ownership(
        output_path, source_path, overwrite=overwrite, resume=resume, has_journal=has_journal
    )
    guard = ownership.guard
    storage.guard_output(guard)
    try:
        journal = Journal.open(
            output_path,
            params,
            resume,
            source=source_path,
            record_module=getattr(exporter.write_item, "__module__", None),
        )
        context = ExportContext(
            output=output_path,
            categories=tuple(categories),
            options=export_options,
            metadata=dataset.metadata,
            void_label=transform.effective_void_label,
        )
        if exporter.prepare:
            exporter.prepare(context)
        assert dataset.loader is not None
        job = ItemJob(
            dataset.loader,
            dataset.context,
            exporter.write_item,
            context,
            transform,
            storage_options=storage_options,
            guard=guard,
            start_method="spawn"
            if storage.is_remote(source_path) or storage.is_remote(output_path)
            else None,
        )
        report = ConversionReport(source_path, output_path, importer.name, exporter.name)

        listed: deque[ItemRef] = deque()

        def resumable(refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
            for position, ref in enumerate(refs):
                listed.append(ref)
                finished: Finished | None = journal.previous.get(position)
                if finished is not None:
                    check_resumed(position, ref, finished)
                    yield FinishedItem(finished.result)
                else:
                    yield ref

        def records() -> Iterator[Any]:
            refs = resumable(unique_references(dataset.items))
            for done, (status, result, notes) in enumerate(
                run_items(job, refs, jobs or default_jobs()), 1
            ):
                journal.add(done - 1, (status, result, notes), listed.popleft())
                if progress:
                    progress(done, dataset.size)
                report.notes.extend(notes)
                if status == OK:
                    report.converted += 1
                    yield result
                elif status == SKIPPED:
                    report.skipped += 1
                else:
                    report.failed += 1
                    report.errors.append(result)
                    if fail_fast:
                        raise ItemError(
                            f"{result['item']}: {result['message']} (--fail-fast)",
                            rule=result["rule"],
                            item=result["item"],
                            file=result["file"],
                        )

        try:
            report.files = exporter.write_dataset(records(), context)
        except BaseException:
            journal.close(completed=False)
            raise
        # The reports are final before the run is marked complete, and only then does the
        # journal go: a kill anywhere in between leaves a resumable folder, never one that looks
        # complete with its failures recorded nowhere.
        report.error_report = write_error_report(output_path, report.errors)
        report.notes_report = write_jsonl_report(output_path / NOTES_REPORT_NAME, report.notes)
        ownership.finish(complete=True)
        journal.close(completed=True)
        report.seconds = time.perf_counter() - started
        return report
    finally:
        ownership.release()


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
