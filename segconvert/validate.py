"""``segconvert validate``: run an importer's checks over an existing dataset and list problems.

Document-level checks (schemas of the aggregate files) come from the importer's
``check_documents``; every item is then loaded in strict mode, which applies the checks a
schema cannot express (PNG mode and size, ids in the PNG = ids in the JSON, unique indices,
every pixel value listed, stored area/bbox = pixels).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from segconvert.descriptors import ExportContext
from segconvert.errors import SegconvertError
from segconvert.executors import run_items
from segconvert.items import ItemJob, ItemStatus, unique_references
from segconvert.model import Sample
from segconvert.registry import Registry, build_registry


def _discard(sample: Sample, ctx: ExportContext) -> None:
    return None


def validate_dataset(
    path: str | os.PathLike[str],
    format: str,
    *,
    registry: Registry | None = None,
    jobs: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Check the dataset at ``path`` as ``format``.

    Returns:
        ``(items checked, problems)``; each problem is ``{"item", "file", "rule", "message"}``.
    """
    registry = registry or build_registry()
    importer = registry.importer(format)
    source = Path(path)
    problems: list[dict[str, Any]] = []
    if importer.check_documents:
        problems.extend(e.to_record() for e in importer.check_documents(source, {}))
    options: dict[str, Any] = {o.key: o.default for o in importer.options}
    options["strict"] = True
    try:
        dataset = importer.open(source, options)
    except SegconvertError as exc:
        problems.append(
            {
                "item": None,
                "file": getattr(exc, "file", None),
                "rule": "unreadable",
                "message": str(exc),
            }
        )
        return 0, problems
    assert dataset.loader is not None
    context = ExportContext(output=source, categories=tuple(dataset.categories))
    job = ItemJob(dataset.loader, dataset.context, _discard, context)
    checked = 0
    for result in run_items(job, unique_references(dataset.items), jobs):
        checked += 1
        if result.status is ItemStatus.ERROR and result.error is not None:
            problems.append(result.error)
    return checked, problems
