"""COCO category records <-> hub categories."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from segconvert import Category, InputError

STANDARD_KEYS = ("id", "name", "supercategory", "isthing", "color")


def category_from_coco(record: Any, file: str) -> Category:
    """A hub category from a COCO panoptic category record; extra keys go to metadata."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), int):
        raise InputError(f"{file}: category without an integer id: {record!r}", file=file)
    color = record.get("color")
    return Category(
        id=record["id"],
        name=str(record.get("name", record["id"])),
        supercategory=str(record.get("supercategory", "")),
        isthing=bool(record.get("isthing", 1)),
        color=(int(color[0]), int(color[1]), int(color[2]))
        if isinstance(color, list) and len(color) == 3
        else None,
        metadata={k: v for k, v in record.items() if k not in STANDARD_KEYS},
    )


def categories_from_coco(records: Any, file: str) -> list[Category]:
    """Hub categories from a COCO ``categories`` list; duplicate ids are an input error."""
    if isinstance(records, dict) and "categories" in records:
        records = records["categories"]
    if not isinstance(records, list):
        raise InputError(f"{file}: 'categories' must be a list", file=file)
    categories = [category_from_coco(r, file) for r in records]
    ids = [c.id for c in categories]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"{file}: duplicate category ids {duplicates}", file=file)
    return categories


def fallback_color(category_id: int) -> list[int]:
    """A stable colour for a category that has none."""
    return [
        (category_id * 67 + 40) % 256,
        (category_id * 151 + 90) % 256,
        (category_id * 37 + 140) % 256,
    ]


def categories_to_coco(categories: Iterable[Category]) -> list[dict[str, Any]]:
    """COCO panoptic category records from hub categories, extra metadata restored."""
    records = []
    for c in categories:
        record: dict[str, Any] = {
            "id": c.id,
            "name": c.name,
            "supercategory": c.supercategory,
            "isthing": int(c.isthing),
            "color": list(c.color) if c.color is not None else fallback_color(c.id),
        }
        record.update({k: v for k, v in c.metadata.items() if k not in record})
        records.append(record)
    return records
