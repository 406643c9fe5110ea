"""``segconvert validate``: run an importer's checks over an existing dataset and list problems.

Document-level checks (schemas of the aggregate files) come from the importer's
``check_documents``; every item is then loaded in strict mode when the importer declares
it (lists :data:`~segconvert.descriptors.STRICT` among its options), which applies the checks a
schema cannot express (PNG mode and size, ids in the PNG = ids in the JSON, unique indices,
every pixel value listed, stored area/bbox = pixels).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from segconvert.blame import blame
from segconvert.descriptors import STRICT, ExportContext
from segconvert.errors import SegconvertError, UsageError
from segconvert.executors import run_items
from segconvert.items import ItemJob, ItemStatus, unique_references
from segconvert.model import Sample
from segconvert.plan import format_options
from segconvert.registry import Registry, build_registry
from segconvert.storage import location


def _discard(sample: Sample, ctx: ExportContext) -> None:
    return None


def validate_dataset(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    jobs: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Check the dataset at ``path`` as ``format`` (detected when ``None``) and report every
    problem: a bad line or item never stops the checks of the others.

    Args:
        path: the dataset (file or folder), as for :func:`segconvert.convert`.
        format: importer name; detected from ``path`` when omitted.
        options: the importer's options (``{"png_dir": ..., "categories": ...}``), e.g. to
            validate a bare ``segments_info`` list.
        registry: the formats to use; by default built-ins plus installed plugins.
        jobs: worker processes; ``None`` uses every core.

    Returns:
        ``(items checked, problems)``; each problem is ``{"item", "file", "rule", "message"}``.
    """
    registry = registry or build_registry()
    source = location(path)
    if not source.exists():
        raise UsageError(f"{source} does not exist")
    if format:
        importer = registry.importer(format)
        registry.check_kind(importer, source)
    else:
        importer = registry.detect(source)
    provider = registry.describe_importer_provider(importer.name)
    import_options: dict[str, Any] = format_options(importer, options)
    if importer.reads_strictly:
        import_options[STRICT.key] = True
    problems: list[dict[str, Any]] = []
    if importer.check_documents:
        try:
            with blame(provider, importer.name, "check_documents"):
                problems.extend(
                    e.to_record() for e in importer.check_documents(source, import_options)
                )
        except SegconvertError as exc:  # a plugin's fault too: one line naming it
            problems.append(_unreadable(exc))
    try:
        with blame(provider, importer.name, "scan"):
            dataset = importer.open(source, import_options)
    except SegconvertError as exc:
        problems.append(_unreadable(exc))
        return 0, problems
    assert dataset.loader is not None
    context = ExportContext(output=source, categories=tuple(dataset.categories))
    job = ItemJob(dataset.loader, dataset.context, _discard, context)
    checked = 0
    try:
        for result in run_items(job, unique_references(dataset.items), jobs):
            checked += 1
            if result.status is ItemStatus.ERROR and result.error is not None:
                problems.append(result.error)
    except SegconvertError as exc:  # the listing itself broke off: report it, keep the rest
        problems.append(_unreadable(exc))
    return checked, problems


def _unreadable(exc: SegconvertError) -> dict[str, Any]:
    return {
        "item": getattr(exc, "item", None),
        "file": getattr(exc, "file", None),
        "rule": getattr(exc, "rule", None) or "unreadable",
        "message": str(exc),
    }
