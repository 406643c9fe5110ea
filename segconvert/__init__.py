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
from segconvert.activity import report_activity
from segconvert.api import OpenDataset, open, write
from segconvert.coco import (
    assign_ids,
    categories_from_coco,
    categories_to_coco,
    fallback_color,
    image_record,
    missing_ids,
    placeholder_categories,
    reference_id_from_names,
)
from segconvert.convert import ERROR_REPORT_NAME, ConversionReport, convert
from segconvert.descriptors import STRICT, ExportContext, Exporter, Importer, Option
from segconvert.detection import (
    Confidence,
    Detection,
    as_detection,
    first_item_keys,
    json_first_item,
    json_root,
)
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
    ImageKey,
    ItemRef,
    ItemReference,
    MetaKey,
    RejectedItem,
    Sample,
    Segment,
    reject,
    smallest_index_dtype,
)
from segconvert.registry import Registry, build_registry
from segconvert.schemas import Schema
from segconvert.storage import (
    Spool,
    location,
    make_folder,
    open_input,
    read_bytes,
    write_json_streamed,
)
from segconvert.storage import is_remote as is_remote_location
from segconvert.subset import Subset
from segconvert.validate import validate_dataset

__all__ = [
    "DEFAULT_VOID_LABEL",
    "ERROR_REPORT_NAME",
    "MAX_IMAGE_PIXELS",
    "STRICT",
    "Category",
    "Confidence",
    "ConversionReport",
    "Dataset",
    "Detection",
    "ExportContext",
    "Exporter",
    "FormatConflictError",
    "Importer",
    "InputError",
    "ItemError",
    "ItemRef",
    "ImageKey",
    "ItemReference",
    "MetaKey",
    "OpenDataset",
    "Option",
    "OutputError",
    "PluginError",
    "Registry",
    "RejectedItem",
    "Sample",
    "Schema",
    "SegconvertError",
    "Segment",
    "Spool",
    "Subset",
    "UnknownFormatError",
    "UsageError",
    "ValidationError",
    "as_detection",
    "assign_ids",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "build_registry",
    "categories_from_coco",
    "categories_to_coco",
    "compressed_rle",
    "convert",
    "decode_compressed_rle",
    "decode_segmentation",
    "encode_png",
    "encode_rle",
    "fallback_color",
    "first_item_keys",
    "hookimpl",
    "ids_to_rgb_table",
    "image_record",
    "json_first_item",
    "json_lines",
    "json_native",
    "json_root",
    "json_sections",
    "json_stream",
    "is_remote_location",
    "json_top_level_is_list",
    "location",
    "make_folder",
    "map_ids",
    "missing_ids",
    "open_input",
    "open",
    "paint",
    "placeholder_categories",
    "parse_json_line",
    "read_bytes",
    "read_head",
    "read_json",
    "read_png",
    "reference_id_from_names",
    "reject",
    "rgb_to_id",
    "report_activity",
    "rle_area",
    "rle_area_and_bbox",
    "safe_join",
    "schemas",
    "segment_stats",
    "smallest_index_dtype",
    "validate_dataset",
    "write_json_streamed",
    "write",
    "write_png",
]
