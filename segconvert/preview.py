"""``segconvert preview``: items rendered as PNG, for a person to look at.

Each segment is painted in its category's colour -- the taxonomy's colour where the source has
one, else a stable palette colour of the category, shifted per instance so instances of one
class are told apart. Where the taxonomy gives the colour, instances of one class are told apart
by a one-pixel boundary (``BOUNDARY_COLOR``) between them instead (``boundaries=False`` leaves
every pixel in its exact category colour). Void is ``VOID_COLOR``. With a photo (``--images``),
the colours are blended over it and void shows the photo.

Beside the mask is a legend: one row per segment present (colour swatch, label, instance number,
pixel count). The same legend is stored in the PNG as a ``segconvert-legend`` text chunk (JSON:
each row's label, category id, instance, colour, pixels and swatch box), so scripts and tests
can read it back.
"""

from __future__ import annotations

import io
import json
import math
import os
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from segconvert.api import open
from segconvert.coco import fallback_color
from segconvert.descriptors import ExportContext
from segconvert.errors import ItemError, UsageError
from segconvert.files import atomic_write_bytes, safe_join
from segconvert.masks import MAX_IMAGE_PIXELS
from segconvert.model import Category, ImageKey, MetaKey, Sample, Segment
from segconvert.registry import Registry

VOID_COLOR = (0, 0, 0)
BOUNDARY_COLOR = (255, 255, 255)
LEGEND_KEY = "segconvert-legend"
"""PNG text chunk holding the legend as JSON."""
ALPHA = 0.5
"""Weight of the mask colours over the photo."""
ROW_HEIGHT = 16
SWATCH = 12
LEGEND_WIDTH = 260
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", "_leftImg8bit.png", ".webp")
"""Tried after the sample's own image file name, on its reference id, in ``--images``."""
CELL = 256
"""Contact sheet: the longer side of each thumbnail."""

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class LegendRow:
    """One legend entry: a segment, its colour and where its swatch is drawn."""

    label: str
    category_id: int | None
    instance: int | None
    """1-based number of this instance among its class's things in the item (None: stuff/void)."""
    source_id: Any
    color: RGB
    pixels: int
    void: bool
    crowd: bool = False

    def to_json(self, swatch: Sequence[int]) -> dict[str, Any]:
        """The row as stored in the PNG's legend chunk."""
        return {
            "label": self.label,
            "category_id": self.category_id,
            "instance": self.instance,
            "source_id": self.source_id,
            "color": list(self.color),
            "pixels": self.pixels,
            "void": self.void,
            "crowd": self.crowd,
            "swatch": list(swatch),
        }


def label_color(label: str) -> RGB:
    """A stable colour for a segment without a category id (from its label)."""
    red, green, blue = fallback_color(zlib.crc32(label.encode("utf-8")) & 0xFFFF)
    return red, green, blue


def instance_shade(base: RGB, instance: int) -> RGB:
    """``base`` shifted for the ``instance``-th thing of a class (1 keeps ``base``)."""
    if instance <= 1:
        return base
    step = (instance - 1) * 47
    r, g, b = base
    return ((r + step) % 256, (g + 2 * step) % 256, (b + 3 * step) % 256)


def segment_colors(sample: Sample, categories: dict[int, Category]) -> tuple[list[LegendRow], bool]:
    """A legend row (with its colour) per segment, in segment order; and whether any colour
    came from a palette rather than the taxonomy."""
    counts = np.bincount(sample.mask.ravel(), minlength=1)
    seen: dict[int | str, int] = {}
    rows = []
    from_palette = False
    for segment in sample.segments:
        pixels = int(counts[segment.index]) if segment.index < len(counts) else 0
        rows.append(_row(segment, pixels, categories, seen))
        category = categories.get(segment.category_id) if segment.category_id is not None else None
        from_palette |= not segment.is_void and (category is None or category.color is None)
    return rows, from_palette


