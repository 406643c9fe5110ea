"""segconvert plugin: folders of single-channel semantic PNGs plus a labels file.

Registered through ``[project.entry-points.segconvert]``; uses only ``segconvert``'s public API.
"""

from __future__ import annotations

from collections.abc import Iterable

from segconvert import Exporter, Importer, hookimpl
from segconvert_semantic_png.format import EXPORTER, IMPORTER


@hookimpl
def segconvert_importers() -> Iterable[Importer]:
    """The ``semantic-png`` importer."""
    return [IMPORTER]


@hookimpl
def segconvert_exporters() -> Iterable[Exporter]:
    """The ``semantic-png`` exporter."""
    return [EXPORTER]
