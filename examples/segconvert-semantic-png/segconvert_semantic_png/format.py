"""Read and write ``labels.json``/``labels.txt`` + single-channel class-index PNGs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import (
    Category,
    Dataset,
    ExportContext,
    Exporter,
    Importer,
    InputError,
    ItemError,
    MetaKey,
    Sample,
    Segment,
    atomic_write_json,
    read_json,
    read_png,
    safe_join,
    smallest_index_dtype,
    write_png,
)

DEFAULT_IGNORE_INDEX = 255


@dataclass(frozen=True)
class Labels:
    """Class names by index (``None`` for unused indices), the void index, colours."""

    names: tuple[str | None, ...]
    ignore_index: int = DEFAULT_IGNORE_INDEX
    palette: tuple[tuple[int, int, int], ...] = ()


def read_labels(root: Path) -> Labels:
    """``labels.json`` (classes, ignore_index, palette) or ``labels.txt`` (a name per line)."""
    if (root / "labels.json").is_file():
        document = read_json(root / "labels.json")
        if not isinstance(document, dict) or not isinstance(document.get("classes"), list):
            raise InputError(f"{root / 'labels.json'}: needs a 'classes' list", file=str(root))
        palette = tuple((int(c[0]), int(c[1]), int(c[2])) for c in document.get("palette", []))
        ignore_index = int(document.get("ignore_index", DEFAULT_IGNORE_INDEX))
        return Labels(tuple(document["classes"]), ignore_index, palette)
    if (root / "labels.txt").is_file():
        names = [line.strip() for line in (root / "labels.txt").read_text().splitlines()]
        return Labels(tuple(n or None for n in names))
    raise InputError(f"{root}: no labels.json or labels.txt", file=str(root))


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """List the PNGs; categories come from the labels file."""
    labels = read_labels(path)
    folder = path / "masks" if (path / "masks").is_dir() else path
    pngs = sorted(folder.glob("*.png"))
    categories = [
        Category(
            id=index,
            name=name,
            isthing=False,
            color=labels.palette[index] if index < len(labels.palette) else None,
        )
        for index, name in enumerate(labels.names)
        if name is not None and index != labels.ignore_index
    ]
    return Dataset(
        categories=categories, items=[str(p) for p in pngs], context=labels, size=len(pngs)
    )


def load(ref: str, labels: Labels) -> Sample:
    """One PNG: a Segment per class present, void for the ignore index."""
    path = Path(ref)
    item = path.stem
    values = read_png(path, "index", item=item)
    present = np.flatnonzero(np.bincount(values.ravel(), minlength=256)).tolist()
    void = labels.ignore_index in present
    classes = [v for v in present if v != labels.ignore_index]
    unknown = [v for v in classes if v >= len(labels.names) or labels.names[v] is None]
    if unknown:
        raise ItemError(
            f"class indices {unknown} are not in the labels file",
            rule="unknown-category",
            item=item,
            file=ref,
        )
    lut = np.zeros(256, dtype=smallest_index_dtype(len(present)))
    segments = [Segment("void", 0, {MetaKey.VOID: True})] if void else []
    for value in classes:
        lut[value] = len(segments)
        segments.append(
            Segment(labels.names[value] or "", len(segments), {MetaKey.CATEGORY_ID: value})
        )
    height, width = values.shape
    return Sample(item, width, height, lut[values], segments)


def write_item(sample: Sample, ctx: ExportContext) -> None:
    """Write the sample as a class-index PNG."""
    table = np.full(max(s.index for s in sample.segments) + 1, DEFAULT_IGNORE_INDEX, np.uint8)
    for segment in sample.segments:
        if segment.is_void:
            continue
        category = segment.category_id
        if category is None or not 0 <= category < DEFAULT_IGNORE_INDEX:
            raise ItemError(
                f"category id {category} does not fit a class-index PNG (0-254)",
                rule="label-id-overflow",
                item=sample.reference_id,
            )
        table[segment.index] = category
    path = safe_join(ctx.output / "masks", f"{sample.reference_id}.png", item=sample.reference_id)
    write_png(path, np.take(table, sample.mask))


def write_dataset(records: Iterable[None], ctx: ExportContext) -> list[Path]:
    """Write ``labels.json`` (names at their category ids)."""
    for _ in records:
        pass
    size = max([c.id + 1 for c in ctx.categories if 0 <= c.id < DEFAULT_IGNORE_INDEX], default=0)
    names: list[str | None] = [None] * size
    palette = [[0, 0, 0]] * size
    for category in ctx.categories:
        if 0 <= category.id < size:
            names[category.id] = category.name
            palette[category.id] = list(category.color or (0, 0, 0))
    path = ctx.output / "labels.json"
    atomic_write_json(
        path, {"classes": names, "ignore_index": DEFAULT_IGNORE_INDEX, "palette": palette}, indent=1
    )
    return [path, ctx.output / "masks"]


def detect(path: Path) -> bool:
    """A folder with a labels file and PNGs."""
    return path.is_dir() and ((path / "labels.json").is_file() or (path / "labels.txt").is_file())


IMPORTER = Importer(
    name="semantic-png",
    description="Folder of single-channel class-index PNGs + labels.json/labels.txt",
    scan=scan,
    load=load,
    detect=detect,
)

EXPORTER = Exporter(
    name="semantic-png",
    description="Folder of single-channel class-index PNGs + labels.json",
    write_item=write_item,
    write_dataset=write_dataset,
)
