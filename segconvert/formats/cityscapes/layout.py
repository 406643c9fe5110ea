"""Cityscapes file names: ``{split}/{city}/{city}_{seq}_{frame}_gtFine_{type}.{ext}``."""

from __future__ import annotations

import re
from pathlib import Path

FILE_NAME = re.compile(
    r"^(?P<ref>.+?)_(?P<kind>gtFine|gtCoarse)_"
    r"(?P<type>instanceIds|labelIds|labelTrainIds|polygons|color|instanceTrainIds)"
    r"\.(?P<ext>png|json)$"
)
FRAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)$")
SOURCE_TYPES = ("instanceIds", "labelIds", "labelTrainIds", "polygons")
"""The files a frame may be read from, in order of preference."""


def gt_path(
    root: Path, split: str, city: str, reference_id: str, kind: str, file_type: str
) -> Path:
    """Where the ``file_type`` file of a frame lives under an output ``root``."""
    extension = "json" if file_type == "polygons" else "png"
    return root / kind / split / city / f"{reference_id}_{kind}_{file_type}.{extension}"


def city_of(reference_id: str, default: str) -> str:
    """The city part of ``{city}_{seq}_{frame}``, else ``default``."""
    match = FRAME.match(reference_id)
    return match.group("city") if match else default
