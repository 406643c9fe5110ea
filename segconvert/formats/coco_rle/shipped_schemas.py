"""The JSON Schemas the coco-rle format ships (in ``schemas/`` next to this module)."""

from segconvert import Schema

COCO_INSTANCES = Schema("coco-instances", __package__)
"""The COCO instances JSON with RLE masks (``$defs``: ``image``, ``annotation``)."""
SA1B_IMAGE = Schema("sa1b-image", __package__)
"""One SA-1B-style per-image JSON."""
COCO_RESULTS = Schema("coco-results", __package__)
"""A COCO results list with RLE masks (``$defs``: ``result``), as ``COCO.loadRes`` reads it."""
SCHEMAS = (COCO_INSTANCES, SA1B_IMAGE, COCO_RESULTS)
