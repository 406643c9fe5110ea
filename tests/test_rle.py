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
