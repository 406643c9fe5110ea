"""Helpers shared by COCO-family formats (panoptic, instances/RLE): categories, ids, names."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from segconvert.errors import InputError
from segconvert.model import Category, ImageKey, Sample

CATEGORY_KEYS = ("id", "name", "supercategory", "isthing", "color")


def category_from_coco(record: Any, file: str) -> Category:
    """A hub category from a COCO category record; keys beyond the standard five go to metadata."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), int):
        raise InputError(f"{file}: category without an integer id: {record!r}", file=file)
    color = record.get("color")
    return Category(
        id=record["id"],
        name=str(record.get("name", record["id"])),
        supercategory=str(record["supercategory"]) if "supercategory" in record else None,
        isthing=bool(record.get("isthing", 1)),
        color=(int(color[0]), int(color[1]), int(color[2]))
        if isinstance(color, list) and len(color) == 3
        else None,
        metadata={k: v for k, v in record.items() if k not in CATEGORY_KEYS},
    )


def categories_from_coco(records: Any, file: str) -> list[Category]:
    """Hub categories from a COCO ``categories`` list (or a document holding one).

    Duplicate ids are an :class:`~segconvert.errors.InputError`.
    """
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


def placeholder_categories(
    category_ids: Iterable[Any], *, things: Iterable[Any] | None = None
) -> list[Category]:
    """``category-<id>`` categories, for inputs that name none.

    ``things`` are the ids seen with several instances in one image: those are things, the
    rest stuff (``None``: every category a thing).
    """
    ids = sorted({i for i in category_ids if isinstance(i, int) and not isinstance(i, bool)})
    thing_ids = None if things is None else set(things)
    return [
        Category(id=i, name=f"category-{i}", isthing=thing_ids is None or i in thing_ids)
        for i in ids
    ]


def fallback_color(category_id: int) -> list[int]:
    """A stable display colour for a category that has none."""
    return [
        (category_id * 67 + 40) % 256,
        (category_id * 151 + 90) % 256,
        (category_id * 37 + 140) % 256,
    ]


def categories_to_coco(
    categories: Iterable[Category], *, panoptic: bool = True
) -> list[dict[str, Any]]:
    """COCO category records, extra metadata restored.

    Panoptic records always carry ``isthing`` and ``color``; instance records carry them only
    when the category has a colour (i.e. it came from a format that has one).
    """
    records = []
    for c in categories:
        record: dict[str, Any] = {"id": c.id, "name": c.name}
        if panoptic or c.supercategory is not None:
            record["supercategory"] = c.supercategory or ""
        if panoptic or c.color is not None:
            record["isthing"] = int(c.isthing)
            record["color"] = list(c.color) if c.color is not None else fallback_color(c.id)
        record.update({k: v for k, v in c.metadata.items() if k not in record})
        records.append(record)
    return records


CITYSCAPES_PHOTO_SUFFIX = "_leftImg8bit"
"""Cityscapes photos are ``{frame}_leftImg8bit.png``; the frame id is the reference id."""


def reference_id_from_names(*names: Any, fallback: Any) -> str:
    """The first usable file name minus its extension (``a/b.jpg`` -> ``a/b``).

    A Cityscapes photo name (``{frame}_leftImg8bit.png``, as csCreatePanopticImgs writes in
    ``images``) gives the frame id, so a frame keeps its reference id through COCO files.
    """
    for name in names:
        if isinstance(name, str) and name:
            stem = PurePosixPath(name.replace("\\", "/")).with_suffix("").as_posix()
            return stem.removesuffix(CITYSCAPES_PHOTO_SUFFIX) or stem
    return str(fallback)


def assign_ids(records: Sequence[MutableMapping[str, Any]], key: str = "id") -> None:
    """Give every record a unique ``key``: existing ids are kept unless taken already; the rest
    (``None`` or duplicates) get the next free integers, in order."""
    for position, value in missing_ids(record.get(key) for record in records).items():
        records[position][key] = value


def missing_ids(values: Iterable[Any]) -> dict[int, int]:
    """For ids in order (``None`` where there is none): the position -> new id of every one
    that is ``None`` or repeats an earlier one, as :func:`assign_ids` gives them. One pass;
    only the ids are kept, so the records may stream past (from a spool)."""
    ids = IdAssigner()
    for value in values:
        ids.add(value)
    return ids.assigned()


class IdAssigner:
    """:func:`missing_ids` fed one id at a time, as records stream past (an exporter's
    ``write_dataset`` learns every id while it spools the records, and needs no pass for it)."""

    def __init__(self) -> None:
        self._used: set[Any] = set()
        self._pending: list[int] = []
        self._count = 0

    def add(self, value: Any) -> None:
        """The id of the next record (``None`` when it has none)."""
        if value is None or value in self._used:
            self._pending.append(self._count)
        else:
            self._used.add(value)
        self._count += 1

    def assigned(self) -> dict[int, int]:
        """Position -> new id of every record whose id was ``None`` or taken (call once)."""
        used = self._used
        next_id = max([v for v in used if isinstance(v, int)], default=0) + 1
        assigned = {}
        for position in self._pending:
            while next_id in used:
                next_id += 1
            assigned[position] = next_id
            used.add(next_id)
        return assigned


def image_record(sample: Sample) -> dict[str, Any]:
    """The COCO image entry of a sample: the source's own record when it had one (all its
    keys kept), with width and height from the mask and a file name if it lacked one."""
    image = dict(sample.metadata.get(ImageKey.IMAGE) or {})
    image.update(width=sample.width, height=sample.height)
    image.setdefault("file_name", sample.file_name or f"{sample.reference_id}.jpg")
    image.setdefault("id", None)
    return image
