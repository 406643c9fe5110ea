"""The Cityscapes label table: the official 35 labels built in, or a user-supplied JSON table.

Values are those of cityscapesScripts' ``helpers/labels.py`` (mcordts/cityscapesScripts).
A user table (``--labels FILE``) has the same fields, one JSON object per label, for
Cityscapes-style datasets with other classes (KITTI-STEP, custom); schema
``cityscapes-labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from segconvert import Category, InputError, fallback_color, read_json, schemas

from .shipped_schemas import CITYSCAPES_LABELS

"""Schema name of a label table file."""

CATEGORY_ID_FIELD = "segconvertCategoryId"
"""Label-table field: the hub category id of a label whose id had to differ from it."""

METADATA_KEY = "cityscapes"
"""Category.metadata key holding a category's Cityscapes label fields."""


@dataclass(frozen=True)
class Label:
    """One row of the label table."""

    name: str
    id: int
    trainId: int  # noqa: N815 - the field name cityscapesScripts uses
    category: str
    categoryId: int  # noqa: N815
    hasInstances: bool  # noqa: N815
    ignoreInEval: bool  # noqa: N815
    color: tuple[int, int, int]
    category_id: int | None = None
    """The hub category id when it is not the label id (a category moved off the void id 0);
    written to the table as ``segconvertCategoryId`` so the way back restores it."""

    @property
    def hub_id(self) -> int:
        """The category id this label stands for in the hub."""
        return self.id if self.category_id is None else self.category_id

    def to_json(self) -> dict[str, Any]:
        """The label as a JSON object of the label-table format."""
        extra = {} if self.category_id is None else {CATEGORY_ID_FIELD: self.category_id}
        return {
            "name": self.name,
            "id": self.id,
            "trainId": self.trainId,
            "category": self.category,
            "categoryId": self.categoryId,
            "hasInstances": self.hasInstances,
            "ignoreInEval": self.ignoreInEval,
            "color": list(self.color),
            **extra,
        }


# fmt: off
OFFICIAL_LABELS: tuple[Label, ...] = tuple(Label(*row) for row in (
    ("unlabeled",             0, 255, "void",         0, False, True,  (0, 0, 0)),
    ("ego vehicle",           1, 255, "void",         0, False, True,  (0, 0, 0)),
    ("rectification border",  2, 255, "void",         0, False, True,  (0, 0, 0)),
    ("out of roi",            3, 255, "void",         0, False, True,  (0, 0, 0)),
    ("static",                4, 255, "void",         0, False, True,  (0, 0, 0)),
    ("dynamic",               5, 255, "void",         0, False, True,  (111, 74, 0)),
    ("ground",                6, 255, "void",         0, False, True,  (81, 0, 81)),
    ("road",                  7,   0, "flat",         1, False, False, (128, 64, 128)),
    ("sidewalk",              8,   1, "flat",         1, False, False, (244, 35, 232)),
    ("parking",               9, 255, "flat",         1, False, True,  (250, 170, 160)),
    ("rail track",           10, 255, "flat",         1, False, True,  (230, 150, 140)),
    ("building",             11,   2, "construction", 2, False, False, (70, 70, 70)),
    ("wall",                 12,   3, "construction", 2, False, False, (102, 102, 156)),
    ("fence",                13,   4, "construction", 2, False, False, (190, 153, 153)),
    ("guard rail",           14, 255, "construction", 2, False, True,  (180, 165, 180)),
    ("bridge",               15, 255, "construction", 2, False, True,  (150, 100, 100)),
    ("tunnel",               16, 255, "construction", 2, False, True,  (150, 120, 90)),
    ("pole",                 17,   5, "object",       3, False, False, (153, 153, 153)),
    ("polegroup",            18, 255, "object",       3, False, True,  (153, 153, 153)),
    ("traffic light",        19,   6, "object",       3, False, False, (250, 170, 30)),
    ("traffic sign",         20,   7, "object",       3, False, False, (220, 220, 0)),
    ("vegetation",           21,   8, "nature",       4, False, False, (107, 142, 35)),
    ("terrain",              22,   9, "nature",       4, False, False, (152, 251, 152)),
    ("sky",                  23,  10, "sky",          5, False, False, (70, 130, 180)),
    ("person",               24,  11, "human",        6, True,  False, (220, 20, 60)),
    ("rider",                25,  12, "human",        6, True,  False, (255, 0, 0)),
    ("car",                  26,  13, "vehicle",      7, True,  False, (0, 0, 142)),
    ("truck",                27,  14, "vehicle",      7, True,  False, (0, 0, 70)),
    ("bus",                  28,  15, "vehicle",      7, True,  False, (0, 60, 100)),
    ("caravan",              29, 255, "vehicle",      7, True,  True,  (0, 0, 90)),
    ("trailer",              30, 255, "vehicle",      7, True,  True,  (0, 0, 110)),
    ("train",                31,  16, "vehicle",      7, True,  False, (0, 80, 100)),
    ("motorcycle",           32,  17, "vehicle",      7, True,  False, (0, 0, 230)),
    ("bicycle",              33,  18, "vehicle",      7, True,  False, (119, 11, 32)),
    ("license plate",        -1,  -1, "vehicle",      7, False, True,  (0, 0, 142)),
))
# fmt: on


