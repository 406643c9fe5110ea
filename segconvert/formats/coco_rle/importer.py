"""Read COCO instance masks (RLE or polygons) into the hub, flattening overlaps by rule.

Accepted: a COCO instances JSON (compressed RLE, uncompressed RLE and polygons mixed), a
COCO results file (a bare list with ``score``), LVIS-style JSON (no ``iscrowd``), a single
SA-1B-style per-image JSON, or a folder of them. Stored ``area``/``bbox`` are never trusted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from segconvert import (
    DEFAULT_VOID_LABEL,
    MAX_IMAGE_PIXELS,
    Category,
    Confidence,
    Dataset,
    Detection,
    ImageKey,
    Importer,
    InputError,
    ItemError,
    MetaKey,
    Option,
    RejectedItem,
    Sample,
    Segment,
    categories_from_coco,
    compressed_rle,
    decode_compressed_rle,
    first_item_keys,
    json_first_item,
    json_root,
    location,
    placeholder_categories,
    read_json,
    reference_id_from_names,
    reject,
    rle_area,
    smallest_index_dtype,
)

from . import shipped_schemas as shipped
from .overlap import RULES, flatten

CATEGORIES_HELP = (
    "COCO JSON whose categories to use (e.g. panoptic_coco_categories.json, or the ground truth "
    "of a results file, whose images are then used too)."
)

SA1B_CATEGORY_ID = 1
CATEGORIES_FILE = "categories.json"
"""Written next to per-image files by the exporter; read back by the importer."""
ANNOTATION_KEYS = (
    "id",
    "image_id",
    "category_id",
    "segmentation",
    "area",
    "bbox",
    "iscrowd",
    "score",
)


@dataclass(frozen=True)
class RleRef:
    """One image: its record and its annotations (or, for SA-1B folders, its JSON file)."""

    reference_id: str
    file: str
    image: Mapping[str, Any] | None = None
    annotations: list[Any] = field(default_factory=list)
    image_id: Any = None
    per_image_file: bool = False


@dataclass(frozen=True)
class RleContext:
    """Category names and the overlap rule."""

    categories: Mapping[int, str]
    overlap: str
    default_category: int | None = None
    void_label: str = DEFAULT_VOID_LABEL


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """Read the JSON (or list the per-image JSONs) and group annotations by image."""
    overlap = options.get("overlap") or RULES[0]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.name != CATEGORIES_FILE)
        if not files:
            raise InputError(f"{path}: no per-image JSON files in this folder", file=str(path))
        if len(files) == 1:  # e.g. our own output folder holding instances.json
            return scan(files[0], options)
        refs = [RleRef(p.stem, str(p), per_image_file=True) for p in files]
        return per_image_dataset(refs, options, overlap, path / CATEGORIES_FILE)
    document = read_json(path)
    file = str(path)
    if isinstance(document, dict) and "image" in document and "annotations" in document:
        refs = [RleRef(path.stem, file, per_image_file=True)]
        return per_image_dataset(refs, options, overlap, path.parent / CATEGORIES_FILE)
    if isinstance(document, list):  # a results file
        annotations, images, categories_doc = document, None, None
    elif isinstance(document, dict) and isinstance(document.get("annotations"), list):
        annotations, images = document["annotations"], document.get("images")
        categories_doc = document.get("categories")
    else:
        raise InputError(f"{file}: not a COCO instances/results file (no annotations)", file=file)
    reference = read_json(location(options["categories"])) if options.get("categories") else None
    if reference is not None:
        categories = categories_from_coco(reference, options["categories"])
        if images is None and isinstance(reference, dict):
            images = reference.get("images")  # a results file paired with its ground truth
    elif categories_doc is not None:
        categories = categories_from_coco(categories_doc, file)
    else:
        categories = placeholder_categories(
            a.get("category_id") for a in annotations if isinstance(a, dict)
        )
    metadata = {
        k: document[k] for k in ImageKey.COCO_BLOCKS if isinstance(document, dict) and k in document
    }
    grouped: list[RleRef | RejectedItem] = list(group_by_image(annotations, images, file))
    return Dataset(
        categories=categories,
        items=grouped,
        context=RleContext({c.id: c.name for c in categories}, overlap),
        metadata=metadata,
        size=len(grouped),
    )


def per_image_dataset(
    refs: list[RleRef], options: Mapping[str, Any], overlap: str, categories_file: Path
) -> Dataset:
    """A dataset of SA-1B-style files. With categories (``--categories``, or the
    ``categories.json`` our exporter writes next to them) annotations keep their
    ``category_id``; without, every mask gets the one ``--label``."""
    source = location(options["categories"]) if options.get("categories") else categories_file
    if source.is_file():
        categories = categories_from_coco(read_json(source), str(source))
        return Dataset(
            categories=categories,
            items=refs,
            context=RleContext({c.id: c.name for c in categories}, overlap),
            size=len(refs),
        )
    label = options.get("label") or "object"
    category = Category(id=SA1B_CATEGORY_ID, name=label, isthing=True)
    return Dataset(
        categories=[category],
        items=refs,
        context=RleContext({SA1B_CATEGORY_ID: label}, overlap, default_category=SA1B_CATEGORY_ID),
        size=len(refs),
    )


def group_by_image(
    annotations: list[Any], images: Any, file: str
) -> Iterator[RleRef | RejectedItem]:
    """One reference per image (in ``images`` order, then unlisted image ids in file order)."""
    by_image: dict[Any, list[Any]] = {}
    for annotation in annotations:
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        by_image.setdefault(image_id, []).append(annotation)
    listed: dict[Any, Any] = {}
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict) and "id" in image:
                listed.setdefault(image["id"], image)
    for image_id, image in listed.items():
        reference = reference_id_from_names(image.get("file_name"), fallback=image_id)
        yield RleRef(reference, file, image, by_image.pop(image_id, []), image_id)
    for image_id, group in by_image.items():
        reference = str(image_id)
        if image_id is None:
            message = f"{len(group)} annotation(s) without an image_id"
            yield reject("no-image-id", "schema", message, file=file)
        elif images is not None:
            message = f"image_id {image_id!r} has no image entry"
            yield reject(reference, "unknown-image", message, file=file)
        else:
            yield RleRef(reference, file, None, group, image_id)


def image_size(ref: RleRef, image: Mapping[str, Any], annotations: list[Any]) -> tuple[int, int]:
    """(height, width) from the image record, else from the first RLE's ``size``."""
    height, width = image.get("height"), image.get("width")
    if not (isinstance(height, int) and isinstance(width, int)):
        sizes = [
            a["segmentation"].get("size")
            for a in annotations
            if isinstance(a, dict) and isinstance(a.get("segmentation"), dict)
        ]
        if not sizes or not isinstance(sizes[0], list) or len(sizes[0]) != 2:
            raise ItemError(
                "image size unknown: no image entry and no RLE size",
                rule="image-size",
                item=ref.reference_id,
                file=ref.file,
            )
        height, width = int(sizes[0][0]), int(sizes[0][1])
    if height <= 0 or width <= 0 or height * width > MAX_IMAGE_PIXELS:
        raise ItemError(
            f"image size {width}x{height} is out of range",
            rule="png-too-large",
            item=ref.reference_id,
            file=ref.file,
        )
    return height, width


