"""Flatten overlapping instances into one index mask by an explicit rule, losing nothing.

Each instance arrives as the foreground intervals of its RLE (see :mod:`segconvert.rle`).
Instances are painted in the rule's order straight into a column-major index mask (no H x W
bitmap per instance, no Python loop over intervals: see
:func:`segconvert.rle.paint_intervals`), which also gives the result's runs, hence every
instance's visible pixels, without scanning the mask. What an instance has under others (its
hidden part) comes from the same painting (the segments it covers that another took), kept as
a compressed RLE string so the way back can restore the full instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from segconvert import Intervals, area_of, encode_runs, paint_intervals, runs_of

RULES = ("smaller-on-top", "later-on-top", "score", "error")
"""``--overlap`` choices: the smaller instance wins (default), the later one in the file wins,
the higher score wins, or any overlap fails the item."""


@dataclass(frozen=True)
class Flattened:
    """The index mask (0 = uncovered, ``i + 1`` = instance ``i``) and what each instance kept.

    ``hidden[i]`` is instance ``i``'s pixels under others as a compressed RLE string, or
    ``None`` when it has none (or hidden parts were not asked for).
    """

    mask: npt.NDArray[Any]
    areas: list[int]
    visible: list[int]
    hidden: list[str | None]

    @property
    def occluded_pixels(self) -> int:
        """Pixels of instances painted over by another instance."""
        return sum(a - v for a, v in zip(self.areas, self.visible, strict=True))


def draw_order(rule: str, areas: Sequence[int], scores: Sequence[float | None]) -> list[int]:
    """Instance positions in painting order: the last painted ends up on top."""
    positions = list(range(len(areas)))
    if rule == "smaller-on-top":
        return sorted(positions, key=lambda i: (-areas[i], i))
    if rule == "score":
        missing = sum(score is None for score in scores)
        if missing:
            raise ValueError(f"--overlap score needs a score on every instance; {missing} lack one")
        return sorted(positions, key=lambda i: (float(scores[i] or 0.0), i))
    return positions  # later-on-top; error (order is irrelevant when nothing overlaps)


def flatten(
    instances: Sequence[Intervals],
    rule: str,
    scores: Sequence[float | None],
    shape: tuple[int, int],
    dtype: type[np.unsignedinteger[Any]],
    *,
    keep_hidden: bool = True,
) -> Flattened:
    """Paint ``instances`` (foreground intervals, column-major) into an H x W index mask.

    Raises ``ValueError`` for rule ``error`` when two instances share a pixel.
    """
    height, width = shape
    count = len(instances)
    areas = [area_of(i) for i in instances]
    painted = paint_intervals(instances, draw_order(rule, areas, scores), height * width, dtype)
    shown = np.bincount(
        painted.values.astype(np.intp, copy=False),
        weights=painted.ends - painted.starts,
        minlength=count + 1,
    )
    visible = shown[1 : count + 1].astype(np.int64).tolist()
    if rule == "error":
        for position, (area, kept) in enumerate(zip(areas, visible, strict=True)):
            if area > kept:
                raise ValueError(f"instance {position + 1} overlaps another (--overlap error)")
    hidden: list[str | None] = [None] * count
    if keep_hidden:
        for position, (area, kept) in enumerate(zip(areas, visible, strict=True)):
            if area > kept:
                part = painted.hidden(position)
                hidden[position] = encode_runs(runs_of(part, height * width), height, width)
    flat = painted.flat
    return Flattened(flat.reshape(width, height).T, areas, visible, hidden)
