"""segconvert: lossless, validated conversion of segmentation datasets to and from Scale Nucleus.

Everything a migration script or a plugin author needs is importable from here; the names
in ``__all__`` are the public API (built-in formats use nothing else).

    >>> from segconvert import convert
    >>> report = convert("panoptic_val2017.json", "out/", to_format="nucleus")  # doctest: +SKIP
    >>> report.exit_code  # doctest: +SKIP
    0
"""

from __future__ import annotations

from segconvert import schemas
from segconvert.api import OpenDataset, open, write
from segconvert.coco import (
    assign_ids,
    categories_from_coco,
    categories_to_coco,
    fallback_color,
    image_record,
    placeholder_categories,
    reference_id_from_names,
)
from segconvert.convert import ERROR_REPORT_NAME, ConversionReport, convert
from segconvert.descriptors import ExportContext, Exporter, Importer, Option
from segconvert.errors import (
    FormatConflictError,
    InputError,
    ItemError,
    OutputError,
    PluginError,
    SegconvertError,
    UnknownFormatError,
    UsageError,
    ValidationError,
)
from segconvert.files import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    json_lines,
    json_native,
    json_sections,
    json_stream,
    json_top_level_is_list,
    parse_json_line,
    read_head,
    read_json,
    safe_join,
)
from segconvert.hookspecs import hookimpl
from segconvert.masks import (
    MAX_IMAGE_PIXELS,
    check_canvas,
    check_points,
    check_polygon,
    compressed_rle,
    decode_compressed_rle,
    decode_segmentation,
    encode_png,
    encode_rle,
    ids_to_rgb_table,
    map_ids,
    paint,
    read_png,
    rgb_to_id,
    rle_area,
    rle_area_and_bbox,
    segment_stats,
    write_png,
)
from segconvert.model import (
    DEFAULT_VOID_LABEL,
    Category,
    Dataset,
    ItemRef,
    MetaKey,
    RejectedItem,
    Sample,
    Segment,
    reject,
    smallest_index_dtype,
)
from segconvert.registry import Registry, build_registry
from segconvert.subset import Subset
from segconvert.validate import validate_dataset

__all__ = [
    "DEFAULT_VOID_LABEL",
    "ERROR_REPORT_NAME",
    "MAX_IMAGE_PIXELS",
    "Category",
    "ConversionReport",
    "Dataset",
    "ExportContext",
    "Exporter",
    "FormatConflictError",
    "Importer",
    "InputError",
    "ItemError",
    "ItemRef",
    "MetaKey",
    "OpenDataset",
    "Option",
    "OutputError",
    "PluginError",
    "Registry",
    "RejectedItem",
    "Sample",
    "SegconvertError",
    "Segment",
    "Subset",
    "UnknownFormatError",
    "UsageError",
    "ValidationError",
    "assign_ids",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "build_registry",
    "categories_from_coco",
    "categories_to_coco",
    "check_canvas",
    "check_points",
    "check_polygon",
    "compressed_rle",
    "convert",
    "decode_compressed_rle",
    "decode_segmentation",
    "encode_png",
    "encode_rle",
    "fallback_color",
    "hookimpl",
    "ids_to_rgb_table",
    "image_record",
    "json_native",
    "json_lines",
    "json_sections",
    "json_stream",
    "json_top_level_is_list",
    "map_ids",
    "open",
    "paint",
    "placeholder_categories",
    "parse_json_line",
    "read_head",
    "read_json",
    "read_png",
    "reference_id_from_names",
    "reject",
    "rgb_to_id",
    "rle_area",
    "rle_area_and_bbox",
    "safe_join",
    "schemas",
    "segment_stats",
    "smallest_index_dtype",
    "validate_dataset",
    "write",
    "write_png",
]
