"""The conversion pipeline: scan -> load -> write, per item, on an executor (see executors.py).

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
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segconvert import schemas
from segconvert.descriptors import ExportContext, Exporter, Importer, Option
from segconvert.errors import ItemError, OutputError, UsageError
from segconvert.executors import ERROR as ERROR  # re-exported: formerly defined here
from segconvert.executors import OK, SKIPPED, FinishedItem, ItemJob, make_executor
from segconvert.executors import run_items as run_items
from segconvert.files import TEMPORARY_PREFIX, TEMPORARY_SUFFIX, atomic_open
from segconvert.journal import JOURNAL_NAME, Journal
from segconvert.model import Dataset, ItemRef, RejectedItem
from segconvert.registry import Registry, build_registry
from segconvert.transforms import LabelMap, Transform

ERROR_REPORT_NAME = "segconvert-errors.jsonl"
"""File name of the per-item error report, written inside the output folder."""
NOTES_REPORT_NAME = "segconvert-notes.jsonl"
"""File name of the per-item notes (converted items with something to report)."""


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


def check_output(output: Path, source: Path, overwrite: bool, resume: bool = False) -> None:
    """Refuse a non-empty output folder (unless ``overwrite``, or ``resume`` with a journal)
    or one that is the source."""
    if output.exists() and not output.is_dir():
        raise OutputError(f"output {output} exists and is not a folder")
    resolved = output.resolve()
    source_dir = source.resolve() if source.is_dir() else source.resolve().parent
    if resolved == source_dir:
        raise OutputError(f"output {output} is the source folder; choose another")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        if resume and (output / JOURNAL_NAME).is_file():
            return
        hint = " (and has no interrupted conversion to resume)" if resume else ""
        raise OutputError(
            f"output folder {output} is not empty{hint}; pass --overwrite to write into it"
        )


def remove_stale_temporaries(output: Path) -> None:
    """Delete temporary files a killed run of ours left behind (only names we make)."""
    for path in output.rglob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- per-item work


def unique_references(refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
    """``refs`` with every repeat of an already seen ``reference_id`` turned into an error.

    Two items with one reference id would write the same mask file; the first one wins.
    """
    seen: set[str] = set()
    for ref in refs:
        reference_id = getattr(ref, "reference_id", None)
        if reference_id is not None:
            if reference_id in seen:
                yield RejectedItem(
                    ItemError(
                        f"reference id {reference_id!r} is used by an earlier item",
                        rule="duplicate-reference-id",
                        item=reference_id,
                        file=getattr(ref, "file", None),
                    )
                )
                continue
            seen.add(reference_id)
        yield ref


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
    executor: str = "local",
    scheduler: str | None = None,
    item_timeout: float | None = None,
) -> ConversionReport:
    """Convert the dataset at ``source`` into ``output`` as ``to_format``.

    Args:
        source: a file or folder the importer understands.
        output: the folder to write; must be empty unless ``overwrite``.
        to_format: exporter name, e.g. ``"nucleus"``.
        from_format: importer name; detected from ``source`` when omitted.
        options: format options by name (``{"mask_url_prefix": "s3://b/masks/"}``).
        jobs: worker processes; ``None`` uses every core, ``1`` runs in-process.
        fail_fast: raise the first item error instead of recording it and going on.
        overwrite: write into a non-empty output folder (files segconvert did not write stay).
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
        executor: where per-item work runs: ``"local"`` (this process or a pool of ``jobs``
            processes) or ``"dask"`` (see :mod:`segconvert.executors`).
        scheduler: with ``"dask"``, the address of a running scheduler; ``None`` starts a
            local cluster of ``jobs`` workers.
        item_timeout: seconds one item may take before it is stopped and reported
            (``item-timeout``); ``None`` means no limit.

    Returns:
        A :class:`ConversionReport`; its ``exit_code`` says whether every item made it.

    Raises:
        SegconvertError: when nothing can be done (unknown format, unreadable input, ...).
    """
    started = time.perf_counter()
    source_path, output_path = Path(source), Path(output)
    runner = make_executor(
        executor, jobs=jobs or default_jobs(), scheduler=scheduler, item_timeout=item_timeout
    )
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
    check_output(output_path, source_path, overwrite, resume)
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
    output_path.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_path)
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
    journal = Journal.open(output_path, params, resume)
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
    job = ItemJob(dataset.loader, dataset.context, exporter.write_item, context, transform)
    report = ConversionReport(source_path, output_path, importer.name, exporter.name)

    def resumable(refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
        for position, ref in enumerate(refs):
            finished = journal.previous.get(position)
            yield FinishedItem(finished) if finished else ref

    def records() -> Iterator[Any]:
        refs = resumable(unique_references(dataset.items))
        for done, (status, result, notes) in enumerate(runner.map(job, refs), 1):
            journal.add(done - 1, (status, result, notes))
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
        remove_stale_temporaries(output_path)  # a worker killed mid-write leaves its temporary
    finally:
        completed = sys.exc_info()[0] is None
        journal.close(completed=completed)
    report.error_report = write_error_report(output_path, report.errors)
    report.notes_report = write_jsonl_report(output_path / NOTES_REPORT_NAME, report.notes)
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
        path.unlink(missing_ok=True)
        return None
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path
