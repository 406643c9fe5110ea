"""Read Nucleus segmentation annotations back into the hub.

Accepts a folder written by the ``nucleus`` exporter (``annotations.jsonl`` + ``masks/`` +
optional ``taxonomy.json`` / ``images.jsonl``), a ``.jsonl`` file of annotation lines, a
``.json`` file holding a list of the same objects, and Nucleus export rows (``"type":
"segmentation"`` with ``dataset_item_id``, or ``{"item": ..., "segmentation": ...}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt

from segconvert import (
    DEFAULT_VOID_LABEL,
    STRICT,
    Category,
    Confidence,
    Dataset,
    Importer,
    InputError,
    ItemError,
    MetaKey,
    Option,
    RejectedItem,
    Sample,
    Segment,
    is_remote_location,
    json_lines,
    location,
    object_url,
    read_json,
    read_png,
    reject,
    safe_join,
    schemas,
)

from . import shipped_schemas as shipped
from .layout import ANNOTATIONS, IMAGES, ITEMS, TAXONOMY, is_remote


@dataclass(frozen=True)
class NucleusRef:
    """One annotation object, as read, with where it came from."""

    reference_id: str
    annotation: Any
    file: str
    line: int
    image: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NucleusContext:
    """What ``load`` needs besides the reference: folders and the taxonomy lookups."""

    root: Path
    mask_dir: Path | None
    categories_by_id: Mapping[int, Category]
    categories_by_name: Mapping[str, Category]
    void_label: str = DEFAULT_VOID_LABEL
    derived: bool = False
    strict: bool = False


def find_annotations(path: Path) -> Path:
    """The annotations file of ``path`` (the file itself, or the one in the folder)."""
    if path.is_file():
        return path
    for name in (ANNOTATIONS, "annotations.json"):
        if (path / name).is_file():
            return path / name
    raise InputError(f"{path}: no {ANNOTATIONS} in this folder", file=str(path))


def iter_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, object)`` for every annotation object in a .jsonl or .json file."""
    if path.suffix == ".json":
        document = read_json(path)
        if not isinstance(document, list):
            raise InputError(f"{path}: expected a JSON list of annotation objects", file=str(path))
        yield from ((i + 1, row) for i, row in enumerate(document))
        return
    yield from json_lines(path)  # a malformed line comes as its InputError


def normalise_row(row: Any) -> Any:
    """An export row ``{"item": ..., "segmentation": ...}`` -> the annotation object."""
    if isinstance(row, dict) and "segmentation" in row and "item" in row:
        annotation = row.get("segmentation")
        item = row.get("item") or {}
        if isinstance(annotation, dict):
            annotation = dict(annotation)
            annotation.setdefault("reference_id", item.get("reference_id") or item.get("ref_id"))
        return annotation
    return row


def load_taxonomy(path: Path) -> tuple[list[Category], dict[str, Any], str]:
    """Categories, dataset metadata and void label from a ``taxonomy.json``."""
    document = read_json(path)
    found = schemas.problems(shipped.TAXONOMY, document)
    if found:
        raise InputError(f"{path}: not a valid taxonomy: {found[0]}", file=str(path))
    categories = [
        Category(
            id=c["id"],
            name=c["name"],
            supercategory=c["supercategory"],
            isthing=c["isthing"],
            color=tuple(c["color"]) if c["color"] is not None else None,
            metadata=c.get("metadata", {}),
        )
        for c in document["categories"]
    ]
    return categories, document["metadata"], document["void_label"]


def derive_categories(annotations_file: Path, void_label: str) -> list[Category]:
    """Categories from the labels used, for Nucleus data that has no taxonomy file.

    Ids follow first appearance; a label used twice in one mask is a thing.
    """
    order: dict[str, bool] = {}
    for _, row in iter_rows(annotations_file):
        row = normalise_row(row)
        if not isinstance(row, dict):
            continue
        seen: set[str] = set()
        for segment in row.get("annotations") or []:
            label = segment.get("label") if isinstance(segment, dict) else None
            metadata = segment.get("metadata") if isinstance(segment, dict) else None
            if not isinstance(label, str) or (isinstance(metadata, dict) and metadata.get("void")):
                continue
            if label == void_label:
                continue
            order[label] = order.get(label, False) or label in seen
            seen.add(label)
    return [Category(id=i, name=n, isthing=t) for i, (n, t) in enumerate(order.items(), start=1)]


def scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    """Read the taxonomy and list the annotation lines."""
    annotations_file = find_annotations(path)
    root = annotations_file.parent
    taxonomy_path = location(options["taxonomy"]) if options.get("taxonomy") else root / TAXONOMY
    metadata: dict[str, Any] = {}
    void_label = DEFAULT_VOID_LABEL
    if taxonomy_path.is_file():
        categories, metadata, void_label = load_taxonomy(taxonomy_path)
        derived = False
    elif options.get("taxonomy"):
        raise InputError(f"{taxonomy_path}: no such file", file=str(taxonomy_path))
    else:
        categories = derive_categories(annotations_file, void_label)
        derived = True
    images = load_image_records(root / IMAGES)
    context = NucleusContext(
        root=root,
        mask_dir=location(options["mask_dir"]) if options.get("mask_dir") else None,
        categories_by_id={c.id: c for c in categories},
        categories_by_name={c.name: c for c in categories},
        void_label=void_label,
        derived=derived,
        strict=bool(options.get("strict")),
    )

    def refs() -> Iterator[NucleusRef | RejectedItem]:
        for lineno, row in iter_rows(annotations_file):
            if isinstance(row, InputError):  # one bad line fails one item, not the run
                yield reject(f"line-{lineno}", "bad-json", str(row), file=str(annotations_file))
                continue
            row = normalise_row(row)
            ref_id = row.get("reference_id") if isinstance(row, dict) else None
            ref_id = str(ref_id) if ref_id is not None else f"line-{lineno}"
            yield NucleusRef(ref_id, row, str(annotations_file), lineno, images.get(ref_id))

    return Dataset(categories=categories, items=refs(), context=context, metadata=metadata)


def load_image_records(path: Path) -> dict[str, Any]:
    """``reference_id -> image record`` from ``images.jsonl`` (empty when absent)."""
    if not path.is_file():
        return {}
    records = {}
    for _, record in json_lines(path):
        if isinstance(record, InputError):
            raise record
        if isinstance(record, dict) and "reference_id" in record:
            records[str(record["reference_id"])] = record
    return records


def resolve_mask(url: str, ctx: NucleusContext, item: str) -> Path:
    """The local file behind a ``mask_url``; never a file outside the dataset folder (or
    ``--mask-dir``).

    A remote URL, or an absolute path outside both, is found by the longest tail of its path
    that exists under one of them; failing that, the error says which case it is.
    """
    bases = [b for b in (ctx.mask_dir, ctx.root) if b is not None]
    for base in bases:  # a URL naming an object under the dataset itself (a remote export)
        if not is_remote_location(base):
            continue
        for named in dict.fromkeys((str(base), object_url(base))):
            prefix = named.rstrip("/") + "/"
            if url.startswith(prefix):
                return safe_join(base, unquote(url[len(prefix) :]), item=item)
    remote = is_remote(url) or "://" in url
    if remote:
        parts = PurePosixPath(unquote(urlparse(url).path)).parts[1:]
    else:
        local = Path(url)
        if not local.is_absolute():
            return safe_join(ctx.root, url, item=item)
        for base in bases:
            if local.resolve().is_relative_to(base.resolve()):
                return local
        parts = local.parts[1:]
    for start in range(len(parts)):
        tail = "/".join(parts[start:])
        for base in bases:
            candidate = safe_join(base, tail, item=item)
            if candidate.is_file():
                return candidate
    searched = " or ".join(str(b) for b in bases)
    where = (
        "is remote and has no local copy"
        if remote
        else f"is outside the dataset folder {ctx.root}"
        + (f" and --mask-dir {ctx.mask_dir}" if ctx.mask_dir is not None else "")
    )
    raise ItemError(
        f"mask_url {url!r} {where}; no file of that name under {searched}: pass "
        "--mask-dir FOLDER holding the mask PNGs",
        rule="mask-url",
        item=item,
    )


def unlisted_as_void(
    mask: npt.NDArray[np.uint8], segments: list[Segment], ctx: NucleusContext, item: str, file: str
) -> tuple[npt.NDArray[np.uint8], list[Segment], list[dict[str, Any]]]:
    """Mask values with no Segment: void (merged into the void segment, or one is added),
    with a note; under ``strict``, an ``unlisted-index`` error. Nucleus's SDK accepts such
    masks (its own test mask lists only indices 1 and 2)."""
    listed = {s.index for s in segments}
    top = int(mask.max()) if mask.size else 0
    if listed.issuperset(range(top + 1)):
        return mask, segments, []
    counts = np.bincount(mask.ravel(), minlength=256)
    unlisted = [v for v in np.flatnonzero(counts).tolist() if v not in listed]
    if not unlisted:
        return mask, segments, []
    if ctx.strict:
        raise ItemError(
            f"mask values without a segment: {unlisted[:10]}",
            rule="unlisted-index",
            item=item,
            file=file,
        )
    void = next((s for s in segments if s.is_void), None)
    if void is None:
        void = Segment(ctx.void_label, unlisted[0], {MetaKey.VOID: True})
        segments = [void, *segments]
    remap = [v for v in unlisted if v != void.index]
    if remap:
        table = np.arange(256, dtype=np.uint8)
        table[remap] = void.index
        mask = table[mask]
    pixels = int(counts[unlisted].sum())
    note = {
        "rule": "unlisted-index",
        "values": unlisted,
        "pixels": pixels,
        "message": f"mask value(s) {unlisted[:10]} ({pixels} pixels) have no Segment: read as "
        f"void (index {void.index}); --strict refuses them",
    }
    return mask, segments, [note]


