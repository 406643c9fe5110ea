"""``segconvert info``: what a dataset holds, counted from its pixels, in one streamed pass.

Each item is reduced to a small :class:`ItemStats` (in a worker when ``jobs > 1``), and only
those are aggregated, so memory stays flat however many items there are: per category the
number of segments (instances; crowd regions counted apart too), the pixels they cover in the
index mask and the images they appear in; segments per image (min, median, max); the void
fraction; image sizes.

Pixel counts are what the hub's index mask holds: for instance formats whose instances overlap,
a pixel counts for the instance the importer's ``--overlap`` rule puts on top.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segconvert import schemas
from segconvert.api import OpenDataset, open
from segconvert.descriptors import ExportContext
from segconvert.items import ItemStatus
from segconvert.model import MetaKey, Sample
from segconvert.registry import Registry

ERRORS_SHOWN = 20
"""How many item errors an :class:`InfoReport` keeps in full (all are counted)."""


@dataclass(frozen=True)
class ItemStats:
    """What one item contributes: its size, void pixels and per-category counts."""

    width: int
    height: int
    segments: int
    void_pixels: int
    categories: dict[int | str, tuple[int, int, int]]
    """category id (or label, when a segment has no id) -> (segments, crowd segments, pixels)."""
    labels: dict[int | str, str]


def category_key(category_id: int | None, label: str) -> int | str:
    """The key a segment is counted under: its category id, else its label."""
    return category_id if category_id is not None else label


def item_stats(sample: Sample, context: ExportContext | None = None) -> ItemStats:
    """Count one sample's pixels and segments (runs in a worker; ``context`` is unused)."""
    counts = np.bincount(sample.mask.ravel(), minlength=1)
    per_category: dict[int | str, list[int]] = {}
    labels: dict[int | str, str] = {}
    void_pixels = 0
    listed = 0
    for segment in sample.segments:
        pixels = int(counts[segment.index]) if segment.index < len(counts) else 0
        if segment.is_void:
            void_pixels += pixels
            continue
        listed += 1
        key = category_key(segment.category_id, segment.label)
        labels.setdefault(key, segment.label)
        entry = per_category.setdefault(key, [0, 0, 0])
        entry[0] += 1
        entry[1] += int(bool((segment.metadata or {}).get(MetaKey.ISCROWD)))
        entry[2] += pixels
    return ItemStats(
        width=sample.width,
        height=sample.height,
        segments=listed,
        void_pixels=void_pixels,
        categories={k: (v[0], v[1], v[2]) for k, v in per_category.items()},
        labels=labels,
    )


@dataclass
class CategoryStats:
    """Totals of one category over the dataset."""

    instances: int = 0
    crowd: int = 0
    pixels: int = 0
    images: int = 0


