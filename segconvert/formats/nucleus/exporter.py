"""Write the hub as Nucleus annotation lines + mode "L" mask PNGs."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from segconvert import (
    Category,
    ExportContext,
    Exporter,
    ItemError,
    Option,
    Sample,
    UsageError,
    atomic_open,
    atomic_write_json,
    is_remote_location,
    json_native,
    make_folder,
    object_url,
    safe_join,
    schemas,
    write_png,
)

from . import shipped_schemas as shipped
from .layout import ANNOTATIONS, IMAGES, ITEMS, MASKS, TAXONOMY, is_remote

MAX_SEGMENTS = 256
"""Nucleus masks are uint8: at most 256 distinct indices, so at most 256 segments."""


@dataclass(frozen=True)
class NucleusRecord:
    """What one item contributes to the aggregate files (already serialised and validated)."""

    annotation_line: str
    image_line: str
    item_line: str | None


def check_dataset(ctx: ExportContext) -> None:
    """Plan stage: check the URL options and the taxonomy before anything is written."""
    for key in ("mask_url_prefix", "image_url_prefix"):
        prefix = ctx.options.get(key)
        if prefix is not None and not is_remote(prefix):
            raise UsageError(
                f"--{key.replace('_', '-')} must start with s3://, gs://, https:// or http://, "
                f"not {prefix!r}"
            )
    taxonomy = taxonomy_document(ctx.categories, ctx.metadata, ctx.void_label)
    schemas.validate(shipped.TAXONOMY, taxonomy, file=str(ctx.output / TAXONOMY))


def prepare(ctx: ExportContext) -> None:
    """Make the masks folder."""
    make_folder(ctx.output / MASKS)


def mask_url(ctx: ExportContext, relative: str, path: Path) -> str:
    """The ``mask_url`` of one mask: under the prefix when given (the name percent-encoded, so
    ``#`` or ``?`` in a reference id cannot cut the URL short), the object written when the
    output is remote (``s3://bucket/out/masks/<reference_id>.png``; on Azure Blob its https
    URL, see :func:`segconvert.object_url`), else a local path the SDK can open."""
    prefix = ctx.options.get("mask_url_prefix")
    if prefix:
        return prefix.rstrip("/") + "/" + quote(relative, safe="/")
    if ctx.options.get("relative_mask_urls"):
        return relative
    if is_remote_location(ctx.output):
        return object_url(ctx.output).rstrip("/") + "/" + quote(relative, safe="/")
    return str(resolved_folder(ctx.output) / path.relative_to(ctx.output))


def resolved_folder(folder: Path) -> Path:
    """``folder`` resolved, once per folder and process while it stays the same folder (a mask
    path under it is a plain name :func:`segconvert.safe_join` checked: it needs no call of its
    own to resolve)."""
    try:
        status = os.stat(folder)
    except OSError:  # not made yet: nothing to remember
        return folder.resolve()
    return _resolved(folder, status.st_dev, status.st_ino)


@functools.lru_cache(maxsize=8)
def _resolved(folder: Path, device: int, inode: int) -> Path:
    return folder.resolve()


def compact_indices(sample: Sample) -> tuple[np.ndarray, dict[int, int]]:
    """The mask as uint8 and the old -> new index map (identity when indices already fit)."""
    indices = [s.index for s in sample.segments]
    if not indices or max(indices) < MAX_SEGMENTS:
        return sample.mask.astype(np.uint8, copy=False), {i: i for i in indices}
    lut = np.zeros(max(indices) + 1, dtype=np.uint8)
    mapping = {}
    for new, old in enumerate(sorted(indices)):
        lut[old] = new
        mapping[old] = new
    return lut[sample.mask], mapping


def write_item(sample: Sample, ctx: ExportContext) -> NucleusRecord:
    """Write one mask PNG and return the item's validated JSON lines."""
    ref = sample.reference_id
    if len(sample.segments) > MAX_SEGMENTS:
        raise ItemError(
            f"{len(sample.segments)} segments; a Nucleus mask holds at most {MAX_SEGMENTS}",
            rule="too-many-segments",
            item=ref,
        )
    mask, mapping = compact_indices(sample)
    relative = f"{MASKS}/{ref}.png"
    path = safe_join(ctx.output, relative, item=ref)
    annotations = []
    for segment in sorted(sample.segments, key=lambda s: mapping[s.index]):
        entry: dict[str, Any] = {"label": segment.label, "index": mapping[segment.index]}
        if segment.metadata is not None:
            entry["metadata"] = json_native(segment.metadata)
        annotations.append(entry)
    line = {
        "type": "mask",
        "mask_url": mask_url(ctx, relative, path),
        "annotations": annotations,
        "annotation_id": sample.annotation_id,
        "reference_id": ref,
    }
    schemas.validate(shipped.NUCLEUS_ANNOTATION, line, item=ref)
    metadata = json_native(sample.metadata)
    image = {
        "reference_id": ref,
        "file_name": sample.file_name,
        "width": sample.width,
        "height": sample.height,
        "metadata": metadata,
    }
    schemas.validate(shipped.IMAGE_RECORD, image, item=ref)
    item_line = None
    image_prefix = ctx.options.get("image_url_prefix")
    if image_prefix:
        item = {
            "metadata": metadata,
            "reference_id": ref,
            "width": sample.width,
            "height": sample.height,
            "image_url": image_prefix.rstrip("/") + "/" + (sample.file_name or f"{ref}.jpg"),
        }
        schemas.validate(shipped.NUCLEUS_ITEM, item, item=ref)
        item_line = json.dumps(item)
    write_png(path, mask)
    return NucleusRecord(json.dumps(line), json.dumps(image), item_line)


def taxonomy_document(categories: Iterable[Category], metadata: Any, void_label: str) -> Any:
    """The ``taxonomy.json`` document for ``categories``."""
    return {
        "format": "segconvert-taxonomy",
        "version": 1,
        "void_label": void_label,
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "supercategory": c.supercategory,
                "isthing": c.isthing,
                "color": list(c.color) if c.color is not None else None,
                "metadata": json_native(c.metadata),
            }
            for c in categories
        ],
        "metadata": json_native(dict(metadata)),
    }