def _row(
    segment: Segment, pixels: int, categories: dict[int, Category], seen: dict[int | str, int]
) -> LegendRow:
    category_id = segment.category_id
    if segment.is_void:
        return LegendRow(segment.label, None, None, None, VOID_COLOR, pixels, True)
    category = categories.get(category_id) if category_id is not None else None
    is_thing = category.isthing if category is not None else True
    crowd = bool((segment.metadata or {}).get(MetaKey.ISCROWD))
    instance = None
    key: int | str = category_id if category_id is not None else segment.label
    if is_thing and not crowd:
        instance = seen.get(key, 0) + 1
        seen[key] = instance
    if category is not None and category.color is not None:
        color = category.color
    else:
        red, green, blue = (
            fallback_color(category_id) if category_id is not None else label_color(segment.label)
        )
        color = instance_shade((red, green, blue), instance or 1)
    source_id = (segment.metadata or {}).get(MetaKey.SOURCE_ID)
    return LegendRow(segment.label, category_id, instance, source_id, color, pixels, False, crowd)


def same_class_boundaries(mask: npt.NDArray[Any], category_of: npt.NDArray[Any]) -> np.ndarray:
    """Pixels on the border between two different segments of one class (non-void)."""
    classes = category_of[mask]
    edge = np.zeros(mask.shape, dtype=bool)
    for axis in (0, 1):
        ahead = [slice(None), slice(None)]
        behind = [slice(None), slice(None)]
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        differs = (mask[tuple(ahead)] != mask[tuple(behind)]) & (
            classes[tuple(ahead)] == classes[tuple(behind)]
        )
        differs &= classes[tuple(ahead)] >= 0
        edge[tuple(behind)] |= differs
    return edge


def paint_sample(
    sample: Sample,
    rows: list[LegendRow],
    *,
    photo: npt.NDArray[np.uint8] | None = None,
    boundaries: bool = True,
) -> npt.NDArray[np.uint8]:
    """The H x W x 3 rendering of a sample's mask (over ``photo`` when given)."""
    size = max([s.index for s in sample.segments], default=0) + 1
    table = np.zeros((size, 3), dtype=np.uint8)
    void = np.zeros(size, dtype=bool)
    class_of = np.full(size, -1, dtype=np.int64)
    class_keys: dict[int | str, int] = {}
    for segment, row in zip(sample.segments, rows, strict=True):
        table[segment.index] = row.color
        void[segment.index] = row.void
        if not row.void and row.instance is not None:
            key = row.category_id if row.category_id is not None else row.label
            class_of[segment.index] = class_keys.setdefault(key, len(class_keys))
    rgb = table[sample.mask]
    if boundaries and class_keys:
        rgb[same_class_boundaries(sample.mask, class_of)] = BOUNDARY_COLOR
    if photo is None:
        return rgb
    void_pixels = void[sample.mask]
    blended = (photo.astype(np.float32) * (1 - ALPHA) + rgb.astype(np.float32) * ALPHA).round()
    out = blended.astype(np.uint8)
    out[void_pixels] = photo[void_pixels]
    return out


def find_photo(sample: Sample, images: Path) -> Path | None:
    """The sample's photo in the folder ``images``: its file name, else its reference id with
    a usual suffix; for a Cityscapes frame also under ``{split}/{city}/`` (a leftImg8bit root)."""
    names = []
    if sample.file_name:
        names += [sample.file_name, Path(sample.file_name).name]
    names += [sample.reference_id + suffix for suffix in PHOTO_SUFFIXES]
    origin = sample.metadata.get(ImageKey.CITYSCAPES) or {}
    if origin.get("split") and origin.get("city"):  # a leftImg8bit root: {split}/{city}/name
        names += [f"{origin['split']}/{origin['city']}/{Path(name).name}" for name in names]
    for name in names:
        try:
            candidate = safe_join(images, name, item=sample.reference_id)
        except ItemError:
            continue
        if candidate.is_file():
            return candidate
    return None


