"""Write the hub as COCO instances with compressed RLE (counts as str), or SA-1B-style files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import (
    ExportContext,
    Exporter,
    ItemError,
    MetaKey,
    Option,
    Sample,
    assign_ids,
    atomic_write_json,
    categories_to_coco,
    encode_rle,
    image_record,
    json_native,
    rle_area_and_bbox,
    safe_join,
    schemas,
    segment_stats,
)

COCO_INSTANCES = "coco-instances"
SA1B_IMAGE = "sa1b-image"
STANDARD_METADATA = (
    MetaKey.CATEGORY_ID,
    MetaKey.ISCROWD,
    MetaKey.SOURCE_ID,
    MetaKey.VOID,
    MetaKey.SCORE,
)


@dataclass(frozen=True)
class RleRecord:
    """One image's entries for the instances JSON (ids assigned in the parent)."""

    image: dict[str, Any]
    annotations: list[dict[str, Any]]


def annotations_for(sample: Sample, ctx: ExportContext) -> list[dict[str, Any]]:
    """One compressed-RLE annotation per non-void segment with pixels (stuff left out with
    ``--things-only``); ``id`` is the source's id when there was one."""
    categories = {c.id: c for c in ctx.categories}
    count = max([s.index for s in sample.segments], default=0) + 1
    areas, bboxes = segment_stats(sample.mask, count)
    annotations = []
    for segment in sample.segments:
        if segment.is_void or not areas[segment.index]:
            continue
        category = categories.get(segment.category_id)  # type: ignore[arg-type]
        if category is None:
            raise ItemError(
                f"segment {segment.label!r} has unknown category id {segment.category_id!r}",
                rule="unknown-category",
                item=sample.reference_id,
            )
        if ctx.options.get("things_only") and not category.isthing:
            continue
        x, y, w, h = bboxes[segment.index].tolist()
        binary = np.zeros(sample.mask.shape, dtype=np.uint8, order="F")
        binary[y : y + h, x : x + w] = sample.mask[y : y + h, x : x + w] == segment.index
        rle = encode_rle(binary)
        area, bbox = rle_area_and_bbox(rle)
        metadata = segment.metadata or {}
        source_id = metadata.get(MetaKey.SOURCE_ID)
        annotation: dict[str, Any] = {
            "id": source_id
            if isinstance(source_id, int) and not isinstance(source_id, bool)
            else None,
            "image_id": None,
            "category_id": category.id,
            "segmentation": rle,
            "area": area,
            "bbox": bbox,
            "iscrowd": int(metadata.get(MetaKey.ISCROWD, 0)),
        }
        if metadata.get(MetaKey.SCORE) is not None:
            annotation["score"] = metadata[MetaKey.SCORE]
        annotation.update(
            {
                k: v
                for k, v in metadata.items()
                if k not in STANDARD_METADATA and k not in annotation
            }
        )
        annotations.append(json_native(annotation))
    return annotations


def write_item(sample: Sample, ctx: ExportContext) -> RleRecord | str:
    """Encode the item's segments; with ``--per-image`` also write its SA-1B-style file."""
    image, annotations = json_native(image_record(sample)), annotations_for(sample, ctx)
    if not ctx.options.get("per_image"):
        probe = {**image, "id": image["id"] if image["id"] is not None else 0}
        schemas.validate(COCO_INSTANCES, probe, "image", item=sample.reference_id)
        for annotation in annotations:
            schemas.validate(
                COCO_INSTANCES,
                {**annotation, "id": 1, "image_id": 1},
                "annotation",
                item=sample.reference_id,
            )
        return RleRecord(image, annotations)
    assign_ids(annotations)
    image_id = image.pop("id")
    document = {
        "image": {"image_id": image_id if image_id is not None else sample.reference_id, **image},
        "annotations": [{k: v for k, v in a.items() if k != "image_id"} for a in annotations],
    }
    schemas.validate(SA1B_IMAGE, document, item=sample.reference_id)
    path = safe_join(ctx.output, f"{sample.reference_id}.json", item=sample.reference_id)
    atomic_write_json(path, document)
    return str(path)


def check_dataset(ctx: ExportContext) -> None:
    """Plan stage: the categories, info and licenses make a valid instances JSON."""
    categories = [c for c in ctx.categories if c.isthing or not ctx.options.get("things_only")]
    document: dict[str, Any] = {
        k: json_native(ctx.metadata[k]) for k in ("info", "licenses") if k in ctx.metadata
    }
    coco_categories = categories_to_coco(categories, panoptic=False)
    document.update(images=[], annotations=[], categories=coco_categories)
    schemas.validate(COCO_INSTANCES, document, file=str(ctx.output))


def write_dataset(records: Iterable[RleRecord | str], ctx: ExportContext) -> list[Path]:
    """Write the instances JSON: image and annotation ids unique, categories as they came."""
    collected = list(records)
    categories = [c for c in ctx.categories if c.isthing or not ctx.options.get("things_only")]
    coco_categories = categories_to_coco(categories, panoptic=False)
    if ctx.options.get("per_image"):
        path = ctx.output / "categories.json"
        schemas.validate(
            COCO_INSTANCES,
            {"images": [], "annotations": [], "categories": coco_categories},
            file=str(path),
        )
        atomic_write_json(path, {"categories": coco_categories})
        return [*(Path(r) for r in collected if isinstance(r, str)), path]
    rle_records = [r for r in collected if isinstance(r, RleRecord)]
    images = [r.image for r in rle_records]
    assign_ids(images)
    annotations = []
    for record in rle_records:
        for annotation in record.annotations:
            annotation["image_id"] = record.image["id"]
            annotations.append(annotation)
    assign_ids(annotations)
    document: dict[str, Any] = {
        k: json_native(ctx.metadata[k]) for k in ("info", "licenses") if k in ctx.metadata
    }
    document.update(images=images, annotations=annotations, categories=coco_categories)
    path = ctx.output / f"{ctx.options.get('json_name') or 'instances'}.json"
    schemas.validate(COCO_INSTANCES, {**document, "images": [], "annotations": []}, file=str(path))
    atomic_write_json(path, document)
    return [path]


EXPORTER = Exporter(
    name="coco-rle",
    aliases=("coco-instances", "coco_instances"),
    description="COCO instances JSON, every mask a compressed RLE (or SA-1B-style per-image JSONs)",
    write_item=write_item,
    write_dataset=write_dataset,
    check_dataset=check_dataset,
    options=(
        Option(
            "things-only",
            "Leave out stuff categories and their segments.",
            type="flag",
            default=False,
        ),
        Option(
            "per-image",
            "Write one SA-1B-style JSON per image instead of one instances JSON.",
            type="flag",
            default=False,
        ),
        Option("json-name", "Stem of the output JSON.", default="instances"),
    ),
)
