"""The JSON Schemas the coco-panoptic format ships (in ``schemas/`` next to this module)."""

from segconvert import Schema

COCO_PANOPTIC = Schema("coco-panoptic", __package__)
"""The COCO panoptic JSON (``$defs``: ``image``, ``annotation``)."""
SCHEMAS = (COCO_PANOPTIC,)