def read_per_image_file(ref: RleRef) -> tuple[Mapping[str, Any], list[Any]]:
    """The ``image`` record and ``annotations`` of an SA-1B-style file."""
    document = read_json(location(ref.file))
    if not (
        isinstance(document, dict)
        and isinstance(document.get("image"), dict)
        and isinstance(document.get("annotations"), list)
    ):
        raise ItemError(
            "per-image JSON needs an 'image' object and an 'annotations' list",
            rule="schema",
            item=ref.reference_id,
            file=ref.file,
        )
    return document["image"], document["annotations"]


def load(ref: RleRef, ctx: RleContext) -> Sample:
    """Decode one image's instances and flatten them into an index mask."""
    item = ref.reference_id
    if ref.per_image_file:
        image, annotations = read_per_image_file(ref)
        image_id = image.get("image_id", image.get("id"))
        image = {**image, "id": image_id}
    else:
        image, annotations, image_id = (
            ref.image or {"id": ref.image_id},
            ref.annotations,
            ref.image_id,
        )
    height, width = image_size(ref, image, annotations)
    rles, areas, scores, segments = [], [], [], []
    for position, annotation in enumerate(annotations):
        known_id = annotation.get("id", position) if isinstance(annotation, dict) else position
        name = f"annotation {known_id}"
        if not isinstance(annotation, dict):
            raise ItemError(f"{name} is not an object", rule="schema", item=item, file=ref.file)
        category_id = annotation.get("category_id", ctx.default_category)
        if not isinstance(category_id, int) or category_id not in ctx.categories:
            raise ItemError(
                f"{name} has unknown category_id {category_id!r}",
                rule="unknown-category",
                item=item,
                file=ref.file,
            )
        try:
            rle = compressed_rle(annotation.get("segmentation"), height, width)
        except ValueError as exc:
            raise ItemError(
                f"{name}: {exc}", rule="bad-segmentation", item=item, file=ref.file
            ) from None
        rles.append(rle)
        areas.append(rle_area(rle))
        scores.append(annotation.get("score"))
        segments.append(segment_for(annotation, category_id, ctx))
    try:
        flat = flatten(
            len(rles),
            areas,
            lambda i: decode_compressed_rle(rles[i]),
            ctx.overlap,
            scores,
            (height, width),
            smallest_index_dtype(len(rles) + 1),
        )
    except ValueError as exc:
        raise ItemError(str(exc), rule="overlap", item=item, file=ref.file) from None
    has_void = flat.mask.size > sum(flat.visible)
    mask = flat.mask if has_void else flat.mask - 1  # no uncovered pixel: instances from 0
    for position, segment in enumerate(segments):
        segment.index = position + int(has_void)
    if has_void:
        segments.insert(0, Segment(ctx.void_label, 0, {MetaKey.VOID: True}))
    return Sample(
        reference_id=item,
        width=width,
        height=height,
        mask=mask,
        segments=segments,
        file_name=image.get("file_name"),
        metadata={ImageKey.IMAGE: dict(image)},
        notes=overlap_notes(annotations, flat.areas, flat.visible, ctx.overlap),
    )