def to_segment(raw: Any, ctx: NucleusContext, item: str) -> Segment:
    """One Nucleus segment -> a hub segment with its category id (or void mark)."""
    label = raw.get("label")
    metadata = dict(raw.get("metadata") or {})
    if metadata.get(MetaKey.VOID) or (
        label == ctx.void_label and label not in ctx.categories_by_name
    ):
        metadata[MetaKey.VOID] = True
        return Segment(label=label, index=raw["index"], metadata=metadata)
    category_id = metadata.get(MetaKey.CATEGORY_ID)
    if ctx.derived or category_id not in ctx.categories_by_id:
        category = ctx.categories_by_name.get(label)
        if category is None:
            raise ItemError(
                f"label {label!r} (category_id {category_id}) is not in the taxonomy",
                rule="unknown-category",
                item=item,
            )
        metadata[MetaKey.CATEGORY_ID] = category.id
    return Segment(label=label, index=raw["index"], metadata=metadata)


def load(ref: NucleusRef, ctx: NucleusContext) -> Sample:
    """Read one annotation's mask and segments."""
    item = ref.reference_id
    annotation = ref.annotation
    profile = shipped.NUCLEUS_ANNOTATION if ctx.strict else shipped.NUCLEUS_ANNOTATION_INPUT
    found = schemas.problems(profile, annotation)
    if found:
        raise ItemError(
            f"line {ref.line}: not a Nucleus segmentation annotation: {found[0]}",
            rule="schema",
            item=item,
            file=ref.file,
        )
    raw_segments = annotation.get("annotations") or []
    indices = [s["index"] for s in raw_segments]
    if len(set(indices)) != len(indices):
        raise ItemError("duplicate segment index", rule="duplicate-index", item=item, file=ref.file)
    if len(raw_segments) > 256 or any(i > 255 for i in indices):
        raise ItemError(
            f"{len(raw_segments)} segments / index above 255 in a uint8 mask",
            rule="too-many-segments",
            item=item,
            file=ref.file,
        )
    path = resolve_mask(annotation["mask_url"], ctx, item)
    mask = read_png(path, "gray8", item=item)
    height, width = mask.shape
    image = ref.image or {}
    if image and (image.get("width"), image.get("height")) != (width, height):
        raise ItemError(
            f"mask is {width}x{height}, image is {image.get('width')}x{image.get('height')}",
            rule="mask-size",
            item=item,
            file=str(path),
        )
    segments = [to_segment(s, ctx, item) for s in raw_segments]
    mask, segments, notes = unlisted_as_void(mask, segments, ctx, item, str(path))
    return Sample(
        reference_id=item,
        width=width,
        height=height,
        mask=mask,
        segments=segments,
        annotation_id=annotation.get("annotation_id"),
        file_name=image.get("file_name"),
        metadata=dict(image.get("metadata") or {}),
        notes=notes,
        mask_file=str(path),
    )


def check_documents(path: Path, options: Mapping[str, Any]) -> Iterator[ItemError]:
    """Schema problems of taxonomy.json, images.jsonl and items.jsonl next to the annotations."""
    root = find_annotations(path).parent
    if (root / TAXONOMY).is_file():
        for problem in schemas.problems(shipped.TAXONOMY, read_json(root / TAXONOMY)):
            yield ItemError(problem, rule="schema", file=str(root / TAXONOMY))
    for name, schema in ((IMAGES, shipped.IMAGE_RECORD), (ITEMS, shipped.NUCLEUS_ITEM)):
        if not (root / name).is_file():
            continue
        for lineno, record in json_lines(root / name):
            if isinstance(record, InputError):
                yield ItemError(str(record), rule="bad-json", file=str(root / name))
                continue
            item = record.get("reference_id") if isinstance(record, dict) else None
            for problem in schemas.problems(schema, record):
                yield ItemError(
                    f"line {lineno}: {problem}", rule="schema", item=item, file=str(root / name)
                )


def detect(path: Path) -> Confidence:
    """A folder with annotations.jsonl, or a .jsonl file whose first line has a mask_url."""
    if path.is_dir():
        return Confidence.CERTAIN if (path / ANNOTATIONS).is_file() else Confidence.NO
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
        try:
            return Confidence.CERTAIN if "mask_url" in json.loads(first) else Confidence.NO
        except (ValueError, TypeError):
            return Confidence.NO
    return Confidence.NO


IMPORTER = Importer(
    schemas=shipped.SCHEMAS,
    name="nucleus",
    description="Scale Nucleus segmentation: annotations.jsonl / JSON list / export rows + masks",
    scan=scan,
    load=load,
    detect=detect,
    check_documents=check_documents,
    options=(
        STRICT,
        Option(
            "mask-dir",
            "Folder holding the mask PNGs (default: next to the annotations).",
            type="path",
        ),
        Option(
            "taxonomy",
            "A segconvert taxonomy.json to use (default: next to the annotations).",
            type="path",
        ),
    ),
)
