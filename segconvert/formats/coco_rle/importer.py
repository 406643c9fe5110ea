"""Read COCO instance masks (RLE or polygons) into the hub, flattening overlaps by rule.

Accepted: a COCO instances JSON (compressed RLE, uncompressed RLE and polygons mixed), a
COCO results file (a bare list with ``score``), LVIS-style JSON (no ``iscrowd``), a single
SA-1B-style per-image JSON, or a folder of them. Each record's own ``area``/``bbox`` travel
with its segment and come back as they were; overlaps are flattened by ``--overlap`` and the
pixels an instance has under others travel with it too (unless ``--drop-hidden``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from segconvert import (
    ARRAY_START,
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
    first_item_keys,
    intervals_of,
    json_first_item,
    json_root,
    location,
    placeholder_categories,
    read_json,
    read_spans,
    reference_id_from_names,
    reject,
    segmentation_runs,
    smallest_index_dtype,
    stream_top_level,
)

from . import shipped_schemas as shipped
from .overlap import RULES, Flattened, flatten

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
    """One image: its record and where its annotations are (byte spans of ``file``), or, for
    SA-1B-style files, its JSON file."""

    reference_id: str
    file: str
    image: Mapping[str, Any] | None = None
    spans: tuple[array[int], array[int]] | None = None
    image_id: Any = None
    per_image_file: bool = False


@dataclass(frozen=True)
class RleContext:
    """Category names, the overlap rule and whether hidden pixels travel."""

    categories: Mapping[int, str]
    overlap: str
    default_category: int | None = None
    void_label: str = DEFAULT_VOID_LABEL
    keep_hidden: bool = True


RESULTS_DOCUMENT = "results"
"""``Dataset.metadata[DOCUMENT_KEY]`` of a results source (a JSON list of detections), so the
way back writes a results list again."""
DOCUMENT_KEY = ImageKey.COCO_DOCUMENT


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """Index the JSON in one streamed pass (or list the per-image JSONs)."""
    overlap = options.get("overlap") or RULES[0]
    keep_hidden = not options.get("drop_hidden")
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.name != CATEGORIES_FILE)
        if not files:
            raise InputError(f"{path}: no per-image JSON files in this folder", file=str(path))
        if len(files) == 1:  # e.g. our own output folder holding instances.json
            return scan(files[0], options)
        refs = [RleRef(p.stem, str(p), per_image_file=True) for p in files]
        return per_image_dataset(refs, options, overlap, path / CATEGORIES_FILE)
    index = index_document(path)
    file = str(path)
    if index.per_image:
        refs = [RleRef(path.stem, file, per_image_file=True)]
        return per_image_dataset(refs, options, overlap, path.parent / CATEGORIES_FILE)
    images, categories_doc = index.images, index.values.get("categories")
    notes: list[dict[str, Any]] = []
    categories_file = location(options["categories"]) if options.get("categories") else None
    if categories_file is None and index.results and (path.parent / CATEGORIES_FILE).is_file():
        categories_file = path.parent / CATEGORIES_FILE  # written by our exporter with results
    if categories_file is not None:
        reference = read_json(categories_file)
        categories = categories_from_coco(reference, str(categories_file))
        if images is None and isinstance(reference, dict):
            images = reference.get("images")  # a results file paired with its ground truth
    elif categories_doc is not None:
        categories = categories_from_coco(categories_doc, file)
    else:
        things = things_in(index)
        categories = placeholder_categories(index.category_ids, things=things)
        notes.append(placeholder_note(categories, file))
    metadata: dict[str, Any] = {
        k: index.values[k] for k in ImageKey.COCO_BLOCKS if k in index.values
    }
    if index.results:
        metadata[DOCUMENT_KEY] = RESULTS_DOCUMENT
    grouped: list[RleRef | RejectedItem] = list(group_by_image(index.spans, images, file))
    return Dataset(
        categories=categories,
        items=grouped,
        context=RleContext({c.id: c.name for c in categories}, overlap, keep_hidden=keep_hidden),
        metadata=metadata,
        size=len(grouped),
        notes=notes,
    )


def placeholder_note(categories: list[Category], file: str) -> dict[str, Any]:
    """The note announcing invented categories."""
    things = [c.id for c in categories if c.isthing]
    return {
        "rule": "placeholder-categories",
        "file": file,
        "ids": [c.id for c in categories],
        "message": f"{file} names no categories: made up {len(categories)} placeholder(s) "
        f"'category-<id>' ({len(things)} thing(s): ids with several instances in one image); "
        "pass --categories FILE to use real ones",
    }


@dataclass
class DocumentIndex:
    """What one streamed pass over an instances/results JSON keeps: the small top-level
    values, the image records, and per image id the byte spans of its annotations."""

    path: Path

    values: dict[str, Any] = field(default_factory=dict)
    images: list[Any] | None = None
    spans: dict[Any, tuple[array[int], array[int]]] = field(default_factory=dict)
    results: bool = False
    per_image: bool = False
    category_ids: set[Any] = field(default_factory=set)


def things_in(index: DocumentIndex) -> set[Any]:
    """Category ids with several instances in one image (things), for a file naming no
    categories: a second read of each image's annotations, one image at a time."""
    things: set[Any] = set()
    for offsets, lengths in index.spans.values():
        seen: set[Any] = set()
        for annotation in read_spans(index.path, zip(offsets, lengths, strict=True)):
            category = annotation.get("category_id") if isinstance(annotation, dict) else None
            if not isinstance(category, int):
                continue
            if category in seen:
                things.add(category)
            seen.add(category)
    return things


