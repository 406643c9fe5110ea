"""Write the hub as COCO instances with compressed RLE (counts as str), or SA-1B-style files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segconvert import (
    RECORD_METADATA_KEYS,
    ExportContext,
    Exporter,
    IdAssigner,
    ImageKey,
    Intervals,
    ItemError,
    JsonText,
    MetaKey,
    Option,
    Sample,
    Spool,
    area_of,
    assign_ids,
    atomic_write_json,
    bbox_of,
    categories_to_coco,
    column_major,
    decode_counts,
    encode_json,
    encode_runs,
    image_record,
    intervals_by_value,
    intervals_of,
    json_native,
    runs_of,
    safe_join,
    schemas,
    symmetric_difference,
    write_json_array_streamed,
    write_json_streamed,
)

from . import shipped_schemas as shipped
from .shipped_schemas import COCO_INSTANCES, COCO_RESULTS, SA1B_IMAGE

RESULTS_DOCUMENT = "results"
DOCUMENT_KEY = ImageKey.COCO_DOCUMENT
"""``ctx.metadata[DOCUMENT_KEY] == RESULTS_DOCUMENT``: the source was a results list (set by the
coco-rle importer; it survives Nucleus in taxonomy.json), so a results list is written."""
CATEGORIES_FILE = "categories.json"


@dataclass(frozen=True)
class RleRecord:
    """One image's entries for the instances JSON, encoded by the item's worker.

    ``ids[k]`` is annotation k's own id: in an instances JSON, None where it has none (the
    parent numbers it); in a results list, None where it has no ``id`` key. ``bodies[k]`` is
    the JSON of its other keys (``category_id``, ``segmentation``, ...) as an object; the
    parent puts the ids in front, so it never encodes an annotation itself."""

    image: dict[str, Any]
    ids: list[int | str | None]
    bodies: list[str]


def writes_results(ctx: ExportContext) -> bool:
    """Whether the output is a COCO results list (the source was one)."""
    return ctx.metadata.get(DOCUMENT_KEY) == RESULTS_DOCUMENT and not ctx.options.get("per_image")


def full_mask_runs(
    visible: Intervals, hidden: Any, sample: Sample, segment_label: str
) -> Intervals:
    """An instance's full mask: its pixels in the index mask plus its hidden part."""
    if hidden is None:
        return visible
    try:
        if not isinstance(hidden, str):
            raise ValueError("it is not an RLE string")
        runs = decode_counts(hidden)
        if int(runs.sum()) != sample.height * sample.width:
            raise ValueError(f"its runs sum to {int(runs.sum())}, not height*width")
    except ValueError as exc:
        raise ItemError(
            f"segment {segment_label!r}: bad {MetaKey.HIDDEN!r} metadata ({exc})",
            rule="bad-segmentation",
            item=sample.reference_id,
        ) from None
    return symmetric_difference(visible, intervals_of(runs))


def annotations_for(
    sample: Sample, ctx: ExportContext
) -> list[tuple[int | str | None, dict[str, Any]]]:
    """One compressed-RLE annotation per non-void segment, empty ones included (stuff left out
    with ``--things-only``): its full mask (visible + hidden pixels), the source's own ``id``,
    ``area``, ``bbox`` and extra keys where it had them. A results list gets no key its source
    record lacked. Each comes as ``(own id, the other keys)`` (see :class:`RleRecord`)."""
    categories = {c.id: c for c in ctx.categories}
    results = writes_results(ctx)
    height, width = sample.height, sample.width
    count = max([s.index for s in sample.segments], default=0) + 1
    _, per_index = intervals_by_value(column_major(sample.mask), count)
    visible = list(per_index)
    annotations = []
    for segment in sample.segments:
        if segment.is_void:
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
        metadata = segment.metadata or {}
        full = full_mask_runs(
            visible[segment.index], metadata.get(MetaKey.HIDDEN), sample, segment.label
        )
        rle = {
            "size": [height, width],
            "counts": encode_runs(runs_of(full, height * width), height, width),
        }
        annotation: dict[str, Any] = {"category_id": category.id, "segmentation": rle}
        for key, meta_key in (("area", MetaKey.AREA), ("bbox", MetaKey.BBOX)):
            if meta_key in metadata:
                annotation[key] = metadata[meta_key]
            elif not results:  # computed only where the source had none
                annotation[key] = area_of(full) if key == "area" else bbox_of(full, height)
        if MetaKey.ISCROWD in metadata or not results:
            annotation["iscrowd"] = int(metadata.get(MetaKey.ISCROWD, 0))
        if metadata.get(MetaKey.SCORE) is not None:
            annotation["score"] = metadata[MetaKey.SCORE]
        annotation.update(
            {
                k: v
                for k, v in metadata.items()
                if k not in RECORD_METADATA_KEYS and k not in annotation and k not in ID_KEYS
            }
        )
        annotations.append(
            (own_annotation_id(metadata.get(MetaKey.SOURCE_ID), results), annotation)
        )
    return annotations


