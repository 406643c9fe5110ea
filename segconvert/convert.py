"""The conversion pipeline in two stages: :mod:`segconvert.plan` then :mod:`segconvert.run`.

The plan stage resolves formats and options, scans the source and checks everything
dataset-level; nothing is written until it succeeds. The run stage converts the items (in
this process or in workers, see :mod:`segconvert.executors`), journals them for ``--resume``,
feeds the exporter's ``write_dataset`` and writes the reports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping
from typing import Any

from segconvert import storage
from segconvert.errors import OutputError
from segconvert.executors import default_jobs, make_executor
from segconvert.ownership import check_output
from segconvert.plan import ConversionPlan, plan_conversion, split_options
from segconvert.registry import Registry
from segconvert.run import (
    ERROR_REPORT_NAME,
    NOTES_REPORT_NAME,
    ConversionReport,
    Progress,
    dry_run_report,
    run_plan,
    write_error_report,
    write_jsonl_report,
)
from segconvert.subset import Subset
from segconvert.transforms import LabelMap, Mode, OverflowPolicy

__all__ = [
    "ERROR_REPORT_NAME",
    "NOTES_REPORT_NAME",
    "ConversionPlan",
    "ConversionReport",
    "check_output",
    "convert",
    "default_jobs",
    "dry_run_report",
    "plan_conversion",
    "run_plan",
    "split_options",
    "write_error_report",
    "write_jsonl_report",
]


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
    progress: Progress | None = None,
    mode: Mode | str = Mode.PANOPTIC,
    label_map: str | os.PathLike[str] | LabelMap | None = None,
    on_overflow: OverflowPolicy | str = OverflowPolicy.ERROR,
    void_label: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    item_timeout: float | None = None,
    limit: int | None = None,
    items: str | os.PathLike[str] | Collection[str] | None = None,
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> ConversionReport:
    """Convert the dataset at ``source`` into ``output`` as ``to_format``.

    Args:
        source: a file or folder the importer understands: a local path or an fsspec URL
            (``s3://bucket/coco/panoptic.json``, ``gs://``, ``az://``, ``memory://``).
        output: the folder to write (local or a URL); must be empty unless ``overwrite``.
        to_format / from_format: exporter and importer names (the importer is detected from
            ``source`` when omitted).
        options: format options by name (``{"mask_url_prefix": "s3://b/masks/"}``).
        jobs: worker processes; ``None`` uses every core, ``1`` runs in-process.
        fail_fast: raise the first item error instead of recording it and going on.
        overwrite: write into a non-empty output folder: files an earlier segconvert run wrote
            there are replaced or removed, files segconvert did not write are never touched.
        resume: continue an interrupted conversion into ``output`` (same source and options).
        registry: the formats to use; by default built-ins plus installed plugins.
        progress: called after every item with ``(items done, total or None)``.
        mode: a :class:`~segconvert.transforms.Mode` (or its name): panoptic, instance, semantic.
        label_map: a label map file (or :class:`~segconvert.transforms.LabelMap`).
        on_overflow: an :class:`~segconvert.transforms.OverflowPolicy` (or its name) for items
            with more segments than the target holds (Nucleus: 256).
        void_label: label of the void Segment (default ``"void"``; ``"background"`` in
            instance mode).
        executor: where per-item work runs: ``"local"`` (this process or a pool of ``jobs``
            processes) or ``"dask"`` (see :mod:`segconvert.executors`).
        scheduler: with ``"dask"``, the address of a running scheduler (``tcp://HOST:PORT``);
            ``None`` starts a local cluster of ``jobs`` workers.
        item_timeout: seconds one item may take before it is stopped and reported
            (``item-timeout``); ``None`` means no limit.
        limit: convert only the first ``limit`` items (see :mod:`segconvert.subset`).
        items: convert only these reference ids: a file with one per line, or a collection;
            a listed id the source lacks is a failed item (rule ``item-not-found``).
        dry_run: plan and run every dataset-level check, list the items that would be written
            (``report.planned``) and write nothing: ``output`` is not even created.
        storage_options: fsspec options for URL sources and outputs (``endpoint_url``,
            ``key``, ``anon``...), on top of what the environment and fsspec's config give.

    Returns:
        A :class:`ConversionReport`; its ``exit_code`` says whether every item made it.

    Raises:
        SegconvertError: when nothing can be done (unknown format, unreadable input, a bad
            category, ...); nothing is written in that case.
    """
    started = time.perf_counter()
    make_executor(executor, jobs=jobs or 1, scheduler=scheduler, item_timeout=item_timeout)
    previous_options = storage.current_options()
    storage.configure(storage_options)
    try:
        plan = plan_conversion(
            source,
            output,
            to_format=to_format,
            from_format=from_format,
            options=options,
            overwrite=overwrite,
            resume=resume,
            registry=registry,
            mode=mode,
            label_map=label_map,
            on_overflow=on_overflow,
            void_label=void_label,
            subset=Subset.of(limit, items),
            storage_options=storage_options,
        )
        if dry_run:
            return dry_run_report(plan, started)
        return run_plan(
            plan,
            jobs=jobs,
            fail_fast=fail_fast,
            progress=progress,
            started=started,
            executor=executor,
            scheduler=scheduler,
            item_timeout=item_timeout,
        )
    except OSError as exc:  # anything the storage helpers did not already put in words
        raise OutputError(storage.describe_os_error(exc, "cannot use")) from None
    finally:
        storage.guard_output(None)
        storage.configure(previous_options)
