"""Flatten overlapping instances into one index mask by an explicit rule, losing nothing.

Each instance arrives as the foreground intervals of its RLE (see :mod:`segconvert.rle`).
Instances are painted in the rule's order, interval by interval, straight into a
column-major index mask (no H x W bitmap per instance). One pass over the result then gives
every instance's visible pixels; what an instance has under others (its hidden part) is the
difference of its intervals and its visible ones, kept as a compressed RLE string so the way
back can restore the full instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from segconvert import Intervals, area_of, encode_runs, intervals_by_value, runs_of
from segconvert import symmetric_difference as interval_xor

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
    flat = np.zeros(height * width, dtype=dtype)
    for position in draw_order(rule, areas, scores):
        value = position + 1
        starts, ends = instances[position]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            flat[start:end] = value
    counts, visible_intervals = intervals_by_value(flat, count + 1)
    visible = counts[1:].tolist()
    if rule == "error":
        for position, (area, shown) in enumerate(zip(areas, visible, strict=True)):
            if area > shown:
                raise ValueError(f"instance {position + 1} overlaps another (--overlap error)")
    hidden: list[str | None] = [None] * count
    next(visible_intervals)  # value 0: the uncovered pixels
    for position, shown_intervals in enumerate(visible_intervals):
        if keep_hidden and areas[position] > visible[position]:
            part = interval_xor(instances[position], shown_intervals)
            hidden[position] = encode_runs(runs_of(part, flat.size), height, width)
    return Flattened(flat.reshape(width, height).T, areas, visible, hidden)