ID_KEYS = ("id", "image_id")
"""The keys the parent writes in front of each annotation's other keys."""


def own_annotation_id(source_id: Any, results: bool) -> int | str | None:
    """The id an annotation keeps: its source's integer id (a results list also keeps a string
    one, which its schema allows); None where it has none."""
    if isinstance(source_id, bool):
        return None
    if isinstance(source_id, int) or (results and isinstance(source_id, str)):
        return source_id
    return None


def encoded_bodies(
    annotations: list[tuple[int | str | None, dict[str, Any]]],
    definition: str,
    item: str,
) -> list[str]:
    """Each annotation's other keys as JSON text, checked against its schema ``definition``
    (with stand-in ids, which the parent assigns)."""
    schema = COCO_RESULTS if definition == "result" else COCO_INSTANCES
    bodies: list[str] = []
    for own_id, annotation in annotations:
        text = encode_json(annotation)
        probe = (
            {"image_id": 1, **annotation}
            if own_id is None and definition == "result"
            else {"id": 1, "image_id": 1, **annotation}
        )
        if not schemas.is_valid(schema, probe, definition):  # a tuple is an array too
            schemas.validate(schema, json_native(probe), definition, item=item)
        bodies.append(text)
    return bodies


def write_item(sample: Sample, ctx: ExportContext) -> RleRecord | str:
    """Encode the item's segments; with ``--per-image`` also write its SA-1B-style file."""
    image, annotations = json_native(image_record(sample)), annotations_for(sample, ctx)
    item = sample.reference_id
    ids = [own_id for own_id, _ in annotations]
    if writes_results(ctx):
        return RleRecord(image, ids, encoded_bodies(annotations, "result", item))
    if not ctx.options.get("per_image"):
        probe = {**image, "id": image["id"] if image["id"] is not None else 0}
        schemas.validate(COCO_INSTANCES, probe, "image", item=item)
        return RleRecord(image, ids, encoded_bodies(annotations, "annotation", item))
    listed = [json_native({"id": own_id, **annotation}) for own_id, annotation in annotations]
    assign_ids(listed)
    image_id = image.pop("id")
    document = {
        "image": {"image_id": image_id if image_id is not None else item, **image},
        "annotations": listed,
    }
    schemas.validate(SA1B_IMAGE, document, item=item)
    path = safe_join(ctx.output, f"{item}.json", item=item)
    if path == ctx.output / CATEGORIES_FILE:
        raise ItemError(
            f"image {item!r} would overwrite {CATEGORIES_FILE}",
            rule="duplicate-output-name",
            item=item,
        )
    atomic_write_json(path, document)
    return str(path)


def with_ids(ids: str, body: str) -> JsonText:
    """An annotation's JSON: ``ids`` (``"id": 1, "image_id": 2``) in front of ``body``'s keys."""
    return JsonText("{" + ids + ("}" if body == "{}" else ", " + body[1:]))


def id_json(value: Any) -> str:
    """An id as JSON (integers, the common case, without a call to the encoder)."""
    return str(value) if type(value) is int else json.dumps(value)


