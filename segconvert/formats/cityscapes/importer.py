"""Read a Cityscapes gtFine tree (or one split or city folder of it) into the hub.

Per frame, the segments come from ``*_instanceIds.png`` (16-bit); where there is none,
from ``*_labelIds.png``, then ``*_labelTrainIds.png``, then ``*_polygons.json`` rasterised as
cityscapesScripts does. Instance values: ``v >= 1000`` is instance ``v`` of class ``v // 1000``;
``v < 1000`` on a class with instances is a crowd (group) segment; otherwise the stuff class
``v``. Classes with ``ignoreInEval`` become void unless ``--keep-ignored``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segconvert import (
    DEFAULT_VOID_LABEL,
    Dataset,
    Importer,
    ItemError,
    MetaKey,
    Option,
    Sample,
    Segment,
    UsageError,
    check_canvas,
    check_points,
    read_json,
    read_png,
    smallest_index_dtype,
)

from .labels import (
    OFFICIAL,
    LabelTable,
    categories_for,
    load_label_table,
)
from .layout import FILE_NAME, SOURCE_TYPES, city_of


@dataclass(frozen=True)
class FrameRef:
    """The files of one frame."""

    reference_id: str
    split: str
    city: str
    kind: str
    files: Mapping[str, str]

    @property
    def file(self) -> str:
        """The file the segments are read from."""
        return next(self.files[t] for t in SOURCE_TYPES if t in self.files)


@dataclass(frozen=True)
class CityscapesContext:
    """The label table and how to map it."""

    table: LabelTable
    use_train_id: bool
    keep_ignored: bool
    strict: bool = False
    void_label: str = DEFAULT_VOID_LABEL


def find_frames(root: Path) -> list[FrameRef]:
    """Every frame under ``root``, grouped by reference id, sorted by split, city and id."""
    frames: dict[tuple[str, str, str], dict[str, str]] = {}
    kinds: dict[tuple[str, str, str], str] = {}
    files = [root] if root.is_file() else root.rglob("*_gt*_*")
    for path in files:
        match = FILE_NAME.match(path.name)
        if not match or match.group("type") not in SOURCE_TYPES:
            continue
        split = path.parent.parent.name if path.parent.parent != path.parent else ""
        reference_id = match.group("ref")
        key = (split, city_of(reference_id, path.parent.name), reference_id)
        frames.setdefault(key, {})[match.group("type")] = str(path)
        kinds[key] = match.group("kind")
    refs = []
    for key in sorted(frames):
        split, city, reference_id = key
        refs.append(FrameRef(reference_id, split, city, kinds[key], frames[key]))
    return refs


def written_label_table(path: Path) -> Path | None:
    """The ``labels.json`` our exporter wrote next to ``gtFine/``, if ``path`` is such an output."""
    for folder in (path, path.parent) if path.name in ("gtFine", "gtCoarse") else (path,):
        if folder.is_dir() and (folder / "labels.json").is_file():
            return folder / "labels.json"
    return None


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """List the frames and build the taxonomy."""
    use_train_id = bool(options.get("use_train_id"))
    keep_ignored = bool(options.get("keep_ignored"))
    if use_train_id and keep_ignored:
        raise UsageError(
            "--keep-ignored cannot be combined with --use-train-id "
            "(ignored labels share trainId 255)"
        )
    labels_file = options.get("labels") or written_label_table(path)
    table = load_label_table(Path(labels_file)) if labels_file else OFFICIAL
    frames = find_frames(path)
    if not frames:
        raise UsageError(f"{path}: no Cityscapes *_gtFine_* files found")
    return Dataset(
        categories=categories_for(table, use_train_id=use_train_id, keep_ignored=keep_ignored),
        items=frames,
        context=CityscapesContext(
            table, use_train_id, keep_ignored, strict=bool(options.get("strict"))
        ),
        size=len(frames),
    )


def read_values(ref: FrameRef, ctx: CityscapesContext) -> np.ndarray:
    """The frame as an instanceIds-style array (class ids below 1000, instances above)."""
    item = ref.reference_id
    if "instanceIds" in ref.files:  # officially 16-bit; 8-bit files (class ids only) accepted
        return read_png(Path(ref.files["instanceIds"]), "gray", item=item).astype(np.uint16)
    if "labelIds" in ref.files:
        return read_png(Path(ref.files["labelIds"]), "gray8", item=item).astype(np.uint16)
    if "labelTrainIds" in ref.files:
        train_ids = read_png(Path(ref.files["labelTrainIds"]), "gray8", item=item)
        lut = np.full(256, ctx.table.unlabeled.id, dtype=np.uint16)
        for train_id, label in ctx.table.by_train_id.items():
            lut[train_id] = label.id
        return lut[train_ids]
    return rasterise_polygons(Path(ref.files["polygons"]), ctx.table, item)


def rasterise_polygons(path: Path, table: LabelTable, item: str) -> np.ndarray:
    """An instanceIds array drawn from ``*_polygons.json`` as cityscapesScripts'
    ``json2instanceImg`` does: objects in file order (later on top), deleted objects skipped,
    ``...group`` labels as crowds, negative label ids (license plate) not drawn."""
    document = read_json(path)
    try:
        width, height = document["imgWidth"], document["imgHeight"]
        objects = document["objects"]
    except (KeyError, TypeError, ValueError):
        raise ItemError(
            "polygons JSON lacks imgWidth/imgHeight/objects",
            rule="schema",
            item=item,
            file=str(path),
        ) from None
    try:
        check_canvas(width, height)
    except ValueError as exc:
        raise ItemError(str(exc), rule="image-too-large", item=item, file=str(path)) from None
    by_name = table.by_name
    image = Image.new("I", (width, height), table.unlabeled.id)
    drawer = ImageDraw.Draw(image)
    instances: dict[str, int] = {}
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("deleted"):
            continue
        name, group = str(obj.get("label")), False
        if name not in by_name and name.endswith("group"):
            name, group = name[: -len("group")], True
        label = by_name.get(name)
        if label is None:
            raise ItemError(
                f"unknown label {obj.get('label')!r}",
                rule="unknown-category",
                item=item,
                file=str(path),
            )
        if label.id < 0:
            continue
        value = label.id
        if label.hasInstances and not group:
            value = label.id * 1000 + instances.get(name, 0)
            instances[name] = instances.get(name, 0) + 1
        try:
            points = check_points(obj.get("polygon", []), width, height)
        except ValueError as exc:
            raise ItemError(
                f"object {obj.get('label')!r}: {exc}", rule="bad-polygon", item=item, file=str(path)
            ) from None
        if len(points) >= 2:
            drawer.polygon(points, fill=value)
    return np.asarray(image, dtype=np.int32).astype(np.uint16)


def load(ref: FrameRef, ctx: CityscapesContext) -> Sample:
    """One frame: a segment per instance, crowd region and stuff class; void for the rest."""
    item = ref.reference_id
    values = read_values(ref, ctx)
    height, width = values.shape
    if ctx.strict and "instanceIds" in ref.files and "labelIds" in ref.files:
        check_label_ids(ref, values)
    counts = np.bincount(values.ravel())
    present = np.flatnonzero(counts)
    labels = ctx.table.by_id
    segments: list[Segment] = []
    index_of = np.zeros(len(counts), dtype=np.int64)
    void_values = []
    for value in present.tolist():
        class_id = value // 1000 if value >= 1000 else value
        label = labels.get(class_id)
        if label is None:
            raise ItemError(
                f"value {value}: label id {class_id} is not in the label table",
                rule="unknown-category",
                item=item,
                file=ref.file,
            )
        if label.ignoreInEval and not ctx.keep_ignored:
            void_values.append(value)
            continue
        index_of[value] = len(segments) + 1  # provisional; void is placed first below
        segments.append(
            Segment(
                label.name,
                0,
                {
                    MetaKey.CATEGORY_ID: label.trainId if ctx.use_train_id else label.id,
                    MetaKey.ISCROWD: int(value < 1000 and label.hasInstances),
                    MetaKey.SOURCE_ID: value,
                },
            )
        )
    shift = 0 if void_values else -1
    for position, segment in enumerate(segments):
        segment.index = position + 1 + shift
    index_of += shift
    index_of[void_values] = 0
    if void_values:
        segments.insert(0, Segment(ctx.void_label, 0, {MetaKey.VOID: True}))
    lut = index_of.clip(min=0).astype(smallest_index_dtype(len(segments)))
    return Sample(
        reference_id=item,
        width=width,
        height=height,
        mask=np.take(lut, values),
        segments=segments,
        file_name=f"{item}_leftImg8bit.png",
        metadata={"image": {"id": item}, "cityscapes": {"split": ref.split, "city": ref.city}},
    )


def check_label_ids(ref: FrameRef, instance_ids: np.ndarray) -> None:
    """Strict mode: labelIds must equal the class of instanceIds at every pixel."""
    label_ids = read_png(Path(ref.files["labelIds"]), "gray8", item=ref.reference_id)
    if label_ids.shape != instance_ids.shape:
        raise ItemError(
            f"labelIds is {label_ids.shape}, instanceIds {instance_ids.shape}",
            rule="mask-size",
            item=ref.reference_id,
            file=ref.files["labelIds"],
        )
    classes = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
    differing = int((classes != label_ids).sum())
    if differing:
        raise ItemError(
            f"labelIds disagree with instanceIds at {differing} pixels",
            rule="labelids-mismatch",
            item=ref.reference_id,
            file=ref.files["labelIds"],
        )


def detect(path: Path) -> bool:
    """A file or folder holding ``*_gtFine_*`` / ``*_gtCoarse_*`` files."""
    if path.is_file():
        return bool(FILE_NAME.match(path.name))
    return any(FILE_NAME.match(p.name) for p in path.rglob("*_gt*_*.png"))


IMPORTER = Importer(
    name="cityscapes",
    description="Cityscapes gtFine/gtCoarse: 16-bit instanceIds, labelIds, labelTrainIds, polygons",
    scan=scan,
    load=load,
    detect=detect,
    options=(
        Option(
            "use-train-id",
            "Category ids are trainIds (as csCreatePanopticImgs --use-train-id).",
            type="flag",
            default=False,
        ),
        Option(
            "keep-ignored",
            "Keep classes with ignoreInEval as segments instead of void.",
            type="flag",
            default=False,
        ),
        Option(
            "labels",
            "A Cityscapes-style label table (JSON) instead of the official one.",
            type="path",
        ),
    ),
)
