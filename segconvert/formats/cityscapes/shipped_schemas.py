"""The JSON Schemas the cityscapes format ships (in ``schemas/`` next to this module)."""

from segconvert import Schema

CITYSCAPES_LABELS = Schema("cityscapes-labels", __package__)
"""``labels.json``: a Cityscapes label table."""
SCHEMAS = (CITYSCAPES_LABELS,)