def index_document(path: Path) -> DocumentIndex:
    """One streamed pass: annotations are parsed one at a time and only their image id,
    category id and byte span kept (memory flat in the number of annotations)."""
    index = DocumentIndex(path)
    file = str(path)
    streamed: set[str | None] = set()
    for event in stream_top_level(path, ("annotations", "images")):
        if event.value is ARRAY_START:
            streamed.add(event.key)
            if event.key == "images":
                index.images = []
        elif event.key == "images":
            assert index.images is not None
            index.images.append(event.value)
        elif event.key is None or event.key == "annotations":
            annotation = event.value
            image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
            try:
                offsets, lengths = index.spans.setdefault(image_id, (array("q"), array("q")))
            except TypeError:  # an unhashable image id
                raise InputError(
                    f"{file}: annotation with an invalid image_id {image_id!r}", file=file
                ) from None
            assert event.span is not None
            offsets.append(event.span[0])
            lengths.append(event.span[1])
            category_id = annotation.get("category_id") if isinstance(annotation, dict) else None
            if isinstance(category_id, int) and not isinstance(category_id, bool):
                index.category_ids.add(category_id)
        else:
            index.values[event.key] = event.value
    index.results = None in streamed
    if isinstance(index.values.get("image"), dict) and "annotations" in streamed:
        index.per_image = True
    elif not index.results and "annotations" not in streamed:
        raise InputError(f"{file}: not a COCO instances/results file (no annotations)", file=file)
    return index


def per_image_dataset(
    refs: list[RleRef], options: Mapping[str, Any], overlap: str, categories_file: Path
) -> Dataset:
    """A dataset of SA-1B-style files. With categories (``--categories``, or the
    ``categories.json`` our exporter writes next to them) annotations keep their
    ``category_id``; without, every mask gets the one ``--label``."""
    source = location(options["categories"]) if options.get("categories") else categories_file
    keep_hidden = not options.get("drop_hidden")
    if source.is_file():
        categories = categories_from_coco(read_json(source), str(source))
        return Dataset(
            categories=categories,
            items=refs,
            context=RleContext(
                {c.id: c.name for c in categories}, overlap, keep_hidden=keep_hidden
            ),
            size=len(refs),
        )
    label = options.get("label") or "object"
    category = Category(id=SA1B_CATEGORY_ID, name=label, isthing=True)
    return Dataset(
        categories=[category],
        items=refs,
        context=RleContext(
            {SA1B_CATEGORY_ID: label},
            overlap,
            default_category=SA1B_CATEGORY_ID,
            keep_hidden=keep_hidden,
        ),
        size=len(refs),
    )


def group_by_image(
    spans: dict[Any, tuple[array[int], array[int]]], images: Any, file: str
) -> Iterator[RleRef | RejectedItem]:
    """One reference per image (in ``images`` order, then unlisted image ids in file order)."""
    by_image = dict(spans)
    listed: dict[Any, Any] = {}
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict) and "id" in image:
                try:
                    listed.setdefault(image["id"], image)
                except TypeError:
                    yield reject(str(image["id"]), "schema", "unhashable image id", file=file)
    for image_id, image in listed.items():
        reference = reference_id_from_names(image.get("file_name"), fallback=image_id)
        yield RleRef(reference, file, image, by_image.pop(image_id, None), image_id)
    for image_id, group in by_image.items():
        reference = str(image_id)
        if image_id is None:
            message = f"{len(group[0])} annotation(s) without an image_id"
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