def check_dataset(ctx: ExportContext) -> None:
    """Plan stage: the categories, info and licenses make a valid instances JSON."""
    categories = [c for c in ctx.categories if c.isthing or not ctx.options.get("things_only")]
    document: dict[str, Any] = {
        k: json_native(ctx.metadata[k]) for k in ImageKey.COCO_BLOCKS if k in ctx.metadata
    }
    coco_categories = categories_to_coco(categories, panoptic=False)
    document.update(images=[], annotations=[], categories=coco_categories)
    schemas.validate(COCO_INSTANCES, document, file=str(ctx.output))


def write_dataset(records: Iterable[RleRecord | str], ctx: ExportContext) -> list[Path]:
    """Write the instances JSON (or a results list): image and annotation ids unique,
    categories as they came. Streamed: the records wait in local spool files (the image
    records in one, the annotations in another), never all in memory, each read back once,
    and the arrays are written item by item."""
    categories = [c for c in ctx.categories if c.isthing or not ctx.options.get("things_only")]
    coco_categories = categories_to_coco(categories, panoptic=False)
    if ctx.options.get("per_image"):
        written = [Path(r) for r in records if isinstance(r, str)]
        path = ctx.output / CATEGORIES_FILE
        schemas.validate(
            COCO_INSTANCES,
            {"images": [], "annotations": [], "categories": coco_categories},
            file=str(path),
        )
        atomic_write_json(path, {"categories": coco_categories})
        return [*written, path]
    image_ids, annotation_ids = IdAssigner(), IdAssigner()
    numbering = not writes_results(ctx)  # a results list keeps its detections' own ids
    with Spool() as images, Spool() as entries:
        for record in records:  # ids are learnt while spooling: one pass over each spool
            if isinstance(record, RleRecord):
                own_id = record.image.get("id")
                image_ids.add(own_id)
                for annotation_id in record.ids if numbering else ():
                    annotation_ids.add(annotation_id)
                images.add(record.image)
                entries.add((own_id, record.ids, record.bodies))
        new_image_ids = image_ids.assigned()
        new_annotation_ids = annotation_ids.assigned() if numbering else {}

        def image_id(position: int, own_id: Any) -> Any:
            return new_image_ids.get(position, own_id)

        def annotations() -> Iterator[JsonText]:
            number = 0
            for position, (own_id, ids, bodies) in enumerate(entries):
                image_part = '"image_id": ' + id_json(image_id(position, own_id))
                for annotation_id, body in zip(ids, bodies, strict=True):
                    if numbering:
                        annotation_id = new_annotation_ids.get(number, annotation_id)
                        number += 1
                    head = image_part
                    if annotation_id is not None or numbering:
                        head = '"id": ' + id_json(annotation_id) + ", " + image_part
                    yield with_ids(head, body)

        if not numbering:
            return write_results(annotations(), coco_categories, ctx)

        numbered_images = (
            {**image, "id": image_id(k, image.get("id"))} for k, image in enumerate(images)
        )
        document: dict[str, Any] = {
            k: json_native(ctx.metadata[k]) for k in ImageKey.COCO_BLOCKS if k in ctx.metadata
        }
        document.update(images=[], annotations=[], categories=coco_categories)
        path = ctx.output / f"{ctx.options.get('json_name') or 'instances'}.json"
        schemas.validate(COCO_INSTANCES, document, file=str(path))
        write_json_streamed(
            path, document, {"images": numbered_images, "annotations": annotations()}
        )
    return [path]


def write_results(
    annotations: Iterable[JsonText], categories: list[dict[str, Any]], ctx: ExportContext
) -> list[Path]:
    """A results list (what ``COCO.loadRes`` reads: detections as their source had them) and,
    next to it, the categories it refers to (read back by the importer)."""
    path = ctx.output / f"{ctx.options.get('json_name') or 'results'}.json"
    schemas.validate(COCO_RESULTS, [], file=str(path))
    categories_path = ctx.output / CATEGORIES_FILE
    schemas.validate(
        COCO_INSTANCES,
        {"images": [], "annotations": [], "categories": categories},
        file=str(categories_path),
    )
    write_json_array_streamed(path, annotations)
    atomic_write_json(categories_path, {"categories": categories})
    return [path, categories_path]


EXPORTER = Exporter(
    schemas=shipped.SCHEMAS,
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
        Option(
            "json-name",
            "Stem of the output JSON (default: instances, or results for a results source).",
        ),
    ),
)