def read_photo(path: Path, sample: Sample) -> npt.NDArray[np.uint8]:
    """The photo as H x W x 3, resized to the mask when its size differs."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ItemError(
                    f"photo {path.name} is {image.width}x{image.height}, over the pixel limit",
                    rule="photo-too-large",
                    item=sample.reference_id,
                    file=str(path),
                )
            photo = image.convert("RGB")
            if photo.size != (sample.width, sample.height):
                photo = photo.resize((sample.width, sample.height), Image.Resampling.BILINEAR)
            return np.asarray(photo, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ItemError(
            f"photo {path.name} cannot be read: {exc}",
            rule="photo-unreadable",
            item=sample.reference_id,
            file=str(path),
        ) from None


def font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font (no font file needed)."""
    return ImageFont.load_default(size=size)


def row_text(row: LegendRow) -> str:
    """A legend row's text: label, instance, pixels."""
    instance = f" #{row.instance}" if row.instance is not None else ""
    kind = " (void)" if row.void else " (crowd)" if row.crowd else ""
    return f"{row.label}{instance}{kind}  {row.pixels} px"


def compose(
    picture: npt.NDArray[np.uint8], rows: list[LegendRow], title: str
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """The picture with its legend to the right; and the legend rows with their swatch boxes."""
    height, width = picture.shape[:2]
    legend_height = ROW_HEIGHT * (len(rows) + 1) + 4
    canvas = Image.new("RGB", (width + LEGEND_WIDTH, max(height, legend_height)), (32, 32, 32))
    canvas.paste(Image.fromarray(picture), (0, 0))
    draw = ImageDraw.Draw(canvas)
    face = font()
    draw.text((width + 6, 2), title[:40], fill=(255, 255, 255), font=face)
    legend = []
    for number, row in enumerate(rows, 1):
        top = 2 + number * ROW_HEIGHT
        box = (width + 6, top + 2, SWATCH, SWATCH)
        draw.rectangle(
            (box[0], box[1], box[0] + SWATCH - 1, box[1] + SWATCH - 1),
            fill=row.color,
            outline=(128, 128, 128) if row.void else None,
        )
        draw.text(
            (width + 6 + SWATCH + 6, top + 1), row_text(row)[:38], fill=(230, 230, 230), font=face
        )
        legend.append(row.to_json(box))
    return canvas, legend


def png_bytes(image: Image.Image, legend: list[dict[str, Any]] | None = None) -> bytes:
    """``image`` as PNG bytes, the legend stored in its text chunk."""
    info = PngImagePlugin.PngInfo()
    if legend is not None:
        info.add_text(LEGEND_KEY, json.dumps(legend))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@dataclass(frozen=True)
class PreviewOptions:
    """What a render needs besides the sample (picklable: sent to workers)."""

    images: str | None = None
    boundaries: bool = True
    thumbnail: bool = False
    """Contact sheet: return a small rendering instead of writing a file."""


def render(sample: Sample, ctx: ExportContext) -> dict[str, Any]:
    """Render one sample (runs in a worker): write ``OUT/<reference_id>.png``, or, for a
    contact sheet, return its thumbnail. Returns a record of what was drawn."""
    options: PreviewOptions = ctx.options["preview"]
    categories = {c.id: c for c in ctx.categories}
    rows, _ = segment_colors(sample, categories)
    photo = None
    photo_path = find_photo(sample, Path(options.images)) if options.images else None
    if photo_path is not None:
        photo = read_photo(photo_path, sample)
    picture = paint_sample(sample, rows, photo=photo, boundaries=options.boundaries)
    record: dict[str, Any] = {
        "item": sample.reference_id,
        "segments": len(rows),
        "photo": str(photo_path) if photo_path else None,
        "rows": [(row.label, row.color) for row in rows if row.pixels],
    }
    if options.thumbnail:
        image = Image.fromarray(picture)
        image.thumbnail((CELL, CELL))
        record["thumbnail"] = np.asarray(image)
        return record
    canvas, legend = compose(picture, rows, sample.reference_id)
    path = safe_join(ctx.output, f"{sample.reference_id}.png", item=sample.reference_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(canvas, legend))
    record["file"] = str(path)
    return record


def contact_sheet(records: Iterable[dict[str, Any]], path: Path) -> Path:
    """A grid of the thumbnails in ``records``, each captioned with its reference id, and one
    legend of the labels present; written to ``path``."""
    cells = list(records)
    columns = max(1, math.ceil(math.sqrt(len(cells))))
    grid_rows = max(1, math.ceil(len(cells) / columns))
    caption = ROW_HEIGHT
    labels: dict[str, RGB] = {}
    for record in cells:
        for label, color in record["rows"]:
            labels.setdefault(label, tuple(color))
    legend_height = ROW_HEIGHT * (len(labels) + 1) + 4
    width = columns * CELL + LEGEND_WIDTH
    height = max(grid_rows * (CELL + caption), legend_height)
    sheet = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    face = font()
    for position, record in enumerate(cells):
        row, column = divmod(position, columns)
        left, top = column * CELL, row * (CELL + caption)
        sheet.paste(Image.fromarray(record["thumbnail"]), (left, top))
        draw.text(
            (left + 2, top + CELL + 1), str(record["item"])[:36], fill=(255, 255, 255), font=face
        )
    legend = []
    for number, (label, color) in enumerate(labels.items(), 1):
        left, top = columns * CELL + 6, 2 + number * ROW_HEIGHT
        draw.rectangle((left, top + 2, left + SWATCH - 1, top + 2 + SWATCH - 1), fill=color)
        draw.text((left + SWATCH + 6, top + 1), label[:38], fill=(230, 230, 230), font=face)
        legend.append({"label": label, "color": list(color), "swatch": [left, top + 2, SWATCH]})
    draw.text((columns * CELL + 6, 2), f"{len(cells)} item(s)", fill=(255, 255, 255), font=face)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, png_bytes(sheet, legend))
    return path


