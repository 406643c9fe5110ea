"""The ``coco-panoptic`` format: COCO panoptic JSON + RGB id PNGs, both directions.

PNG ids are ``R + 256*G + 256**2*B``; id 0 is void. Registered like any third-party plugin;
imports only segconvert's public API.
"""

from __future__ import annotations

from collections.abc import Iterable

from segconvert import Exporter, Importer, hookimpl

from .exporter import EXPORTER
from .importer import IMPORTER


@hookimpl
def segconvert_importers() -> Iterable[Importer]:
    """The ``coco-panoptic`` importer."""
    return [IMPORTER]


@hookimpl
def segconvert_exporters() -> Iterable[Exporter]:
    """The ``coco-panoptic`` exporter."""
    return [EXPORTER]
