"""The JSON Schemas the nucleus format ships (in ``schemas/`` next to this module)."""

from segconvert import Schema

NUCLEUS_ANNOTATION = Schema("nucleus-annotation", __package__)
"""One ``annotations.jsonl`` line as segconvert writes it (what Nucleus accepts)."""
NUCLEUS_ANNOTATION_INPUT = Schema("nucleus-annotation-input", __package__)
"""One annotation line as read (also Nucleus's own export rows)."""
NUCLEUS_ITEM = Schema("nucleus-item", __package__)
"""One ``items.jsonl`` line (a Nucleus DatasetItem)."""
TAXONOMY = Schema("segconvert-taxonomy", __package__)
"""``taxonomy.json``: the categories for the way back."""
IMAGE_RECORD = Schema("segconvert-image", __package__)
"""One ``images.jsonl`` line: the image facts Nucleus has no place for."""
SCHEMAS = (NUCLEUS_ANNOTATION, NUCLEUS_ANNOTATION_INPUT, NUCLEUS_ITEM, TAXONOMY, IMAGE_RECORD)
