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
    STRICT,
    Confidence,
    Dataset,
    ImageKey,
    Importer,
    ItemError,
    MetaKey,
    Option,
    RejectedItem,
    Sample,
    Segment,
    UsageError,
    check_canvas,
    check_points,
    is_remote_location,
    location,
    read_json,
    read_png,
    report_activity,
    safe_join,
    smallest_index_dtype,
)

from . import shipped_schemas as shipped
from .labels import (
    OFFICIAL,
    LabelTable,
    categories_for,
    load_label_table,
)
from .layout import FILE_NAME, SOURCE_TYPES, city_of

INSTANCES_PER_CLASS = 1000
"""Instance ``k`` of class ``c`` is ``c * 1000 + k`` (cityscapesScripts' encoding)."""


@dataclass(frozen=True)
class FrameRef:
    """The files of one frame."""

    reference_id: str
    split: str
    city: str
    kind: str
    files: Mapping[str, str]
    frame: str = ""
    """The frame id in the file names (the reference id unless that had to be qualified)."""

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


ANNOTATION_KINDS = {"fine": "gtFine", "coarse": "gtCoarse"}
"""``--annotations`` choices and the tree each reads."""


def find_frames(root: Path, annotations: str = "auto") -> list[FrameRef | RejectedItem]:
    """Every frame under ``root``, sorted by split, city and frame id.

    One annotation tree is read, never a mix: ``annotations="fine"`` reads ``gtFine`` files
    only, ``"coarse"`` ``gtCoarse`` only, and ``"auto"`` (the default) ``gtFine`` when there is
    any, else ``gtCoarse`` -- so the official root, with both trees side by side, gives every
    frame its fine annotation. Frames are grouped by their folder (split and city) as well as
    their id, so one frame id in two cities gives two frames; their reference ids are then
    qualified as ``split/city/frame`` (``city/frame`` when the splits agree) to stay unique.
    A file that is a symlink leading out of ``root`` is a rejected item (``unsafe-path``).
    """
    found: dict[str, dict[tuple[str, str, str], dict[str, str]]] = {}
    escaped: list[RejectedItem] = []
    listed = 0
    files = [root] if root.is_file() else root.rglob("*_gt*_*")
    for path in files:
        match = FILE_NAME.match(path.name)
        if not match or match.group("type") not in SOURCE_TYPES:
            continue
        if path != root and not is_remote_location(path) and path.is_symlink():
            try:
                safe_join(root, path.relative_to(root).as_posix(), item=match.group("ref"))
            except ItemError as exc:
                escaped.append(RejectedItem(exc))
                continue
        split = path.parent.parent.name if path.parent.parent != path.parent else ""
        frame = match.group("ref")
        city = path.parent.name if path.parent != root or root.is_file() else city_of(frame, "")
        key = (split, city, frame)
        found.setdefault(match.group("kind"), {}).setdefault(key, {})[match.group("type")] = str(
            path
        )
        listed += 1
        report_activity("listing", listed, None, "files")
    kind = chosen_kind(found, annotations)
    frames = found.get(kind, {})
    places: dict[str, list[tuple[str, str]]] = {}
    for split, city, frame in frames:
        places.setdefault(frame, []).append((split, city))
    refs: list[FrameRef | RejectedItem] = []
    for key in sorted(frames):
        split, city, frame = key
        reference_id = qualified_reference_id(frame, split, city, places[frame])
        refs.append(FrameRef(reference_id, split, city, kind, frames[key], frame))
    return refs + escaped


def chosen_kind(found: Mapping[str, object], annotations: str) -> str:
    """The annotation tree to read (see :func:`find_frames`)."""
    if annotations == "auto":
        return "gtFine" if "gtFine" in found or "gtCoarse" not in found else "gtCoarse"
    if annotations not in ANNOTATION_KINDS:
        raise UsageError(
            f"--annotations must be auto, fine or coarse, not {annotations!r}"
        )  # pragma: no cover - the CLI's choice already refuses it
    return ANNOTATION_KINDS[annotations]


def qualified_reference_id(frame: str, split: str, city: str, places: list[tuple[str, str]]) -> str:
    """``frame`` when it is the only frame with that id, else qualified by its folders."""
    if len(places) == 1:
        return frame
    if len({s for s, _ in places}) == 1:
        return f"{city}/{frame}" if city else frame
    return "/".join(part for part in (split, city, frame) if part)


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
    table = load_label_table(location(labels_file)) if labels_file else OFFICIAL
    annotations = options.get("annotations") or "auto"
    frames = find_frames(path, annotations)
    if not frames:
        wanted = (
            "*_gtFine_* / *_gtCoarse_*"
            if annotations == "auto"
            else (f"*_{ANNOTATION_KINDS.get(annotations, annotations)}_*")
        )
        raise UsageError(f"{path}: no Cityscapes {wanted} files found")
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
        return read_png(location(ref.files["instanceIds"]), "gray", item=item).astype(np.uint16)
    if "labelIds" in ref.files:
        return read_png(location(ref.files["labelIds"]), "gray8", item=item).astype(np.uint16)
    if "labelTrainIds" in ref.files:
        train_ids = read_png(location(ref.files["labelTrainIds"]), "gray8", item=item)
        lut = np.full(256, ctx.table.unlabeled.id, dtype=np.uint16)
        for train_id, label in ctx.table.by_train_id.items():
            lut[train_id] = label.id
        return lut[train_ids]
    return rasterise_polygons(location(ref.files["polygons"]), ctx.table, item)