def write_dataset(records: Iterable[NucleusRecord], ctx: ExportContext) -> list[Path]:
    """Stream the records into the JSON-lines files, then write the taxonomy."""
    out = ctx.output
    paths = [out / ANNOTATIONS, out / IMAGES]
    with_items = bool(ctx.options.get("image_url_prefix"))
    if with_items:
        paths.append(out / ITEMS)
    with ExitStack() as stack:
        handles = [stack.enter_context(atomic_open(p)) for p in paths]
        for record in records:
            handles[0].write(record.annotation_line + "\n")
            handles[1].write(record.image_line + "\n")
            if with_items and record.item_line is not None:
                handles[2].write(record.item_line + "\n")
    taxonomy = taxonomy_document(ctx.categories, ctx.metadata, ctx.void_label)
    schemas.validate(shipped.TAXONOMY, taxonomy, file=str(out / TAXONOMY))
    atomic_write_json(out / TAXONOMY, taxonomy, indent=2)
    return [*paths, out / TAXONOMY]


def next_steps(ctx: ExportContext) -> list[str]:
    """Where the masks must go before the annotations can be loaded into Nucleus."""
    prefix = ctx.options.get("mask_url_prefix")
    annotations = ctx.output / ANNOTATIONS
    if prefix:
        target = prefix.rstrip("/") + "/" + MASKS + "/"
        return [
            f"upload {ctx.output / MASKS}/ to {target} (every mask_url points there)",
            f"then load {annotations} with the Nucleus SDK (dataset.annotate)",
        ]
    if ctx.options.get("relative_mask_urls"):
        return [f"load {annotations} with the Nucleus SDK: its mask_urls are relative names"]
    if is_remote_location(ctx.output):
        where = object_url(ctx.output).rstrip("/") + "/" + MASKS + "/"
        return [
            f"load {annotations} with the Nucleus SDK (dataset.annotate(..., asynchronous=True)):"
            f" its mask_urls are the masks written under {where}"
        ]
    return [f"load {annotations} with the Nucleus SDK: its mask_urls are local files"]


EXPORTER = Exporter(
    schemas=shipped.SCHEMAS,
    name="nucleus",
    description="Scale Nucleus: annotations.jsonl + mode L mask PNGs (+ taxonomy for the way back)",
    write_item=write_item,
    write_dataset=write_dataset,
    check_dataset=check_dataset,
    prepare=prepare,
    max_segments=MAX_SEGMENTS,
    options=(
        Option(
            "mask-url-prefix",
            "Make every mask_url remote (s3://, gs://, https://): PREFIX/masks/<ref>.png; "
            "the files are still written locally.",
        ),
        Option(
            "image-url-prefix",
            "Also write items.jsonl (Nucleus DatasetItems) with image_url = PREFIX/<file name>.",
        ),
        Option(
            "relative-mask-urls",
            "Write local mask_url paths relative to the output folder instead of absolute.",
            type="flag",
            default=False,
            excludes=("mask-url-prefix",),
        ),
    ),
    next_steps=next_steps,
)
