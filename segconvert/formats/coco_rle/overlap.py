"""Flatten overlapping instance masks into one index mask, by an explicit rule.

Instances arrive as compressed RLEs (small); their areas come from the RLE, and each mask is
decoded only when it is painted, so memory stays at one mask per image, not one per instance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

RULES = ("smaller-on-top", "later-on-top", "score", "error")
"""``--overlap`` choices: the smaller instance wins (default), the later one in the file wins,
the higher score wins, or any overlap fails the item."""


@dataclass(frozen=True)
class Flattened:
    """The index mask (0 = uncovered, ``i + 1`` = instance ``i``) and what each instance kept."""

    mask: npt.NDArray[Any]
    areas: list[int]
    visible: list[int]

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
    count: int,
    areas: Sequence[int],
    decode: Callable[[int], npt.NDArray[np.uint8]],
    rule: str,
    scores: Sequence[float | None],
    shape: tuple[int, int],
    dtype: type[np.unsignedinteger[Any]],
) -> Flattened:
    """Paint instances ``0..count-1`` (``decode(i)`` gives a binary H x W mask) by ``rule``.

    Raises ``ValueError`` for rule ``error`` when two instances share a pixel.
    """
    result = np.zeros(shape, dtype=dtype)
    for position in draw_order(rule, areas, scores):
        pixels = decode(position).astype(bool)
        if rule == "error" and result[pixels].any():
            raise ValueError(f"instance {position + 1} overlaps an earlier one (--overlap error)")
        result[pixels] = position + 1
    counts = np.bincount(result.ravel(), minlength=count + 1)
    return Flattened(result, list(areas), [int(c) for c in counts[1 : count + 1]])