def segment_for(annotation: Mapping[str, Any], category_id: int, ctx: RleContext) -> Segment:
    """The hub segment of one annotation (index set later)."""
    metadata: dict[str, Any] = {MetaKey.CATEGORY_ID: category_id}
    if "iscrowd" in annotation:
        metadata[MetaKey.ISCROWD] = int(bool(annotation["iscrowd"]))
    if "id" in annotation:
        metadata[MetaKey.SOURCE_ID] = annotation["id"]
    if annotation.get("score") is not None:
        metadata[MetaKey.SCORE] = annotation["score"]
    metadata.update({k: v for k, v in annotation.items() if k not in ANNOTATION_KEYS})
    return Segment(ctx.categories[category_id], 0, metadata)


def overlap_notes(
    annotations: list[Any], areas: list[int], visible: list[int], rule: str
) -> list[dict[str, Any]]:
    """Notes for the report: occluded pixels, instances hidden entirely, empty instances."""
    ids = [a.get("id", i) for i, a in enumerate(annotations)]
    notes: list[dict[str, Any]] = []
    occluded = sum(a - v for a, v in zip(areas, visible, strict=True))
    if occluded:
        touched = sum(a > v for a, v in zip(areas, visible, strict=True))
        notes.append(
            {
                "rule": "occluded",
                "occluded_pixels": occluded,
                "instances": touched,
                "message": f"{occluded} pixels of {touched} instance(s) lie under others "
                f"(--overlap {rule})",
            }
        )
    hidden = [i for i, a, v in zip(ids, areas, visible, strict=True) if a and not v]
    if hidden:
        notes.append(
            {
                "rule": "hidden-instance",
                "ids": hidden,
                "message": f"instance(s) {hidden} are entirely under others: kept as "
                "segments without pixels",
            }
        )
    empty = [i for i, a in zip(ids, areas, strict=True) if not a]
    if empty:
        notes.append(
            {
                "rule": "empty-instance",
                "ids": empty,
                "message": f"instance(s) {empty} have no pixels in the source",
            }
        )
    return notes


def detect(path: Path) -> Detection:
    """A COCO instances/results/LVIS JSON or SA-1B file whose first annotation has a
    ``segmentation``, or a folder of SA-1B files (streamed: only up to the first annotation)."""
    if path.is_dir():
        # lazily: an SA-1B folder holds millions of files, and one of them tells
        jsons = (p for p in path.glob("*.json") if p.name != CATEGORIES_FILE)
        first_two = list(islice(jsons, 2))
        found = detect(first_two[0]) if first_two else Detection(Confidence.NO)
        if len(first_two) <= 1 or found.what == SA1B_FILE:
            return found
        # not a folder of SA-1B files: name the instances JSONs in it, to pass one of them
        files = sorted([*first_two, *jsons])
        names = tuple(f.name for f in files if detect(f).confidence >= Confidence.LIKELY)
        return Detection(Confidence.LIKELY, "COCO instances JSONs", names) if names else found
    if path.suffix != ".json":
        return Detection(Confidence.NO)
    if json_root(path) == "list":
        if "segmentation" in first_item_keys(path, "item"):
            return Detection(Confidence.LIKELY, "a COCO results file")
        return Detection(Confidence.NO)
    annotation = first_item_keys(path, "annotations.item")
    if "segmentation" not in annotation:
        return Detection(Confidence.NO)
    # SA-1B annotations have no image_id; only then look for the top-level "image" record
    if "image_id" not in annotation and isinstance(json_first_item(path, "image"), dict):
        return Detection(Confidence.CERTAIN, SA1B_FILE)
    return Detection(Confidence.CERTAIN, "a COCO instances JSON")


SA1B_FILE = "an SA-1B per-image JSON"


IMPORTER = Importer(
    schemas=shipped.SCHEMAS,
    name="coco-rle",
    aliases=("coco-instances", "coco_instances"),
    description="COCO instances/results/LVIS JSON or SA-1B per-image JSONs (RLE or polygons)",
    scan=scan,
    load=load,
    detect=detect,
    options=(
        Option(
            "overlap",
            "Which instance keeps an overlapping pixel.",
            type="choice",
            default=RULES[0],
            choices=RULES,
        ),
        Option(
            "label",
            "Label of every mask of SA-1B-style files (they have no categories).",
            default="object",
        ),
        Option("categories", CATEGORIES_HELP, type="path"),
    ),
)
