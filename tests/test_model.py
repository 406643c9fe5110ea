"""Hub invariants."""

from __future__ import annotations

import numpy as np
import pytest

from segconvert import ItemError, MetaKey, Sample, Segment, smallest_index_dtype


def sample(mask, segments):
    return Sample("r", mask.shape[1], mask.shape[0], mask, segments)


def test_a_pixel_value_without_a_segment_breaks_the_hub():
    with pytest.raises(ItemError) as caught:
        sample(np.array([[0, 1]], np.uint8), [Segment("a", 0)]).check()
    assert caught.value.rule == "unlisted-index"


def test_duplicate_indices_break_the_hub():
    with pytest.raises(ItemError) as caught:
        sample(np.array([[0]], np.uint8), [Segment("a", 0), Segment("b", 0)]).check()
    assert caught.value.rule == "duplicate-index"


def test_mask_must_be_the_image_size():
    bad = Sample("r", 3, 3, np.zeros((2, 3), np.uint8), [Segment("a", 0)])
    with pytest.raises(ItemError, match="mask is"):
        bad.check()


def test_void_and_category_come_from_the_standard_metadata_keys():
    assert Segment("void", 0, {MetaKey.VOID: True}).is_void
    assert Segment("car", 1, {MetaKey.CATEGORY_ID: 3}).category_id == 3
    assert Segment("x", 2).category_id is None and not Segment("x", 2).is_void


@pytest.mark.parametrize(
    ("count", "dtype"),
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.uint32)],
)
def test_index_masks_use_the_smallest_dtype(count, dtype):
    assert smallest_index_dtype(count) is dtype
