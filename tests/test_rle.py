"""segconvert.rle: run-level COCO RLE agrees with pycocotools on every mask, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from segconvert.rle import (
    area_of,
    bbox_of,
    column_major,
    decode_counts,
    encode_runs,
    intervals_by_value,
    intervals_of,
    paint_intervals,
    runs_of,
    symmetric_difference,
)


def random_masks(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(count):
        height, width = (int(v) for v in rng.integers(1, 50, 2))
        binary = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        if k % 5 == 0:
            binary[:] = 0
        if k % 7 == 0:
            binary[:] = 1
        yield binary


def test_runs_intervals_strings_and_boxes_match_pycocotools_on_random_masks():
    for binary in random_masks(400):
        height, width = binary.shape
        theirs = mask_utils.encode(np.asfortranarray(binary))
        runs = decode_counts(theirs["counts"])
        assert int(runs.sum()) == height * width
        intervals = intervals_of(runs)
        painted = np.zeros(height * width, dtype=bool)
        for start, end in zip(*intervals, strict=True):
            painted[start:end] = True
        assert np.array_equal(painted, column_major(binary).astype(bool))
        assert area_of(intervals) == int(mask_utils.area(theirs))
        assert bbox_of(intervals, height) == mask_utils.toBbox(theirs).tolist()
        assert encode_runs(runs_of(intervals, height * width), height, width) == theirs[
            "counts"
        ].decode("ascii")


def test_zero_length_runs_inside_an_uncompressed_rle_join_their_neighbours():
    starts, ends = intervals_of(np.array([2, 3, 0, 4, 1], dtype=np.int64))
    assert starts.tolist() == [2] and ends.tolist() == [9]


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("0o", "ends inside"),
        ("\u00ff", "not valid"),
        ("0 1", "not valid"),
        ("ooooooooooooo0", "too large"),
    ],
)
def test_malformed_strings_are_refused_before_any_pixel_is_written(counts, message):
    with pytest.raises(ValueError, match=message):
        decode_counts(counts)


def test_negative_runs_are_refused():
    with pytest.raises(ValueError, match="negative"):
        decode_counts("051@")  # the fourth run: 5 plus a delta of -16


def test_an_index_mask_splits_into_every_value_in_one_pass():
    rng = np.random.default_rng(3)
    mask = rng.integers(0, 5, (30, 20)).astype(np.uint8)
    areas, each = intervals_by_value(column_major(mask), 6)
    for value, intervals in enumerate(each):
        binary = (mask == value).astype(np.uint8)
        assert areas[value] == binary.sum()
        theirs = mask_utils.encode(np.asfortranarray(binary))
        assert encode_runs(runs_of(intervals, mask.size), 30, 20) == theirs["counts"].decode()


def test_symmetric_difference_cuts_a_part_out_and_joins_disjoint_parts():
    whole = (np.array([0, 10]), np.array([8, 20]))
    part = (np.array([2, 10]), np.array([4, 12]))
    cut = symmetric_difference(whole, part)
    assert cut[0].tolist() == [0, 4, 12] and cut[1].tolist() == [2, 8, 20]
    joined = symmetric_difference(cut, part)
    assert joined[0].tolist() == whole[0].tolist() and joined[1].tolist() == whole[1].tolist()


@pytest.mark.parametrize("seed", range(6))
def test_painting_by_segments_is_painting_pixel_by_pixel_and_its_runs_are_the_masks(seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 40, 2))
    total = height * width
    instances = []
    for k in range(int(rng.integers(0, 12))):
        binary = np.zeros((height, width), dtype=np.uint8)
        if k % 4 != 3:  # every fourth instance is empty
            y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
            y1, x1 = int(rng.integers(y0, height)) + 1, int(rng.integers(x0, width)) + 1
            binary[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        instances.append(
            intervals_of(decode_counts(mask_utils.encode(np.asfortranarray(binary))["counts"]))
        )
    order = [int(i) for i in rng.permutation(len(instances))]
    expected = np.zeros(total, dtype=np.uint8)
    for position in order:
        for start, end in zip(*instances[position], strict=True):
            expected[start:end] = position + 1
    painted = paint_intervals(instances, order, total, np.uint8)
    flat, values, starts, ends = painted.flat, painted.values, painted.starts, painted.ends
    assert flat.dtype == np.uint8
    np.testing.assert_array_equal(flat, expected)
    changes = np.flatnonzero(expected[1:] != expected[:-1]) + 1
    np.testing.assert_array_equal(starts, np.concatenate(([0], changes)))
    np.testing.assert_array_equal(ends, np.concatenate((changes, [total])))
    np.testing.assert_array_equal(values, expected[starts])
    for position, intervals in enumerate(instances):  # hidden: the instance's pixels not shown
        mine = np.zeros(total, dtype=bool)
        for start, end in zip(*intervals, strict=True):
            mine[start:end] = True
        lost_starts, lost_ends = intervals_of(runs_of_mask(mine & (expected != position + 1)))
        hidden_starts, hidden_ends = painted.hidden(position)  # maximal intervals
        np.testing.assert_array_equal(hidden_starts, lost_starts)
        np.testing.assert_array_equal(hidden_ends, lost_ends)


def runs_of_mask(flat):
    counts = mask_utils.encode(np.asfortranarray(flat.reshape(-1, 1).astype(np.uint8)))["counts"]
    return decode_counts(counts)


def test_painting_nothing_into_nothing():
    painted = paint_intervals([], [], 0, np.uint8)
    assert painted.flat.size == painted.values.size == painted.starts.size == 0