def rasterise_polygons(path: Path, table: LabelTable, item: str) -> np.ndarray:
    """An instanceIds array drawn from ``*_polygons.json`` as cityscapesScripts'
    ``json2instanceImg`` does: objects in file order (later on top), deleted objects skipped,
    ``...group`` labels as crowds, negative label ids (license plate) not drawn.

    The array is int32, so values of classes past 65 (``66 * 1000 > 65535``) do not wrap; a
    1001st instance of one class is an ``instance-id-overflow`` item error, never a wrap into
    the next class."""
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
            number = instances.get(name, 0)
            if number >= INSTANCES_PER_CLASS:
                raise ItemError(
                    f"more than {INSTANCES_PER_CLASS} {name!r} instances: the class*1000+k "
                    "instance encoding cannot number them",
                    rule="instance-id-overflow",
                    item=item,
                    file=str(path),
                )
            value = label.id * INSTANCES_PER_CLASS + number
            instances[name] = number + 1
        try:
            points = check_points(obj.get("polygon", []), width, height)
        except ValueError as exc:
            raise ItemError(
                f"object {obj.get('label')!r}: {exc}", rule="bad-polygon", item=item, file=str(path)
            ) from None
        if len(points) >= 2:
            drawer.polygon(points, fill=value)
    return np.asarray(image, dtype=np.int32)  # class*1000+k may pass 65535: no uint16 wrap


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
    ignored: dict[str, int] = {}
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
            if class_id != UNLABELED_ID:
                ignored[label.name] = ignored.get(label.name, 0) + int(counts[value])
            continue
        index_of[value] = len(segments) + 1  # provisional; void is placed first below
        segments.append(
            Segment(
                label.name,
                0,
                {
                    MetaKey.CATEGORY_ID: label.trainId if ctx.use_train_id else label.hub_id,
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
        file_name=f"{ref.frame or item}_leftImg8bit.png",
        metadata={
            ImageKey.IMAGE: {"id": item},
            ImageKey.CITYSCAPES: {"split": ref.split, "city": ref.city, "frame": ref.frame or item},
        },
        notes=[ignored_note(ignored)] if ignored else [],
        mask_file=ref.file,
    )


UNLABELED_ID = 0
"""Cityscapes' ``unlabeled`` class: void by definition, so not worth a note."""


def ignored_note(pixels_by_class: Mapping[str, int]) -> dict[str, Any]:
    """The note of a frame whose ignored-class pixels became void."""
    total = sum(pixels_by_class.values())
    names = ", ".join(sorted(pixels_by_class))
    return {
        "rule": "ignored-class-void",
        "pixels": total,
        "classes": dict(sorted(pixels_by_class.items())),
        "message": f"{total} pixels of ignored classes ({names}) became void",
        "hint": "pass --keep-ignored to keep ignored classes as segments",
    }


def check_label_ids(ref: FrameRef, instance_ids: np.ndarray) -> None:
    """Strict mode: labelIds must equal the class of instanceIds at every pixel."""
    label_ids = read_png(location(ref.files["labelIds"]), "gray8", item=ref.reference_id)
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


def detect(path: Path) -> Confidence:
    """A file or folder holding ``*_gtFine_*`` / ``*_gtCoarse_*`` files: names only Cityscapes
    uses, so certain."""
    if path.is_file():
        found = bool(FILE_NAME.match(path.name))
    else:
        found = any(FILE_NAME.match(p.name) for p in path.rglob("*_gt*_*.png"))
    return Confidence.CERTAIN if found else Confidence.NO


IMPORTER = Importer(
    schemas=shipped.SCHEMAS,
    name="cityscapes",
    description="Cityscapes gtFine/gtCoarse: 16-bit instanceIds, labelIds, labelTrainIds, polygons",
    scan=scan,
    load=load,
    detect=detect,
    options=(
        STRICT,
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
        Option(
            "annotations",
            "Which tree to read: fine (gtFine), coarse (gtCoarse), or auto: gtFine when "
            "present, else gtCoarse. Never a mix.",
            type="choice",
            choices=("auto", "fine", "coarse"),
            default="auto",
        ),
    ),
)
