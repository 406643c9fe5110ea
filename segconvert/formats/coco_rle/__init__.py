"""The ``coco-rle`` format: COCO instances / results / LVIS JSON and SA-1B per-image JSONs.

Segmentations may be compressed RLE, uncompressed RLE or polygons, mixed freely (decoded
with pycocotools). Overlapping instances are flattened into one index mask by an explicit
``--overlap`` rule; what got hidden is reported. Registered like any third-party plugin;
imports only segconvert's public API.
"""

from __future__ import annotations

from collections.abc import Iterable

from segconvert import Exporter, Importer, hookimpl

from .exporter import EXPORTER
from .importer import IMPORTER


@hookimpl
def segconvert_importers() -> Iterable[Importer]:
    """The ``coco-rle`` importer."""
    return [IMPORTER]


@hookimpl
def segconvert_exporters() -> Iterable[Exporter]:
    """The ``coco-rle`` exporter."""
    return [EXPORTER]