def read_annotations(ref: RleRef) -> tuple[Mapping[str, Any], list[Any], Any]:
    """The image record, its annotations (read from their byte spans) and its id."""
    if ref.per_image_file:
        image, annotations = read_per_image_file(ref)
        image_id = image.get("image_id", image.get("id"))
        return {**image, "id": image_id}, annotations, image_id
    annotations = read_spans(location(ref.file), zip(*ref.spans, strict=True)) if ref.spans else []
    return ref.image or {"id": ref.image_id}, annotations, ref.image_id


def load(ref: RleRef, ctx: RleContext) -> Sample:
    """Decode one image's instances to runs and flatten them into an index mask."""
    item = ref.reference_id
    image, annotations, image_id = read_annotations(ref)
    height, width = image_size(ref, image, annotations)
    instances, scores, segments = [], [], []
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
            runs = segmentation_runs(annotation.get("segmentation"), height, width)
        except ValueError as exc:
            raise ItemError(
                f"{name}: {exc}", rule="bad-segmentation", item=item, file=ref.file
            ) from None
        instances.append(intervals_of(runs))
        scores.append(annotation.get("score"))
        segments.append(segment_for(annotation, category_id, ctx))
    try:
        flat = flatten(
            instances,
            ctx.overlap,
            scores,
            (height, width),
            smallest_index_dtype(len(instances) + 1),
            keep_hidden=ctx.keep_hidden,
        )
    except ValueError as exc:
        raise ItemError(str(exc), rule="overlap", item=item, file=ref.file) from None
    for segment, hidden, area, shown in zip(
        segments, flat.hidden, flat.areas, flat.visible, strict=True
    ):
        assert segment.metadata is not None
        if hidden is not None:
            segment.metadata[MetaKey.HIDDEN] = hidden
        elif shown < area:  # pixels left out: the source's area and box no longer hold
            segment.metadata.pop(MetaKey.AREA, None)
            segment.metadata.pop(MetaKey.BBOX, None)
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
        notes=overlap_notes(annotations, flat, ctx),
    )


def segment_for(annotation: Mapping[str, Any], category_id: int, ctx: RleContext) -> Segment:
    """The hub segment of one annotation (index set later): its record's fields as they were."""
    metadata: dict[str, Any] = {MetaKey.CATEGORY_ID: category_id}
    if "iscrowd" in annotation:
        metadata[MetaKey.ISCROWD] = int(bool(annotation["iscrowd"]))
    if "id" in annotation:
        metadata[MetaKey.SOURCE_ID] = annotation["id"]
    if annotation.get("score") is not None:
        metadata[MetaKey.SCORE] = annotation["score"]
    for key, meta_key in (("area", MetaKey.AREA), ("bbox", MetaKey.BBOX)):
        if key in annotation:
            metadata[meta_key] = annotation[key]
    metadata.update({k: v for k, v in annotation.items() if k not in ANNOTATION_KEYS})
    return Segment(ctx.categories[category_id], 0, metadata)


def overlap_notes(annotations: list[Any], flat: Flattened, ctx: RleContext) -> list[dict[str, Any]]:
    """Notes for the report: occluded pixels (kept or left out), instances hidden entirely,
    empty instances."""
    ids = [a.get("id", i) for i, a in enumerate(annotations)]
    areas, visible = flat.areas, flat.visible
    notes: list[dict[str, Any]] = []
    occluded = flat.occluded_pixels
    kept = ctx.keep_hidden
    if occluded:
        touched = sum(a > v for a, v in zip(areas, visible, strict=True))
        fate = (
            f"kept in each segment's {MetaKey.HIDDEN!r} metadata"
            if kept
            else "left out (--drop-hidden): lost from the full masks"
        )
        notes.append(
            {
                "rule": "occluded",
                "occluded_pixels": occluded,
                "instances": touched,
                "kept": kept,
                "message": f"{occluded} pixels of {touched} instance(s) lie under others "
                f"(--overlap {ctx.overlap}); {fate}",
            }
        )
    hidden = [i for i, a, v in zip(ids, areas, visible, strict=True) if a and not v]
    if hidden:
        fate = (
            "kept as segments whose pixels are all in their hidden part"
            if kept
            else ("kept as segments without pixels (--drop-hidden)")
        )
        notes.append(
            {
                "rule": "hidden-instance",
                "ids": hidden,
                "message": f"instance(s) {hidden} are entirely under others: {fate}",
            }
        )
    empty = [i for i, a in zip(ids, areas, strict=True) if not a]
    if empty:
        notes.append(
            {
                "rule": "empty-instance",
                "ids": empty,
                "message": f"instance(s) {empty} have no pixels in the source: kept as empty",
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
        Option(
            "drop-hidden",
            "Leave out the pixels each instance has under others (lean segment metadata; "
            "the notes then say what was lost). By default they travel with the segment.",
            type="flag",
            default=False,
        ),
    ),
)
