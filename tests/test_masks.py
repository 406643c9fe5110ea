"""PNG helpers: id encoding, stats, strict decoding, 16-bit round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segconvert import (
    ItemError,
    ids_to_rgb_table,
    masks,
    read_png,
    rgb_to_id,
    segment_stats,
    write_png,
)


@given(st.lists(st.integers(0, (1 << 24) - 1), min_size=1, max_size=50))
def test_rgb_id_encoding_round_trips_every_24_bit_id(ids):
    table = ids_to_rgb_table(ids)
    assert rgb_to_id(table[None, :, :])[0].tolist() == ids
    # The panopticapi formula, spelled out.
    r, g, b = table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2].astype(int)
    assert (r + 256 * g + 65536 * b).tolist() == ids


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 5), st.randoms(use_true_random=False))
def test_segment_stats_match_a_brute_force_count(height, width, count, rnd):
    mask = np.array([[rnd.randrange(count) for _ in range(width)] for _ in range(height)], np.uint8)
    areas, bboxes = segment_stats(mask, count)
    for index in range(count):
        ys, xs = np.nonzero(mask == index)
        assert areas[index] == len(ys)
        if len(ys):
            assert bboxes[index].tolist() == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
        else:
            assert bboxes[index].tolist() == [0, 0, 0, 0]


def test_uint16_masks_are_written_and_read_as_16_bit(tmp_path):
    values = np.array([[0, 7, 26001], [24000, 65535, 1]], dtype=np.uint16)
    write_png(tmp_path / "ids.png", values)
    assert Image.open(tmp_path / "ids.png").mode.startswith("I")
    assert np.array_equal(read_png(tmp_path / "ids.png", "gray16"), values)


def test_uint8_masks_are_mode_l(tmp_path):
    write_png(tmp_path / "m.png", np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert Image.open(tmp_path / "m.png").mode == "L"


@pytest.mark.parametrize(
    ("mode", "kind"), [("P", "gray8"), ("RGB", "gray8"), ("L", "rgb"), ("RGBA", "rgb")]
)
def test_the_wrong_png_mode_is_refused(tmp_path, mode, kind):
    Image.new(mode, (4, 3)).save(tmp_path / "m.png")
    with pytest.raises(ItemError) as caught:
        read_png(tmp_path / "m.png", kind, item="x")
    assert caught.value.rule == "png-mode" and caught.value.item == "x"


def test_a_jpeg_is_not_a_mask(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "m.png", format="JPEG")
    with pytest.raises(ItemError, match="not a PNG"):
        read_png(tmp_path / "m.png", "rgb")


def test_truncated_png_is_an_item_error(tmp_path):
    Image.new("L", (64, 64), 3).save(tmp_path / "m.png")
    data = (tmp_path / "m.png").read_bytes()
    (tmp_path / "m.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ItemError) as caught:
        read_png(tmp_path / "m.png", "gray8")
    assert caught.value.rule == "png-unreadable"


def test_huge_dimensions_are_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("L", (100, 100)).save(tmp_path / "m.png")
    monkeypatch.setattr(masks, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ItemError) as caught:
        read_png(tmp_path / "m.png", "gray8")
    assert caught.value.rule == "png-too-large"


def test_missing_png_is_png_missing(tmp_path):
    with pytest.raises(ItemError) as caught:
        read_png(tmp_path / "none.png", "rgb")
    assert caught.value.rule == "png-missing"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.randoms(use_true_random=False))
def test_rle_string_total_matches_the_mask_size_pycocotools_encodes(height, width, rnd):
    from segconvert.masks import decode_segmentation, encode_rle, rle_string_total

    binary = np.array([[rnd.random() < 0.4 for _ in range(width)] for _ in range(height)], np.uint8)
    rle = encode_rle(binary)
    assert rle_string_total(rle["counts"]) == height * width
    assert np.array_equal(decode_segmentation(rle, height, width), binary)


def test_rle_whose_runs_overflow_the_image_is_refused_before_decoding():
    from segconvert.masks import decode_segmentation, encode_rle

    big = encode_rle(np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError, match="sum to 100"):
        decode_segmentation({"size": [5, 5], "counts": big["counts"]}, 5, 5)


def test_uncompressed_rle_decodes_and_short_counts_are_refused():
    from segconvert.masks import decode_segmentation

    mask = decode_segmentation({"counts": [0, 20, 30], "size": [10, 5]}, 10, 5)
    assert mask.sum() == 20 and mask[0, 0] == 1
    with pytest.raises(ValueError, match="sum to 40"):
        decode_segmentation({"counts": [0, 20, 20], "size": [10, 5]}, 10, 5)


def test_rle_size_must_be_the_image_size():
    from segconvert.masks import decode_segmentation

    with pytest.raises(ValueError, match="not the image"):
        decode_segmentation({"counts": [50], "size": [5, 10]}, 10, 5)


def test_two_point_polygons_are_not_taken_for_bboxes():
    from segconvert.masks import decode_segmentation

    mask = decode_segmentation([[1, 1, 3, 1], [0, 0, 4, 0, 4, 4, 0, 4]], 6, 6)
    assert mask.shape == (6, 6) and mask.sum() == 16


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, (1 << 24) - 1), min_size=1, max_size=400, unique=True),
    st.integers(1, 8),
    st.integers(1, 8),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_map_ids_agrees_with_a_dictionary_lookup(keys, height, width, rnd, with_unknown):
    from segconvert import map_ids

    ids = np.array([[rnd.choice(keys) for _ in range(width)] for _ in range(height)], np.uint32)
    stranger = max(keys) + 1 if max(keys) + 1 < (1 << 24) else min(set(range(300)) - set(keys))
    if with_unknown:
        ids[0, 0] = stranger
    positions, counts, unknown = map_ids(ids, keys)
    if with_unknown:
        assert unknown == [stranger]
        return
    assert unknown == []
    where = {key: k for k, key in enumerate(keys)}
    assert positions.tolist() == [[where[v] for v in row] for row in ids.tolist()]
    assert counts.tolist() == [int((ids == key).sum()) for key in keys]
    assert positions.dtype == (np.uint8 if len(keys) < 255 else np.uint16)


def test_map_ids_past_65536_segments_does_not_wrap_into_false_matches():
    from segconvert import map_ids

    keys = list(range(1, 70_001))
    ids = np.array(keys + keys[:20_000], dtype=np.uint32).reshape(300, 300)
    positions, counts, unknown = map_ids(ids, keys)
    assert unknown == []
    assert np.array_equal(np.asarray(keys)[positions.ravel()], ids.ravel())
    assert counts[:20_000].tolist() == [2] * 20_000 and counts[69_999] == 1