def preview_dataset(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    format: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    items: Collection[str] | str | os.PathLike[str] | None = None,
    limit: int | None = None,
    grid: int | None = None,
    images: str | os.PathLike[str] | None = None,
    boundaries: bool = True,
    jobs: int | None = None,
    registry: Registry | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> PreviewReport:
    """Render the items of ``source`` (all, ``items``, the first ``limit``) as one PNG each in
    the folder ``output``, or, with ``grid=N``, a contact sheet of the first N as the file
    ``output`` (a folder gets ``contact-sheet.png``)."""
    if grid is not None:
        if grid < 1:
            raise UsageError(f"--grid must be at least 1, not {grid}")
        limit = grid if limit is None else min(limit, grid)
    if images is not None and not Path(images).is_dir():
        raise UsageError(f"--images {images} is not a folder")
    dataset = open(source, format, limit=limit, items=items, registry=registry, **(options or {}))
    out = Path(output)
    settings = PreviewOptions(
        images=str(images) if images is not None else None,
        boundaries=boundaries,
        thumbnail=grid is not None,
    )
    if out.exists() and not out.is_dir() and grid is None:
        raise UsageError(f"output {out} is a file; one PNG per item needs a folder")
    report = PreviewReport(dataset.format)
    rendered = []
    for done, (status, result) in enumerate(
        dataset.map_items(render, jobs=jobs, output=out, options={"preview": settings}), 1
    ):
        if progress:
            progress(done, dataset.size)
        if status != "ok":
            report.errors.append(result)
            continue
        if grid is not None:
            rendered.append(result)
        else:
            report.files.append(Path(result["file"]))
    if grid is not None and rendered:
        sheet = out / "contact-sheet.png" if out.is_dir() or not out.suffix else out
        report.files.append(contact_sheet(rendered, sheet))
    report.rendered = len(rendered) if grid is not None else len(report.files)
    return report


@dataclass
class PreviewReport:
    """What ``preview`` drew: files written, items rendered, items that failed."""

    format: str
    files: list[Path] = field(default_factory=list)
    rendered: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0: every item rendered; 3: some failed; 1: none rendered."""
        if not self.errors:
            return 0
        return 3 if self.rendered else 1
