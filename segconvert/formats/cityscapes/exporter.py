"""Write the hub as a Cityscapes gtFine tree: labelIds, instanceIds (16-bit), color, and
labelTrainIds on request, plus ``labels.json`` (the label table used) for the way back."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import (
    ExportContext,
    Exporter,
    ImageKey,
    ItemError,
    MetaKey,
    Option,
    Sample,
    atomic_write_bytes,
    atomic_write_json,
    encode_png,
    paint,
    safe_join,
    schemas,
)

from . import shipped_schemas as shipped
from .labels import (
    CITYSCAPES_LABELS,
    UNLABELED,
    Label,
    labels_from_categories,
    table_document,
)
from .layout import city_of

KIND = "gtFine"
VOID_LABEL_ID = UNLABELED.id
VOID_TRAIN_ID = UNLABELED.trainId


def frame_place(sample: Sample, ctx: ExportContext) -> tuple[str, str]:
    """(split, city) of a frame: from the source when it was Cityscapes, else derived."""
    origin = sample.metadata.get(ImageKey.CITYSCAPES) or {}
    split = origin.get("split") or ctx.options.get("split") or "train"
    return str(split), str(origin.get("city") or city_of(sample.reference_id, "default"))


def instance_values(sample: Sample, labels: dict[int, Label]) -> dict[int, int]:
    """index -> instanceIds value: the source's value where it fits the class, else
    ``class * 1000 + k`` for instances (k from 0, skipping used values) and the class id
    for crowds and stuff."""
    values: dict[int, int] = {}
    used: set[int] = set()
    pending = []
    for segment in sample.segments:
        if segment.is_void:
            values[segment.index] = VOID_LABEL_ID
            continue
        label = labels[segment.category_id]  # type: ignore[index]
        metadata = segment.metadata or {}
        crowd_or_stuff = not label.hasInstances or metadata.get(MetaKey.ISCROWD)
        source = metadata.get(MetaKey.SOURCE_ID)
        if (
            isinstance(source, int)
            and source >= 1000
            and source // 1000 == label.id
            and not metadata.get(MetaKey.ISCROWD)
            and source not in used
        ):  # the source's own instance number, kept
            values[segment.index] = source
            used.add(source)
            continue
        if crowd_or_stuff:
            values[segment.index] = label.id
        else:
            pending.append((segment.index, label))
    for index, label in pending:
        value = label.id * 1000
        while value in used:
            value += 1
        if value // 1000 != label.id or value > 0xFFFF:
            raise ItemError(
                f"too many {label.name} instances for the class*1000+k encoding",
                rule="instance-id-overflow",
                item=sample.reference_id,
            )
        values[index] = value
        used.add(value)
    return values


def write_item(sample: Sample, ctx: ExportContext) -> None:
    """Write the frame's PNGs."""
    ref = sample.reference_id
    labels = labels_from_categories(tuple(ctx.categories))
    count = max([s.index for s in sample.segments], default=0) + 1
    label_ids = np.zeros(count, dtype=np.uint8)
    train_ids = np.full(count, VOID_TRAIN_ID, dtype=np.uint8)
    colors = np.zeros((count, 4), dtype=np.uint8)
    colors[:, 3] = 255
    for segment in sample.segments:
        if segment.is_void:
            continue
        label = labels.get(segment.category_id)  # type: ignore[arg-type]
        if label is None:
            raise ItemError(
                f"segment {segment.label!r} has unknown category id {segment.category_id!r}",
                rule="unknown-category",
                item=ref,
            )
        if not 0 <= label.id <= 255 or label.id * 1000 + 999 > 0xFFFF and label.hasInstances:
            raise ItemError(
                f"label id {label.id} of {label.name!r} does not fit the Cityscapes "
                "encoding (labelIds uint8; instanceIds class*1000+k in uint16)",
                rule="label-id-overflow",
                item=ref,
            )
        label_ids[segment.index] = label.id
        train_ids[segment.index] = label.trainId if 0 <= label.trainId <= 255 else VOID_TRAIN_ID
        colors[segment.index, :3] = label.color
    instance_table = np.zeros(count, dtype=np.uint16)
    for index, value in instance_values(sample, labels).items():
        instance_table[index] = value
    split, city = frame_place(sample, ctx)
    folder = safe_join(ctx.output, f"{KIND}/{split}/{city}", item=ref)
    frame = str((sample.metadata.get(ImageKey.CITYSCAPES) or {}).get("frame") or ref)
    stem = safe_join(folder, f"{frame}_{KIND}", item=ref).name
    outputs: list[tuple[str, Any]] = [
        ("labelIds", label_ids),
        ("instanceIds", instance_table),
        ("color", colors),
    ]
    if ctx.options.get("train_ids"):
        outputs.append(("labelTrainIds", train_ids))
    encoded = [
        (
            folder / f"{stem}_{file_type}.png",
            encode_png(np.ascontiguousarray(paint(sample.mask, table))),
        )
        for file_type, table in outputs
    ]  # everything encoded before anything is written: a failing frame leaves no files
    for path, data in encoded:
        atomic_write_bytes(path, data)


def label_table(ctx: ExportContext) -> list[dict[str, Any]]:
    """The ``labels.json`` document for the dataset's categories (validated)."""
    labels = list(labels_from_categories(tuple(ctx.categories)).values())
    if all(label.id != VOID_LABEL_ID for label in labels):  # void pixels are written as 0:
        labels.insert(0, UNLABELED)  # list it, so they read back as void
    document = table_document(labels)
    schemas.validate(CITYSCAPES_LABELS, document, file=str(ctx.output / "labels.json"))
    return document


def check_dataset(ctx: ExportContext) -> None:
    """Plan stage: the label table the PNGs will use is valid."""
    label_table(ctx)


def write_dataset(records: Iterable[None], ctx: ExportContext) -> list[Path]:
    """Consume the records; write ``labels.json``, the label table the PNGs use."""
    for _ in records:
        pass
    path = ctx.output / "labels.json"
    atomic_write_json(path, label_table(ctx), indent=1)
    return [ctx.output / KIND, path]


EXPORTER = Exporter(
    schemas=shipped.SCHEMAS,
    name="cityscapes",
    description="Cityscapes gtFine: labelIds, 16-bit instanceIds, color (+ labelTrainIds)",
    write_item=write_item,
    write_dataset=write_dataset,
    check_dataset=check_dataset,
    options=(
        Option("train-ids", "Also write *_gtFine_labelTrainIds.png.", type="flag", default=False),
        Option(
            "split", "Split folder for frames that did not come from Cityscapes.", default="train"
        ),
    ),
)
