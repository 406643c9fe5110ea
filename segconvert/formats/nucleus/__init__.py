"""The ``nucleus`` format: Scale Nucleus segmentation (mask PNG + Segments), both directions.

Layout written and read::

    OUT/annotations.jsonl   one nucleus.SegmentationAnnotation.to_json() per line
    OUT/masks/<reference_id>.png   mode "L" index masks
    OUT/taxonomy.json       categories + dataset metadata (segconvert's, for the way back)
    OUT/images.jsonl        per-image source facts (segconvert's, for the way back)
    OUT/items.jsonl         nucleus.DatasetItem JSON lines (only with --image-url-prefix)

Registered like any third-party plugin; imports only segconvert's public API.
"""

from __future__ import annotations

from collections.abc import Iterable

from segconvert import Exporter, Importer, hookimpl

from .exporter import EXPORTER
from .importer import IMPORTER


@hookimpl
def segconvert_importers() -> Iterable[Importer]:
    """The ``nucleus`` importer."""
    return [IMPORTER]


@hookimpl
def segconvert_exporters() -> Iterable[Exporter]:
    """The ``nucleus`` exporter."""
    return [EXPORTER]
