"""File names of the nucleus layout, shared by the importer and the exporter."""

from __future__ import annotations

ANNOTATIONS = "annotations.jsonl"
MASKS = "masks"
TAXONOMY = "taxonomy.json"
IMAGES = "images.jsonl"
ITEMS = "items.jsonl"
REMOTE_SCHEMES = ("s3://", "gs://", "https://", "http://")
"""Schemes the Nucleus SDK treats as remote (``nucleus.annotation.is_local_path``)."""


def is_remote(url: str) -> bool:
    """Whether the Nucleus SDK would treat ``url`` as remote rather than a local file."""
    return url.lower().startswith(REMOTE_SCHEMES)