UNLABELED = OFFICIAL_LABELS[0]
"""The void label (id 0, trainId 255): what void pixels are written as."""


@dataclass(frozen=True)
class LabelTable:
    """A label table with the lookups the importer and exporter need (built once, cached)."""

    labels: tuple[Label, ...]

    @cached_property
    def by_id(self) -> dict[int, Label]:
        """Labels keyed by label id (drawable labels only: id >= 0)."""
        return {label.id: label for label in self.labels if label.id >= 0}

    @cached_property
    def by_name(self) -> dict[str, Label]:
        """Labels keyed by name."""
        return {label.name: label for label in self.labels}

    @cached_property
    def unlabeled(self) -> Label:
        """The table's ``unlabeled`` label, else the official one."""
        return self.by_name.get(UNLABELED.name, UNLABELED)

    @cached_property
    def by_train_id(self) -> dict[int, Label]:
        """trainId -> the first label with it (as cityscapesScripts' ``trainId2label``); not 255."""
        table: dict[int, Label] = {}
        for label in self.labels:
            if 0 <= label.trainId < 255:
                table.setdefault(label.trainId, label)
        return table


OFFICIAL = LabelTable(OFFICIAL_LABELS)


def load_label_table(path: Path) -> LabelTable:
    """A user-supplied label table (JSON list of label objects, schema ``cityscapes-labels``)."""
    document = read_json(path)
    found = schemas.problems(CITYSCAPES_LABELS, document)
    if found:
        raise InputError(f"{path}: not a valid label table: {found[0]}", file=str(path))
    labels = tuple(
        Label(
            name=row["name"],
            id=row["id"],
            trainId=row.get("trainId", 255),
            category=row.get("category", ""),
            categoryId=row.get("categoryId", 0),
            hasInstances=row.get("hasInstances", False),
            ignoreInEval=row.get("ignoreInEval", False),
            color=(row["color"][0], row["color"][1], row["color"][2]),
            category_id=row.get(CATEGORY_ID_FIELD),
        )
        for row in document
    )
    for field in ("id", "name"):
        values = [getattr(label, field) for label in labels]
        duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
        if duplicates:
            raise InputError(f"{path}: duplicate label {field}s {duplicates}", file=str(path))
    return LabelTable(labels)


def categories_for(table: LabelTable, *, use_train_id: bool, keep_ignored: bool) -> list[Category]:
    """Hub categories for a label table: label ids (or trainIds), ignored labels only if kept."""
    categories = []
    for label in table.labels:
        if label.id < 0 or (label.ignoreInEval and not keep_ignored):
            continue
        fields = label.to_json()
        categories.append(
            Category(
                id=label.trainId if use_train_id else label.hub_id,
                name=label.name,
                supercategory=label.category,
                isthing=label.hasInstances,
                color=label.color,
                metadata={
                    METADATA_KEY: {
                        k: fields[k]
                        for k in ("id", "trainId", "categoryId", "hasInstances", "ignoreInEval")
                    }
                },
            )
        )
    return categories


@cache
def labels_from_categories(categories: tuple[Category, ...]) -> dict[int, Label]:
    """category id -> the Cityscapes label to write for it (from metadata, else the category).

    Label id 0 is void (``unlabeled``): a category with id 0 that did not come from Cityscapes
    (e.g. a COCO or trainId ``category_id: 0``) gets the smallest free label id instead, its
    category id kept in :attr:`Label.category_id`, so its pixels never read back as void.
    Cached: the exporter asks once per frame with the same categories.
    """
    official = OFFICIAL.by_name
    planned = []
    for category in categories:
        fields: Mapping[str, Any] = category.metadata.get(METADATA_KEY) or {}
        planned.append((category, fields, int(fields.get("id", category.id))))
    used = {label_id for _, _, label_id in planned}
    result = {}
    for category, fields, label_id in planned:
        known = official.get(category.name)
        has_instances = bool(fields.get("hasInstances", category.isthing))
        moved_from_void = label_id == UNLABELED.id and "id" not in fields
        if moved_from_void:
            label_id = free_label_id(used, has_instances)
            used.add(label_id)
        result[category.id] = Label(
            name=category.name,
            id=label_id,
            trainId=int(
                fields.get("trainId", known.trainId if known and known.id == label_id else 255)
            ),
            category=category.supercategory or "",
            categoryId=int(fields.get("categoryId", 0)),
            hasInstances=has_instances,
            ignoreInEval=bool(fields.get("ignoreInEval", False)),
            color=category.color or (known.color if known else _color(category.id)),
            category_id=category.id if moved_from_void else None,
        )
    return result


def free_label_id(used: set[int], has_instances: bool) -> int:
    """The smallest label id above void that no label uses (and, for a class with instances,
    whose ``id * 1000 + 999`` fits instanceIds' uint16)."""
    top = 65 if has_instances else 255
    for label_id in range(1, top + 1):
        if label_id not in used:
            return label_id
    raise InputError(
        "no free Cityscapes label id for a category with id 0 (void's id): "
        f"ids 1-{top} are all taken"
    )


def _color(category_id: int) -> tuple[int, int, int]:
    red, green, blue = fallback_color(category_id)
    return red, green, blue


def table_document(labels: Iterable[Label]) -> list[dict[str, Any]]:
    """A label-table JSON document."""
    return [label.to_json() for label in labels]
