"""Read COCO panoptic (JSON + RGB id PNGs) into the hub.

Source: the JSON file, or the folder holding it. PNGs are looked up in ``--png-dir``, else in
the folder named like the JSON without ``.json`` (the COCO convention). Also accepted: a JSON
with ``annotations`` only (no ``images`` / ``categories``, as deeplab2 writes), and a bare
list of ``segments_info`` for a single image (as transformers' fixtures hold).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segconvert import (
    ARRAY_START,
    DEFAULT_VOID_LABEL,
    STRICT,
    Confidence,
    Dataset,
    Detection,
    ElementIndex,
    ImageKey,
    Importer,
    InputError,
    ItemError,
    MetaKey,
    Option,
    RejectedItem,
    Sample,
    Segment,
    SpanReader,
    categories_from_coco,
    first_item_keys,
    json_root,
    json_top_level_is_list,
    location,
    map_ids,
    placeholder_categories,
    read_json,
    read_png,
    reference_id_from_names,
    reject,
    rgb_to_id,
    safe_join,
    segment_stats,
    smallest_index_dtype,
    stream_top_level,
    streamed_schema_problems,
)

from . import shipped_schemas as shipped

MAX_SEGMENT_ID = (1 << 24) - 1
SEGMENT_KEYS = ("id", "category_id", "iscrowd", "area", "bbox")
ANNOTATION_KEYS = ("image_id", "file_name", "segments_info")


@dataclass(frozen=True)
class CocoRef:
    """One image's annotation: where it is in the JSON (``span``, read when the item is
    loaded), its PNG path and its image record.

    ``annotation`` holds the annotation itself instead of a span for a bare ``segments_info``
    list (one image, nothing to index).
    """

    reference_id: str
    png: str
    file: str
    span: tuple[int, int] | None
    image: Mapping[str, Any] | None
    image_id: Any = None
    annotation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CocoContext:
    """Category lookups shared by every item."""

    categories: Mapping[int, tuple[str, bool]]
    strict: bool = False
    void_label: str = DEFAULT_VOID_LABEL


def is_panoptic_json(path: Path) -> bool:
    """A JSON object whose first annotation has ``segments_info`` (streamed, cached)."""
    return path.suffix == ".json" and "segments_info" in first_item_keys(path, "annotations.item")


def panoptic_candidates(folder: Path) -> list[Path]:
    """The COCO panoptic JSONs of ``folder`` (and its ``annotations/``); those next to a folder
    of PNGs with the same stem (the COCO convention) when there are any."""
    jsons = sorted(folder.glob("*.json")) + sorted(folder.glob("annotations/*.json"))
    candidates = [p for p in jsons if is_panoptic_json(p)]
    with_pngs = [p for p in candidates if p.with_suffix("").is_dir()]
    return with_pngs or candidates


def find_json(path: Path) -> Path:
    """The panoptic JSON of ``path``: the file itself or the single candidate in the folder."""
    if path.is_file():
        return path
    chosen = panoptic_candidates(path)
    if len(chosen) == 1:
        return chosen[0]
    if not chosen:
        raise InputError(f"{path}: no COCO panoptic JSON in this folder", file=str(path))
    names = ", ".join(str(p.relative_to(path)) for p in chosen)
    raise InputError(
        f"{path}: several COCO panoptic JSON files ({names}); pass the one to convert",
        file=str(path),
    )


def reference_id_of(image: Mapping[str, Any] | None, annotation: Mapping[str, Any]) -> str:
    """The reference id: the image file name minus extension (else the PNG's, else the id)."""
    return reference_id_from_names(
        (image or {}).get("file_name"),
        annotation.get("file_name"),
        fallback=annotation.get("image_id"),
    )


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """Read what is dataset-wide; stream one reference per annotation (and per image without one).

    The JSON is streamed twice (:func:`index_document`, then the annotations as the items are
    listed); memory holds the categories and an :class:`~segconvert.ElementIndex` of the
    images (a few bytes per image), never the image records or the annotations.
    """
    json_path = find_json(path)
    file = str(json_path)
    png_dir = location(options["png_dir"]) if options.get("png_dir") else json_path.with_suffix("")
    if not png_dir.is_dir():
        raise InputError(f"PNG folder {png_dir} not found; pass --png-dir", file=str(png_dir))
    if json_top_level_is_list(json_path):  # a bare segments_info list: one image
        bare = read_json(json_path)
        annotation = single_image_annotation(bare, png_dir, file)
        index = DocumentIndex(json_path, category_ids=segment_category_ids(annotation))
        items: Iterator[CocoRef | RejectedItem] = iter([bare_ref(annotation, png_dir, file)])
    else:
        index = index_document(json_path)
        if not index.has_images and not index.annotations:
            raise InputError(f"{file}: not a COCO panoptic file (no annotations)", file=file)
        items = iter_refs(index, png_dir)
    if options.get("categories"):
        categories = categories_from_coco(
            read_json(location(options["categories"])), options["categories"]
        )
    elif "categories" in index.sections:
        categories = categories_from_coco(index.sections["categories"], file)
    else:
        categories = placeholder_categories(index.category_ids)
    metadata: dict[str, Any] = {
        k: index.sections[k] for k in ImageKey.COCO_BLOCKS if k in index.sections
    }
    context = CocoContext(
        {c.id: (c.name, c.isthing) for c in categories}, bool(options.get("strict"))
    )
    return Dataset(
        categories=categories,
        items=items,
        context=context,
        metadata=metadata,
        size=index.image_count,
    )


SECTIONS = ("categories", "info", "licenses")
"""The small top-level values kept from a panoptic JSON."""


@dataclass
class DocumentIndex:
    """What the first streamed pass over a panoptic JSON keeps: the small top-level values,
    the images by id (spans, not records) and the category ids the segments use."""

    path: Path
    sections: dict[str, Any] = field(default_factory=dict)
    images: ElementIndex | None = None
    """The image records by ``id``; None when the file has no ``images`` list."""
    has_images: bool = False
    """Whether the file has an ``images`` key (a list or not)."""
    image_count: int | None = None
    """How many elements ``images`` has (None when it is no list)."""
    annotations: int = 0
    category_ids: set[Any] = field(default_factory=set)


def index_document(path: Path) -> DocumentIndex:
    """One streamed pass: each image is indexed by its ``id`` (hash and byte span), each
    annotation parsed and dropped (only the category ids of its segments kept, for a file
    naming no categories). A fault anywhere in the JSON is reported here, before any work."""
    index = DocumentIndex(path)
    for event in stream_top_level(path, ("images", "annotations")):
        if event.value is ARRAY_START:
            if event.key == "images":
                index.images, index.has_images, index.image_count = ElementIndex("id"), True, 0
        elif event.key == "images":
            if event.span is None:  # images is no list: every annotation is unknown-image
                index.has_images = True
            else:
                assert index.images is not None and index.image_count is not None
                index.images.add(event.value, event.span)
                index.image_count += 1
        elif event.key == "annotations":
            if event.span is not None:
                index.annotations += 1
                index.category_ids.update(segment_category_ids(event.value))
        elif event.key in SECTIONS:
            index.sections[event.key] = event.value
    return index


def segment_category_ids(annotation: Any) -> set[Any]:
    """The ``category_id`` of every segment of one annotation (placeholder categories are
    made of them when the file names none)."""
    infos = annotation.get("segments_info") if isinstance(annotation, dict) else None
    if not isinstance(infos, list):
        return set()
    return {s.get("category_id") for s in infos if isinstance(s, dict)} - {None}


def single_image_annotation(segments_info: list[Any], png_dir: Path, file: str) -> dict[str, Any]:
    """Wrap a bare ``segments_info`` list; its PNG must be the only one in ``png_dir``."""
    pngs = sorted(png_dir.glob("*.png"))
    if len(pngs) != 1:
        raise InputError(
            f"{file} is a bare segments_info list; {png_dir} must hold exactly one PNG, "
            f"it holds {len(pngs)}",
            file=file,
        )
    return {"image_id": pngs[0].stem, "file_name": pngs[0].name, "segments_info": segments_info}


def bare_ref(annotation: dict[str, Any], png_dir: Path, file: str) -> CocoRef:
    """The one reference of a bare ``segments_info`` list (its annotation held, not indexed)."""
    reference_id = reference_id_of(None, annotation)
    png = safe_join(png_dir, str(annotation["file_name"]), item=reference_id)
    return CocoRef(
        reference_id, str(png), file, None, None, annotation["image_id"], annotation=annotation
    )


IMAGE_BLOCK = 1 << 18
"""Bytes of the JSON read at a time when looking image records up (they come in file order,
so one read, or one GET on an object store, serves many)."""


def iter_refs(index: DocumentIndex, png_dir: Path) -> Iterator[CocoRef | RejectedItem]:
    """One :class:`CocoRef` per annotation (streamed from the JSON), then one error ref per
    image left without one. Each image record is read back from its span when its annotation
    comes; what is kept per image is one byte (whether it had an annotation)."""
    file = str(index.path)
    images = index.images if index.images is not None else ElementIndex("id")
    annotated = bytearray(len(images))
    with SpanReader(index.path, block=IMAGE_BLOCK) as records:
        position = 0
        # the index pass checked every byte; each annotation is read strictly again from its
        # span by the item that converts it, so this pass only picks out ids and names
        for event in stream_top_level(index.path, ("images", "annotations"), checked=True):
            if event.key != "annotations" or event.span is None:
                continue
            annotation, number = event.value, position
            position += 1
            if not isinstance(annotation, dict):
                yield reject_item(
                    f"annotation-{number}", file, "schema", "annotation is not an object"
                )
                continue
            image_id = annotation.get("image_id")
            found = images.find(image_id, records)
            image = found[1] if found else None
            reference_id = reference_id_of(image, annotation)
            if found:
                annotated[found[0]] = 1
            elif index.has_images:
                yield reject_item(
                    reference_id, file, "unknown-image", f"image_id {image_id!r} has no image entry"
                )
                continue
            png_name = annotation.get("file_name") or f"{reference_id}.png"
            try:
                png = safe_join(png_dir, str(png_name), item=reference_id)
            except ItemError as exc:
                yield reject_item(reference_id, file, exc.rule, str(exc))
                continue
            yield CocoRef(reference_id, str(png), file, event.span, image, image_id)
        for place in range(len(images)):
            if annotated[place]:
                continue
            image = records.read(*images.span(place))
            first = images.find(image["id"], records)
            if first is not None and first[0] == place:  # a repeated id is listed once
                yield reject_item(
                    reference_id_of(image, {}),
                    file,
                    "missing-annotation",
                    f"image {image['id']!r} has no annotation",
                )


def read_annotation(ref: CocoRef) -> Mapping[str, Any]:
    """The annotation of ``ref``, read from its span of the JSON (or held, for a bare list)."""
    if ref.span is None:
        return ref.annotation or {}
    with SpanReader(location(ref.file)) as reader:
        annotation = reader.read(*ref.span)
    if not isinstance(annotation, dict):
        raise ItemError(
            "annotation is not an object", rule="schema", item=ref.reference_id, file=ref.file
        )
    return annotation


def check_segments_info(ref: CocoRef, infos: Any, ctx: CocoContext) -> list[dict[str, Any]]:
    """The segments_info list, checked: ids valid and unique, categories known."""
    item = ref.reference_id
    if not isinstance(infos, list):
        raise ItemError("segments_info is not a list", rule="schema", item=item, file=ref.file)
    seen: set[int] = set()
    for info in infos:
        if not isinstance(info, dict):
            raise ItemError(
                "segments_info entry is not an object", rule="schema", item=item, file=ref.file
            )
        segment_id, category_id = info.get("id"), info.get("category_id")
        if not isinstance(segment_id, int) or not 0 < segment_id <= MAX_SEGMENT_ID:
            raise ItemError(
                f"segment id {segment_id!r} is not in 1..{MAX_SEGMENT_ID}",
                rule="segment-id",
                item=item,
                file=ref.file,
            )
        if segment_id in seen:
            raise ItemError(
                f"segment id {segment_id} listed twice",
                rule="duplicate-id",
                item=item,
                file=ref.file,
            )
        seen.add(segment_id)
        if category_id not in ctx.categories:
            raise ItemError(
                f"segment {segment_id} has unknown category_id {category_id!r}",
                rule="unknown-category",
                item=item,
                file=ref.file,
            )
        if info.get("iscrowd", 0) not in (0, 1):
            raise ItemError(
                f"segment {segment_id} iscrowd {info.get('iscrowd')!r} is not 0/1",
                rule="schema",
                item=item,
                file=ref.file,
            )
    return infos


def load(ref: CocoRef, ctx: CocoContext) -> Sample:
    """Decode one panoptic PNG into an index mask with one segment per segments_info entry."""
    item = ref.reference_id
    annotation = read_annotation(ref)
    infos = check_segments_info(ref, annotation.get("segments_info"), ctx)
    rgb = read_png(location(ref.png), "rgb", item=item)
    height, width = rgb.shape[:2]
    image = dict(ref.image) if ref.image else None
    if image is not None and (image.get("width"), image.get("height")) != (width, height):
        raise ItemError(
            f"PNG is {width}x{height}, image entry says {image.get('width')}x{image.get('height')}",
            rule="mask-size",
            item=item,
            file=ref.png,
        )
    positions, counts, unlisted = map_ids(rgb_to_id(rgb), [0, *(info["id"] for info in infos)])
    if unlisted:
        raise ItemError(
            f"PNG ids {unlisted} are not in segments_info",
            rule="unlisted-id",
            item=item,
            file=ref.png,
        )
    absent = [info["id"] for info, count in zip(infos, counts[1:], strict=True) if count == 0]
    if absent:
        raise ItemError(
            f"segments_info ids {absent[:10]} have no pixels in the PNG",
            rule="missing-id",
            item=item,
            file=ref.png,
        )
    has_void = bool(counts[0])
    # positions: 0 = void, k = k-th segment; without void pixels, segments start at index 0
    mask = positions if has_void else positions - positions.dtype.type(1)
    if mask.dtype != smallest_index_dtype(len(infos) + int(has_void)):
        mask = mask.astype(smallest_index_dtype(len(infos) + int(has_void)))
    segments = []
    if has_void:
        segments.append(Segment(ctx.void_label, 0, {MetaKey.VOID: True}))
    for offset, info in enumerate(infos):
        metadata = {
            MetaKey.CATEGORY_ID: info["category_id"],
            MetaKey.ISCROWD: int(info.get("iscrowd", 0)),
            MetaKey.SOURCE_ID: info["id"],
        }
        metadata.update({k: v for k, v in info.items() if k not in SEGMENT_KEYS})
        segments.append(
            Segment(ctx.categories[info["category_id"]][0], offset + int(has_void), metadata)
        )
    if ctx.strict:
        check_area_and_bbox(ref, infos, mask, has_void)
    image_metadata: dict[str, Any] = {
        ImageKey.IMAGE: image if image is not None else {"id": ref.image_id}
    }
    extras = {k: v for k, v in annotation.items() if k not in ANNOTATION_KEYS}
    if extras:
        image_metadata[ImageKey.ANNOTATION] = extras
    return Sample(
        reference_id=item,
        width=width,
        height=height,
        mask=mask,
        segments=segments,
        file_name=image.get("file_name") if image else None,
        metadata=image_metadata,
    )


def check_area_and_bbox(
    ref: CocoRef, infos: list[dict[str, Any]], mask: Any, has_void: bool
) -> None:
    """Strict mode: the stored area and bbox must equal what the pixels say."""
    areas, bboxes = segment_stats(mask, len(infos) + int(has_void))
    for offset, info in enumerate(infos):
        index = offset + int(has_void)
        if "area" in info and info["area"] != areas[index]:
            raise ItemError(
                f"segment {info['id']}: area {info['area']} but {areas[index]} pixels",
                rule="area-mismatch",
                item=ref.reference_id,
                file=ref.file,
            )
        if "bbox" in info and list(info["bbox"]) != bboxes[index].tolist():
            raise ItemError(
                f"segment {info['id']}: bbox {info['bbox']} "
                f"but pixels span {bboxes[index].tolist()}",
                rule="bbox-mismatch",
                item=ref.reference_id,
                file=ref.file,
            )


def check_documents(path: Path, options: Mapping[str, Any]) -> Iterator[ItemError]:
    """Schema problems of the panoptic JSON (at most 100), each naming its JSON path; the
    file is streamed, never loaded whole."""
    json_path = find_json(path)
    if json_root(json_path) == "list":  # a bare segments_info list: its items are the document
        return
    arrays = {"images": "image", "annotations": "annotation"}  # streamed, one at a time
    for problem in streamed_schema_problems(shipped.COCO_PANOPTIC, json_path, arrays):
        yield ItemError(problem, rule="schema", file=str(json_path))


def detect(path: Path) -> Detection:
    """A JSON whose first annotation has panoptic ``segments_info`` (or a folder holding one);
    a bare ``segments_info`` list is a maybe (it needs ``--png-dir`` and ``--categories``)."""
    if path.is_dir():
        candidates = panoptic_candidates(path)
        if not candidates:
            return Detection(Confidence.NO)
        names = tuple(str(p.relative_to(path)) for p in candidates)
        return Detection(Confidence.CERTAIN, PANOPTIC_JSON, names if len(names) > 1 else ())
    if is_panoptic_json(path):
        return Detection(Confidence.CERTAIN, PANOPTIC_JSON)
    if path.is_file() and json_root(path) == "list":
        first = first_item_keys(path, "item")
        if {"id", "category_id"} <= first and not first & {"image_id", "segmentation"}:
            return Detection(Confidence.MAYBE, "a bare list of COCO panoptic segments_info")
    return Detection(Confidence.NO)


PANOPTIC_JSON = "a COCO panoptic JSON"


IMPORTER = Importer(
    schemas=shipped.SCHEMAS,
    name="coco-panoptic",
    aliases=("coco_panoptic", "coco"),  # "coco" is what nucleus-to-coco writes
    description="COCO panoptic: JSON + RGB PNGs (id = R + 256 G + 256^2 B, 0 = void)",
    scan=scan,
    load=load,
    detect=detect,
    check_documents=check_documents,
    options=(
        STRICT,
        Option(
            "png-dir",
            "Folder of the panoptic PNGs (default: the JSON path without .json).",
            type="path",
        ),
        Option(
            "categories",
            "COCO JSON whose categories to use (e.g. panoptic_coco_categories.json, or the "
            "ground truth of a results file, whose images are then used too).",
            type="path",
        ),
    ),
)


def reject_item(reference_id: str, file: str, rule: str, message: str) -> RejectedItem:
    """A bad item found while listing (reported by the pipeline, never loaded)."""
    return reject(reference_id, rule, message, file=file)
