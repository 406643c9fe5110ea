"""COCO RLE at the level of its runs: decode, paint, split an index mask, encode.

A COCO RLE lists run lengths over the image in column-major (Fortran) order, starting with a
run of zeros. Working on the runs instead of on H x W bitmaps makes every step cost the number
of runs, not the number of pixels: a mask's foreground is a sorted list of half-open intervals
``[start, end)`` of column-major pixel offsets.

The compressed string form follows ``rleFrString`` / ``rleToString`` of cocoapi's
``maskApi.c``: decoding is vectorised with numpy; encoding uses pycocotools' C code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Runs = npt.NDArray[np.int64]
"""Run lengths, alternating background / foreground, starting with background."""
Intervals = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""Foreground as ``(starts, ends)``: sorted half-open column-major pixel ranges."""

_MAX_DIGITS = 12
"""Longest number accepted in a compressed string (12 * 5 bits; pycocotools' own are <= 7)."""


def decode_counts(counts: str | bytes) -> Runs:
    """The run lengths of a compressed COCO RLE string, checked, without a bitmap.

    Raises ``ValueError`` on a character outside the alphabet, a string ending inside a
    number, an over-long number or a negative run (what would make pycocotools write out of
    bounds or read garbage).
    """
    if isinstance(counts, str) and not counts.isascii():
        raise ValueError("a non-ASCII character is not valid in an RLE string")
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    if not data:
        return np.zeros(0, dtype=np.int64)
    codes = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    bad = (codes < 0) | (codes >= 64)
    if bad.any():
        position = int(np.argmax(bad))
        raise ValueError(
            f"character {chr(data[position])!r} is not valid in an RLE string"
            if data[position] < 128
            else "a non-ASCII character is not valid in an RLE string"
        )
    more = (codes & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE string ends inside a number")
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_DIGITS:
        raise ValueError("RLE run length is too large")
    digit = np.arange(codes.size, dtype=np.int64) - np.repeat(starts, lengths)
    values = np.add.reduceat((codes & 0x1F) << (5 * digit), starts)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs = values
    runs[1::2] = np.cumsum(values[1::2])  # counts[m] += counts[m - 2] for m > 2
    runs[2::2] = np.cumsum(values[2::2])
    if runs.size and int(runs.min()) < 0:
        raise ValueError("RLE run length is negative")
    return runs


def encode_runs(runs: npt.ArrayLike, height: int, width: int) -> str:
    """Run lengths -> the compressed COCO RLE string (pycocotools' encoder)."""
    from pycocotools import mask as mask_utils

    counts = np.asarray(runs, dtype=np.int64).tolist()
    encoded = mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    text: str = encoded["counts"].decode("ascii")
    return text


def intervals_of(runs: Runs) -> Intervals:
    """The foreground intervals of run lengths (empty runs merge their neighbours)."""
    bounds = np.cumsum(runs)
    starts, ends = bounds[0:-1:2], bounds[1::2]
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size > 1:  # a zero-length background run joins two foreground runs
        joined = starts[1:] == ends[:-1]
        if joined.any():
            first = np.concatenate(([True], ~joined))
            last = np.concatenate((~joined, [True]))
            starts, ends = starts[first], ends[last]
    return starts, ends


def runs_of(intervals: Intervals, total: int) -> Runs:
    """Foreground intervals -> run lengths over ``total`` pixels (the inverse of
    :func:`intervals_of`)."""
    starts, ends = intervals
    bounds = np.empty(2 * starts.size + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = starts
    bounds[2:-1:2] = ends
    bounds[-1] = total
    runs = np.diff(bounds)
    if runs.size > 1 and runs[-1] == 0:
        runs = runs[:-1]  # pycocotools ends on the last non-empty run
    return runs


def area_of(intervals: Intervals) -> int:
    """Pixel count of foreground intervals."""
    return int((intervals[1] - intervals[0]).sum())


def symmetric_difference(a: Intervals, b: Intervals) -> Intervals:
    """Pixels in exactly one of ``a`` and ``b``: ``a - b`` when ``b`` lies inside ``a``,
    ``a | b`` when they are disjoint. Costs the number of intervals."""
    merged = np.concatenate((_boundaries(a), _boundaries(b)))
    merged.sort(kind="stable")  # two sorted runs: a linear merge
    single = merged[1:] != merged[:-1]  # a boundary of both cancels out
    keep = np.concatenate(([True], single)) & np.concatenate((single, [True]))
    toggles = merged[keep]
    return toggles[0::2], toggles[1::2]


def _boundaries(intervals: Intervals) -> npt.NDArray[np.int64]:
    """``start0, end0, start1, end1, ...``: strictly increasing for disjoint, non-touching
    intervals (as :func:`intervals_of` and :func:`column_runs` give)."""
    starts, ends = intervals
    points = np.empty(2 * starts.size, dtype=np.int64)
    points[0::2] = starts
    points[1::2] = ends
    return points


def column_runs(
    flat: npt.NDArray[Any],
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Maximal runs of equal values of a flat array: ``(values, starts, ends)``. One pass."""
    if flat.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return flat[:0], empty, empty
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.empty(changes.size + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = changes
    ends = np.empty_like(starts)
    ends[:-1] = changes
    ends[-1] = flat.size
    return flat[starts], starts, ends


def intervals_by_value(
    flat: npt.NDArray[Any], count: int
) -> tuple[npt.NDArray[np.int64], Iterator[Intervals]]:
    """Split a flat column-major index mask into each value's intervals, in one pass.

    Returns ``(pixel counts per value 0..count-1, intervals of value 0, 1, ... count-1)``.
    """
    return group_runs(*column_runs(flat), count)


def group_runs(
    values: npt.NDArray[Any],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    count: int,
) -> tuple[npt.NDArray[np.int64], Iterator[Intervals]]:
    """Maximal runs ``(values, starts, ends)`` grouped by value, as :func:`intervals_by_value`."""
    values = values.astype(np.intp, copy=False)
    areas = np.bincount(values, weights=ends - starts, minlength=count).astype(np.int64)
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(count + 1))

    def each() -> Iterator[Intervals]:
        for value in range(count):
            chosen = order[bounds[value] : bounds[value + 1]]
            yield starts[chosen], ends[chosen]

    return areas[:count], each()


@dataclass(frozen=True)
class Painted:
    """What :func:`paint_intervals` made: the flat mask, its maximal runs, and what each
    instance lost.

    ``edges`` cut the pixel range into elementary segments (no painted interval starts or ends
    inside one); ``top[k]`` is segment ``k``'s value; ``covered[i]`` lists the segments
    instance ``i`` covers.
    """

    flat: npt.NDArray[Any]
    values: npt.NDArray[Any]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    edges: npt.NDArray[np.int64]
    top: npt.NDArray[Any]
    covered: list[npt.NDArray[np.int64] | None]

    def hidden(self, position: int) -> Intervals:
        """Instance ``position``'s pixels under others, as maximal intervals (a gather over the
        segments it covers, no pass over its pixels)."""
        covered = self.covered[position]
        if covered is None:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        lost = covered[self.top[covered] != position + 1]
        starts, ends = self.edges[lost], self.edges[lost + 1]
        if starts.size > 1:  # neighbouring segments join
            joined = starts[1:] == ends[:-1]
            if joined.any():
                starts = starts[np.concatenate(([True], ~joined))]
                ends = ends[np.concatenate((~joined, [True]))]
        return starts, ends


def paint_intervals(
    instances: Sequence[Intervals],
    order: Iterable[int],
    total: int,
    dtype: type[np.unsignedinteger[Any]],
) -> Painted:
    """Paint ``instances[i]`` with value ``i + 1`` in ``order`` (the last painted on top) into a
    flat mask of ``total`` pixels; also give the result's maximal runs and each instance's
    hidden part without scanning the pixels.

    Every interval boundary of every instance cuts the pixel range into elementary segments
    that no painted interval starts or ends inside, so each segment takes one value: the
    segments' values are painted (a vectorised range fill per instance, not a loop over
    intervals), then expanded to pixels once. The runs of the result are the segments with
    equal neighbours merged.
    """
    parts = [np.array([0, total], dtype=np.int64)]
    for starts, ends in instances:
        parts.append(starts)
        parts.append(ends)
    points = np.concatenate(parts)
    points.sort()
    distinct = np.empty(points.size, dtype=bool)
    distinct[0] = True
    np.not_equal(points[1:], points[:-1], out=distinct[1:])
    edges = points[distinct]  # 0, ..., total: the segments' edges
    segment_starts = edges[:-1]
    top = np.zeros(segment_starts.size, dtype=dtype)
    covered: list[npt.NDArray[np.int64] | None] = [None] * len(instances)
    for position in order:
        starts, ends = instances[position]
        if starts.size == 0:
            continue
        first = np.searchsorted(segment_starts, starts)  # exact: every start is an edge
        stop = np.searchsorted(segment_starts, ends)
        heads = np.cumsum(stop - first)
        step = np.ones(int(heads[-1]), dtype=np.int64)  # consecutive segment indices ...
        step[0] = first[0]
        step[heads[:-1]] = first[1:] - stop[:-1] + 1  # ... jumping to each interval's first
        segments = np.cumsum(step)
        top[segments] = position + 1
        covered[position] = segments
    flat = np.repeat(top, np.diff(edges))
    if top.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Painted(flat, top, empty, empty, edges, top, covered)
    change = np.empty(top.size, dtype=bool)
    change[0] = True
    np.not_equal(top[1:], top[:-1], out=change[1:])
    run_starts = segment_starts[change]
    run_ends = np.empty_like(run_starts)
    run_ends[:-1] = run_starts[1:]
    run_ends[-1] = total
    return Painted(flat, top[change], run_starts, run_ends, edges, top, covered)


def column_major(mask: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The pixels of an H x W mask in COCO RLE order (column by column), flat."""
    return np.asarray(mask).T.ravel()


def bbox_of(intervals: Intervals, height: int) -> list[float]:
    """COCO XYWH box of foreground intervals of an image ``height`` pixels tall
    (pycocotools' ``toBbox``)."""
    starts, ends = intervals
    if starts.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    last = ends - 1
    first_col, first_row = np.divmod(starts, height)
    last_col, last_row = np.divmod(last, height)
    x0, x1 = int(first_col.min()), int(last_col.max())
    if (first_col != last_col).any():  # a run wraps into the next column
        y0, y1 = 0, height - 1
    else:
        y0, y1 = int(first_row.min()), int(last_row.max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]
