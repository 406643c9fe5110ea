"""The ``cityscapes`` format: gtFine/gtCoarse label, instance, colour PNGs and polygons JSON.

Instance-exact both ways: ``class * 1000 + k`` values are instances, bare class ids on classes
with instances are crowds (groups). Registered like any third-party plugin; imports only
segconvert's public API.
"""

from __future__ import annotations

from collections.abc import Iterable

from segconvert import Exporter, Importer, hookimpl

from .exporter import EXPORTER
from .importer import IMPORTER


@hookimpl
def segconvert_importers() -> Iterable[Importer]:
    """The ``cityscapes`` importer."""
    return [IMPORTER]


@hookimpl
def segconvert_exporters() -> Iterable[Exporter]:
    """The ``cityscapes`` exporter."""
    return [EXPORTER]
