"""Write the hub as COCO panoptic: one RGB id PNG per image + one JSON, written at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import (
    RECORD_METADATA_KEYS,
    ExportContext,
    Exporter,
    ImageKey,
    ItemError,
    MetaKey,
    Option,
    Sample,
    Spool,
    assign_ids,
    categories_to_coco,
    ids_to_rgb_table,
    image_record,
    json_native,
    missing_ids,
    paint,
    safe_join,
    schemas,
    segment_stats,
    write_json_streamed,
    write_png,
)

from . import shipped_schemas as shipped

MAX_SEGMENT_ID = (1 << 24) - 1
STANDARD_METADATA = tuple(k for k in RECORD_METADATA_KEYS if k != MetaKey.SCORE)
"""Segment metadata written into fields of its own (a score stays as an extra key)."""


@dataclass(frozen=True)
class CocoRecord:
    """One image's entries for the panoptic JSON (image id may still be unassigned)."""

    image: dict[str, Any]
    annotation: dict[str, Any]


def json_name(ctx: ExportContext) -> str:
    """Stem of the output JSON and of its PNG folder."""
    return str(ctx.options.get("json_name") or "panoptic")


def prepare(ctx: ExportContext) -> None:
    """Make the PNG folder."""
    (ctx.output / json_name(ctx)).mkdir(parents=True, exist_ok=True)


def assign_segment_ids(sample: Sample, keep: list[bool]) -> dict[int, int]:
    """index -> segment id: the source id where valid and unique, else the smallest free id."""
    ids: dict[int, int] = {}
    used: set[int] = set()
    for segment, kept in zip(sample.segments, keep, strict=True):
        source = (segment.metadata or {}).get(MetaKey.SOURCE_ID)
        if kept and isinstance(source, int) and 0 < source <= MAX_SEGMENT_ID and source not in used:
            ids[segment.index] = source
            used.add(source)
    next_id = 1
    for segment, kept in zip(sample.segments, keep, strict=True):
        if kept and segment.index not in ids:
            while next_id in used:
                next_id += 1
            ids[segment.index] = next_id
            used.add(next_id)
    return ids


def write_item(sample: Sample, ctx: ExportContext) -> CocoRecord:
    """Write one panoptic PNG; return the image and annotation entries, validated."""
    ref = sample.reference_id
    known = {c.id for c in ctx.categories}
    count = max([s.index for s in sample.segments], default=0) + 1
    areas, bboxes = segment_stats(sample.mask, count)
    keep = []
    for segment in sample.segments:
        if segment.is_void:
            keep.append(False)
            continue
        if segment.category_id not in known:
            raise ItemError(
                f"segment {segment.label!r} has unknown category id {segment.category_id!r}",
                rule="unknown-category",
                item=ref,
            )
        keep.append(bool(areas[segment.index]))  # a segment with no pixels has no place in COCO
    segment_ids = assign_segment_ids(sample, keep)
    table = np.zeros(count, dtype=np.uint32)
    infos = []
    for segment, kept in zip(sample.segments, keep, strict=True):
        if not kept:
            continue
        metadata = segment.metadata or {}
        table[segment.index] = segment_ids[segment.index]
        info: dict[str, Any] = {
            "id": segment_ids[segment.index],
            "category_id": segment.category_id,
            "iscrowd": int(metadata.get(MetaKey.ISCROWD, 0)),
            "area": int(areas[segment.index]),
            "bbox": bboxes[segment.index].tolist(),
        }
        info.update(
            {k: v for k, v in metadata.items() if k not in STANDARD_METADATA and k not in info}
        )
        infos.append(json_native(info))
    png_name = f"{ref}.png"
    png_path = safe_join(ctx.output / json_name(ctx), png_name, item=ref)
    image = image_record(sample)
    annotation: dict[str, Any] = {
        "image_id": image.get("id"),
        "file_name": png_name,
        "segments_info": infos,
    }
    for key, value in (sample.metadata.get(ImageKey.ANNOTATION) or {}).items():
        annotation.setdefault(key, value)  # extras never replace the PNG name or segments
    image, annotation = json_native(image), json_native(annotation)
    placeholder = {"id": 0} if image.get("id") is None else {}
    schemas.validate(shipped.COCO_PANOPTIC, {**image, **placeholder}, "image", item=ref)
    schemas.validate(
        shipped.COCO_PANOPTIC,
        {**annotation, "image_id": image.get("id") or 0},
        "annotation",
        item=ref,
    )
    write_png(png_path, np.ascontiguousarray(paint(sample.mask, ids_to_rgb_table(table))))
    return CocoRecord(image, annotation)


def assign_image_ids(records: list[CocoRecord]) -> None:
    """Give images without a usable id (or with a duplicate one) the next free integer."""
    assign_ids([r.image for r in records])
    for record in records:
        record.annotation["image_id"] = record.image["id"]


def dataset_skeleton(ctx: ExportContext) -> dict[str, Any]:
    """The panoptic JSON without its images and annotations (validated)."""
    document: dict[str, Any] = {}
    for key in ImageKey.COCO_BLOCKS:
        if key in ctx.metadata:
            document[key] = json_native(ctx.metadata[key])
    document["images"] = []
    document["annotations"] = []
    document["categories"] = categories_to_coco(ctx.categories)
    path = ctx.output / f"{json_name(ctx)}.json"
    schemas.validate(shipped.COCO_PANOPTIC, document, file=str(path))
    return document


def check_dataset(ctx: ExportContext) -> None:
    """Plan stage: the categories, info and licenses make a valid panoptic JSON."""
    dataset_skeleton(ctx)


def write_dataset(records: Iterable[CocoRecord], ctx: ExportContext) -> list[Path]:
    """Write the panoptic JSON (validated) from every item's record, streamed: the records wait
    in a local spool file, never all in memory, and the arrays are written item by item."""
    with Spool() as spool:
        for record in records:
            spool.add([record.image, record.annotation])
        ids = spooled_image_ids(spool)
        images = ({**image, "id": ids(k, image)} for k, (image, _) in enumerate(spool))
        annotations = (
            {**annotation, "image_id": ids(k, image)} for k, (image, annotation) in enumerate(spool)
        )
        path = ctx.output / f"{json_name(ctx)}.json"
        write_json_streamed(
            path, dataset_skeleton(ctx), {"images": images, "annotations": annotations}
        )
    return [path, ctx.output / json_name(ctx)]


def spooled_image_ids(spool: Spool) -> Callable[[int, dict[str, Any]], Any]:
    """The id of the image at each position, as :func:`assign_image_ids` gives it, found in
    one pass that keeps only the ids (not the records)."""
    assigned = missing_ids(image.get("id") for image, _ in spool)

    def image_id(position: int, image: dict[str, Any]) -> Any:
        return assigned.get(position, image.get("id"))

    return image_id


EXPORTER = Exporter(
    schemas=shipped.SCHEMAS,
    name="coco-panoptic",
    aliases=("coco_panoptic", "coco"),  # "coco" is what nucleus-to-coco writes
    description="COCO panoptic: NAME.json + NAME/<reference_id>.png (RGB ids)",
    write_item=write_item,
    write_dataset=write_dataset,
    check_dataset=check_dataset,
    prepare=prepare,
    options=(Option("json-name", "Stem of the output JSON and PNG folder.", default="panoptic"),),
)