def median_of(counter: Counter[int]) -> float | None:
    """The median of the values ``counter`` counts (``None`` when empty)."""
    total = sum(counter.values())
    if not total:
        return None
    middle = [(total - 1) // 2, total // 2]
    values: list[int] = []
    seen = 0
    for value in sorted(counter):
        seen += counter[value]
        while middle and middle[0] < seen:
            middle.pop(0)
            values.append(value)
    return (values[0] + values[1]) / 2


@dataclass
class InfoReport:
    """A dataset's facts, aggregated item by item."""

    source: str
    format: str
    categories: list[dict[str, Any]]
    """The taxonomy: ``id``, ``name``, ``isthing``, ``supercategory``, ``color``."""
    items: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[int | str, CategoryStats] = field(default_factory=dict)
    labels: dict[int | str, str] = field(default_factory=dict)
    segments_per_image: Counter[int] = field(default_factory=Counter)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    pixels: int = 0
    void_pixels: int = 0

    def add(self, stats: ItemStats) -> None:
        """Count one item in."""
        self.items += 1
        self.pixels += stats.width * stats.height
        self.void_pixels += stats.void_pixels
        self.segments_per_image[stats.segments] += 1
        self.sizes[(stats.width, stats.height)] += 1
        for key, (instances, crowd, pixels) in stats.categories.items():
            total = self.totals.setdefault(key, CategoryStats())
            total.instances += instances
            total.crowd += crowd
            total.pixels += pixels
            total.images += 1
            self.labels.setdefault(key, stats.labels.get(key, str(key)))

    def add_error(self, error: dict[str, Any]) -> None:
        """Count one item that could not be read."""
        self.failed += 1
        if len(self.errors) < ERRORS_SHOWN:
            self.errors.append(error)

    def category_rows(self) -> list[dict[str, Any]]:
        """One row per category of the taxonomy, then any counted category it lacks."""
        rows = []
        known: set[int | str] = set()
        for category in self.categories:
            known.add(category["id"])
            totals = self.totals.get(category["id"], CategoryStats())
            rows.append({**category, **totals.__dict__})
        for key, totals in self.totals.items():
            if key not in known:
                rows.append(
                    {
                        "id": key if isinstance(key, int) else None,
                        "name": self.labels.get(key, str(key)),
                        "isthing": None,
                        "supercategory": None,
                        "color": None,
                        "in_taxonomy": False,
                        **totals.__dict__,
                    }
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-able (the ``--json`` output), checked against schema
        ``segconvert-info``."""
        counts = self.segments_per_image
        document = {
            "source": self.source,
            "format": self.format,
            "items": self.items,
            "failed": self.failed,
            "errors": self.errors,
            "categories": self.category_rows(),
            "segments_per_image": {
                "min": min(counts) if counts else None,
                "median": median_of(counts),
                "max": max(counts) if counts else None,
                "total": sum(k * v for k, v in counts.items()),
            },
            "pixels": self.pixels,
            "void_pixels": self.void_pixels,
            "void_fraction": self.void_pixels / self.pixels if self.pixels else None,
            "image_sizes": [
                {"width": w, "height": h, "count": n} for (w, h), n in self.sizes.most_common()
            ],
        }
        schemas.validate(schemas.INFO_REPORT, document)
        return document

    def lines(self) -> list[str]:
        """The human-readable report."""
        data = self.to_json()
        per = data["segments_per_image"]
        sizes = data["image_sizes"]
        present = [row for row in data["categories"] if row["instances"]]
        lines = [
            f"{self.source}: {self.format}, {self.items} item(s)"
            + (f", {self.failed} unreadable" if self.failed else ""),
            f"segments per image: min {per['min']}, median {per['median']}, max {per['max']} "
            f"({per['total']} in all)",
            "void: "
            + (f"{data['void_fraction']:.2%} of {self.pixels} pixels" if self.pixels else "-"),
            "image sizes: "
            + ", ".join(f"{s['width']}x{s['height']} ({s['count']})" for s in sizes[:5])
            + (f", ... {len(sizes) - 5} more" if len(sizes) > 5 else ""),
            f"categories: {len(self.categories)} in the taxonomy, {len(present)} present "
            "(--json lists every one)",
            f"{'id':>6}  {'name':<24} {'kind':<5} {'instances':>9} {'crowd':>5} "
            f"{'images':>6} {'pixels':>12}",
        ]
        for row in present:
            kind = {True: "thing", False: "stuff"}.get(row["isthing"], "?")
            identifier = "" if row["id"] is None else row["id"]
            lines.append(
                f"{identifier!s:>6}  {str(row['name'])[:24]:<24} {kind:<5} {row['instances']:>9} "
                f"{row['crowd']:>5} {row['images']:>6} {row['pixels']:>12}"
            )
        for error in self.errors:
            lines.append(f"unreadable {error['item']}: [{error['rule']}] {error['message']}")
        return lines


def taxonomy_rows(dataset: OpenDataset) -> list[dict[str, Any]]:
    """The dataset's categories as JSON-able rows."""
    return [
        {
            "id": c.id,
            "name": c.name,
            "isthing": c.isthing,
            "supercategory": c.supercategory,
            "color": list(c.color) if c.color else None,
        }
        for c in dataset.categories
    ]


def dataset_info(
    source: str | os.PathLike[str],
    format: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    limit: int | None = None,
    items: str | os.PathLike[str] | Collection[str] | None = None,
    jobs: int | None = None,
    registry: Registry | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> InfoReport:
    """Count what the dataset at ``source`` holds (see the module doc).

    Items that cannot be read are counted in ``failed`` (the first few kept in ``errors``);
    the rest are counted as usual.
    """
    dataset = open(source, format, limit=limit, items=items, registry=registry, **(options or {}))
    report = InfoReport(str(source), dataset.format, taxonomy_rows(dataset))
    for done, (status, result) in enumerate(dataset.map_items(item_stats, jobs=jobs), 1):
        if status == ItemStatus.OK.value:
            report.add(result)
        else:
            report.add_error(result)
        if progress:
            progress(done, dataset.size)
    return report
