"""Pixel helpers for plugin authors: PNG read/write, RGB <-> id, per-segment area and bbox.

PNGs are decoded and encoded with imagecodecs (libpng and zlib; Pillow for palette PNGs). The
header is read first: the mode (a palette image is not an id map) and the size
(decompression bombs) are refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import numpy.typing as npt
from PIL import Image

from segconvert.errors import ItemError
from segconvert.rle import Runs, decode_counts
from segconvert.storage import atomic_write_bytes, open_input

MAX_IMAGE_PIXELS = 1 << 27
"""Largest mask (width x height) segconvert will decode: 134,217,728 pixels (e.g. 16384 x 8192),
checked from the PNG header before any pixel is decoded (decompression bombs)."""

PNG_COMPRESS_LEVEL = 1
"""zlib level for masks: level 1 is several times faster than 6 and barely larger on masks."""

# (PNG colour type, bit depth) -> the mode name Pillow would give it, for messages.
_PNG_MODES = {
    (0, 1): "1",
    (0, 2): "L;2",
    (0, 4): "L;4",
    (0, 8): "L",
    (0, 16): "I;16",
    (2, 8): "RGB",
    (2, 16): "RGB;16",
    (3, 1): "P;1",
    (3, 2): "P;2",
    (3, 4): "P;4",
    (3, 8): "P",
    (4, 8): "LA",
    (4, 16): "LA;16",
    (6, 8): "RGBA",
    (6, 16): "RGBA;16",
}
_KINDS = {
    "rgb": ({(2, 8)}, "8-bit RGB"),
    "gray8": ({(0, 8)}, "8-bit grayscale ('L')"),
    "gray16": ({(0, 16)}, "16-bit grayscale"),
    "gray": ({(0, 8), (0, 16)}, "8- or 16-bit grayscale"),
    "index": ({(0, 8), (3, 8)}, "8-bit grayscale or palette"),
}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """``(width, height, colour type, bit depth)`` from a PNG's IHDR, or None if not a PNG."""
    if len(data) < 26 or not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, colour, depth


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DROPPED_CHUNKS = {b"tRNS"}
"""Chunks left out before decoding: transparency is no part of an id map (a grayscale PNG with
tRNS would otherwise decode with an alpha channel)."""
ANCILLARY_ALLOWANCE = 16 << 20
"""Bytes of chunks beyond what the header's pixels can need (text, ICC profiles) a PNG may hold."""


def png_byte_bound(width: int, height: int, colour: int, depth: int) -> int:
    """Most bytes a valid PNG of this header needs: every row stored uncompressed, deflate's
    worst case (5 bytes per 16 KiB block), a 12-byte chunk per 1 KiB, and the ancillary
    allowance."""
    raw = height * (1 + (width * _CHANNELS.get(colour, 4) * depth + 7) // 8)
    return raw + raw // 1024 * 12 + raw // 16384 * 5 + ANCILLARY_ALLOWANCE


def read_png_stream(handle: Any, path: Path, *, item: str | None = None) -> bytes:
    """A PNG's bytes from an open file, header first: the size is checked against
    :data:`MAX_IMAGE_PIXELS` before anything else is read, then chunks are read one by one up
    to ``IEND`` (trailing bytes are never read) and at most :func:`png_byte_bound` bytes."""
    file = str(path)
    head = handle.read(33)
    header = png_header(head)
    if header is None:
        raise ItemError(f"{path}: not a PNG file", rule="png-unreadable", item=item, file=file)
    width, height, colour, depth = header
    if width * height > MAX_IMAGE_PIXELS:
        raise ItemError(
            f"{path}: {width}x{height} exceeds the limit of {MAX_IMAGE_PIXELS} pixels",
            rule="png-too-large",
            item=item,
            file=file,
        )
    bound = png_byte_bound(width, height, colour, depth)
    parts = [head]
    total = len(head)
    while True:
        chunk_head = handle.read(8)
        if len(chunk_head) < 8:
            break  # truncated: the decoder says so
        length, kind = struct.unpack(">I4s", chunk_head)
        total += 12 + length
        if total > bound:
            raise ItemError(
                f"{path}: more data than a {width}x{height} PNG can hold",
                rule="png-unreadable",
                item=item,
                file=file,
            )
        body = handle.read(length + 4)
        if kind not in _DROPPED_CHUNKS:
            parts.append(chunk_head)
            parts.append(body)
        if kind == b"IEND" or len(body) < length + 4:
            break
    return b"".join(parts)


def read_png(path: Path, kind: str, *, item: str | None = None) -> npt.NDArray[Any]:
    """Decode a PNG mask, insisting on its kind.

    The header is checked before any pixel is decoded: size (at most
    :data:`MAX_IMAGE_PIXELS`) and mode.

    Args:
        kind: ``"rgb"`` (H x W x 3 uint8), ``"gray8"`` (H x W uint8), ``"gray16"``
            (H x W uint16), ``"gray"`` (8- or 16-bit grayscale, returned as decoded) or
            ``"index"`` (8-bit grayscale or palette: the stored indices, not the colours).

    Raises:
        ItemError: ``png-missing``, ``png-unreadable``, ``png-too-large`` or ``png-mode``.
    """
    file = str(path)
    with open_input(path, item=item, rule="png-missing") as handle:
        data = read_png_stream(handle, path, item=item)
    width, height, colour, depth = png_header(data) or (0, 0, 0, 0)
    accepted, description = _KINDS[kind]
    if (colour, depth) not in accepted:
        mode = _PNG_MODES.get((colour, depth), f"colour type {colour}, {depth}-bit")
        raise ItemError(
            f"{path}: PNG mode {mode!r}, expected {description}",
            rule="png-mode",
            item=item,
            file=file,
        )
    try:
        if colour == 3:  # palette: Pillow keeps the indices (imagecodecs expands to RGB)
            with Image.open(io.BytesIO(data)) as image:
                array = np.asarray(image)
        else:
            array = imagecodecs.png_decode(data)
    except Exception as exc:  # corrupt or truncated data: any decoder error
        raise ItemError(
            f"{path}: corrupt or truncated PNG ({exc})", rule="png-unreadable", item=item, file=file
        ) from None
    if array.shape[:2] != (height, width):
        raise ItemError(
            f"{path}: decoded size differs from the header",
            rule="png-unreadable",
            item=item,
            file=file,
        )
    return array


def encode_png(array: npt.NDArray[Any]) -> bytes:
    """Encode uint8 H x W (mode L), H x W x 3 (RGB), H x W x 4 (RGBA) or uint16 H x W as PNG.

    zlib level 1 with the RLE strategy and a fixed SUB row filter: several times faster than
    Pillow's adaptive filtering on masks, and the files come out no larger (see
    ``../shared/reference/speed-floor.md``).
    """
    ok = (
        array.dtype == np.uint8
        and (array.ndim == 2 or array.ndim == 3 and array.shape[2] in (3, 4))
    ) or (array.dtype == np.uint16 and array.ndim == 2)
    if not ok:
        raise TypeError(f"cannot encode {array.dtype} array of shape {array.shape} as a PNG mask")
    if not array.flags.c_contiguous or 1 in array.shape:
        # a transposed view; or a side of 1, where numpy may keep non-canonical strides on a
        # "contiguous" array (which libpng's wrapper refuses)
        array = array.copy(order="C")
    data = imagecodecs.png_encode(
        array,
        level=PNG_COMPRESS_LEVEL,
        strategy=_Z_RLE,
        filter=_PNG_FILTER_SUB,
    )
    return data if isinstance(data, bytes) else bytes(data)


_Z_RLE = 3
_PNG_FILTER_SUB = 16


def write_png(path: Path, array: npt.NDArray[Any]) -> None:
    """Encode ``array`` (see :func:`encode_png`) and write it to ``path`` atomically."""
    atomic_write_bytes(path, encode_png(array))


def rgb_to_id(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """COCO panoptic colour -> id: ``R + 256 * G + 256**2 * B`` (H x W x 3 uint8 -> H x W).

    Reads each pixel's 3 bytes (and the next byte, masked off) as one little-endian uint32
    through a stride-3 view of the packed bytes: one copy, no per-channel temporaries.
    """
    height, width = rgb.shape[:2]
    packed = np.empty(height * width * 3 + 1, dtype=np.uint8)
    packed[:-1] = rgb.reshape(-1)
    packed[-1] = 0
    words = np.ndarray((height * width,), dtype="<u4", buffer=packed, strides=(3,))
    ids: npt.NDArray[np.uint32] = (words & 0xFFFFFF).astype(np.uint32, copy=False)
    return ids.reshape(height, width)


_TABLE_SIZE = 1 << 24
_UNKNOWN = 255
_lookup_table: npt.NDArray[np.uint8] | None = None


def map_ids(
    ids: npt.NDArray[np.uint32], keys: Sequence[int]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], list[int]]:
    """Map every pixel's id (< 2**24) to its position in ``keys``, in one pass.

    Returns ``(positions, counts, unknown)``: ``positions`` is H x W (uint8 when there are
    fewer than 255 keys, else uint16, or uint32 past 65,536 keys) holding the index into
    ``keys``; ``counts[k]`` is the
    pixel count of ``keys[k]``; ``unknown`` lists up to 10 ids present that are not in
    ``keys`` (``positions`` is then meaningless). Uses a reusable 2**24-entry lookup table
    (16 MB per process) when possible, ``searchsorted`` otherwise.
    """
    global _lookup_table
    key_array = np.asarray(keys, dtype=np.uint32)
    if len(keys) < _UNKNOWN:
        if _lookup_table is None:
            _lookup_table = np.full(_TABLE_SIZE, _UNKNOWN, dtype=np.uint8)
        table = _lookup_table
        table[key_array] = np.arange(len(keys), dtype=np.uint8)
        try:
            positions: npt.NDArray[Any] = np.take(table, ids)
        finally:
            table[key_array] = _UNKNOWN
        counts = np.bincount(positions.ravel(), minlength=256)
        unknown: list[int] = []
        if counts[_UNKNOWN]:
            unknown = np.unique(ids[positions == _UNKNOWN])[:10].tolist()
        return positions, counts[: len(keys)].astype(np.int64), unknown
    order = np.argsort(key_array, kind="stable")
    sorted_keys = key_array[order]
    found = np.minimum(np.searchsorted(sorted_keys, ids), len(keys) - 1)
    missing = sorted_keys[found] != ids
    if missing.any():
        return found, np.zeros(len(keys), np.int64), np.unique(ids[missing])[:10].tolist()
    position_type = np.uint16 if len(keys) <= 1 << 16 else np.uint32  # no wrap past 65,536
    positions = order.astype(position_type)[found]
    counts = np.bincount(positions.ravel(), minlength=len(keys)).astype(np.int64)
    return positions, counts, []


def ids_to_rgb_table(ids: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Ids -> an (N, 3) uint8 colour table, the inverse of :func:`rgb_to_id` for ids < 2**24."""
    values = np.asarray(ids, dtype=np.uint32)
    return np.stack([values & 0xFF, (values >> 8) & 0xFF, (values >> 16) & 0xFF], axis=-1).astype(
        np.uint8
    )


def paint(index_mask: npt.NDArray[Any], table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Map every pixel's index through ``table`` (a lookup table, one row per index)."""
    return np.take(table, index_mask, axis=0)


def segment_stats(
    index_mask: npt.NDArray[Any], count: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Area and tight XYWH bbox of every index ``0..count-1`` in one pass.

    Returns ``(areas, bboxes)``: ``areas[i]`` is the pixel count of index ``i``;
    ``bboxes[i]`` is ``[x, y, w, h]`` with ``w = max col - min col + 1`` (COCO's
    convention), or zeros when ``i`` is absent. Works on runs of equal pixels within a row,
    so the cost beyond one comparison pass is proportional to the number of runs.
    """
    height, width = index_mask.shape
    flat = index_mask.ravel()
    size = flat.size
    areas = np.zeros(count, dtype=np.int64)
    bboxes = np.zeros((count, 4), dtype=np.int64)
    if size == 0:
        return areas, bboxes
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.union1d(changes, np.arange(0, size, width))  # every run within one row
    ends = np.append(starts[1:], size)
    labels = flat[starts].astype(np.intp)
    rows, first_col = np.divmod(starts, width)
    last_col = (ends - 1) % width
    np.add.at(areas, labels, ends - starts)
    y0 = np.full(count, height, dtype=np.int64)
    x0 = np.full(count, width, dtype=np.int64)
    y1 = np.full(count, -1, dtype=np.int64)
    x1 = np.full(count, -1, dtype=np.int64)
    np.minimum.at(y0, labels, rows)
    np.maximum.at(y1, labels, rows)
    np.minimum.at(x0, labels, first_col)
    np.maximum.at(x1, labels, last_col)
    present = areas > 0
    bboxes[present] = np.stack(
        [x0[present], y0[present], x1[present] - x0[present] + 1, y1[present] - y0[present] + 1],
        axis=1,
    )
    return areas, bboxes


# ---------------------------------------------------------------- values before native code


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_canvas(width: Any, height: Any) -> tuple[int, int]:
    """``(width, height)`` as ints, if they make an image segconvert will allocate.

    Both must be positive integers and ``width * height`` at most :data:`MAX_IMAGE_PIXELS`
    (every declared size -- a JSON ``width``/``height``, an RLE ``size``, a polygons file's
    ``imgWidth``/``imgHeight`` -- passes here before any array is made). Raises ``ValueError``.
    """
    if not (_is_int(width) and _is_int(height)):
        raise ValueError(f"image size {width!r}x{height!r} is not a pair of integers")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is empty")
    if int(width) * int(height) > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image size {width}x{height} exceeds the limit of {MAX_IMAGE_PIXELS} pixels"
        )
    return int(width), int(height)


def check_polygon(coordinates: Sequence[Any], width: int, height: int) -> list[float]:
    """One flat polygon ``[x1, y1, x2, y2, ...]`` as floats, if native code may draw it.

    Every coordinate must be a finite number (not a bool) and lie within one image size of
    the image (``-width <= x <= 2 * width``, likewise y): pycocotools segfaults on NaN,
    infinity or coordinates near 3e8 and allocates in proportion to the outline's length.
    Raises ``ValueError`` naming the first bad value.
    """
    if len(coordinates) % 2:
        raise ValueError("a polygon must be a list of an even number of coordinates")
    values = []
    for position, value in enumerate(coordinates):
        if not _is_number(value):
            raise ValueError(f"polygon coordinate {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"polygon coordinate {value!r} is not finite")
        side = width if position % 2 == 0 else height
        if not -side <= number <= 2 * side:
            axis = "x" if position % 2 == 0 else "y"
            raise ValueError(
                f"polygon {axis} = {value!r} lies far outside the {width}x{height} image"
            )
        values.append(number)
    return values


def check_points(points: Any, width: int, height: int) -> list[tuple[float, float]]:
    """A polygon as ``[[x, y], ...]`` (Cityscapes) as float pairs, checked as
    :func:`check_polygon` checks a flat one; a point that is not a pair raises ``ValueError``."""
    if not isinstance(points, (list, tuple)):
        raise ValueError("a polygon must be a list of [x, y] points")
    flat: list[Any] = []
    for point in points:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ValueError(f"polygon point {point!r} is not an [x, y] pair")
        flat.extend(point)
    values = check_polygon(flat, width, height)
    return list(zip(values[::2], values[1::2], strict=True))


# ---------------------------------------------------------------- COCO RLE (via pycocotools)


def rle_string_total(counts: str) -> int:
    """Sum of the runs of a compressed COCO RLE string, without decoding the mask.

    pycocotools decodes runs into an h*w buffer without bounds checks, so a hostile or
    corrupt string whose runs sum past h*w writes out of bounds; check this first. Follows
    ``rleFrString`` in cocoapi's ``maskApi.c``. Raises ``ValueError`` on a malformed string.
    """
    return int(decode_counts(counts).sum())


def segmentation_runs(segmentation: Any, height: int, width: int) -> Runs:
    """Any COCO segmentation -> its run lengths (see :mod:`segconvert.rle`), checked.

    Compressed RLE strings are decoded straight to runs (no bitmap); uncompressed RLE is
    taken as it is; polygons are rasterised by pycocotools. Raises ``ValueError`` like
    :func:`compressed_rle`.
    """
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        _check_size(segmentation, height, width)
        runs = decode_counts(segmentation["counts"])
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        _check_size(segmentation, height, width)
        counts = segmentation["counts"]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError("uncompressed RLE counts must be non-negative integers")
        runs = np.asarray(counts, dtype=np.int64)
    else:
        return decode_counts(compressed_rle(segmentation, height, width)["counts"])
    total = int(runs.sum())
    if total != height * width:
        raise ValueError(f"RLE runs sum to {total}, not height*width = {height * width}")
    return runs


def _check_size(segmentation: dict[str, Any], height: int, width: int) -> None:
    size = segmentation.get("size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in size)
        or [int(v) for v in size] != [height, width]
    ):
        raise ValueError(
            f"RLE size {size} is not the image's [height, width] = [{height}, {width}]"
        )


def compressed_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """Any COCO segmentation -> pycocotools' compressed RLE (``counts`` as bytes), checked.

    Accepts compressed RLE (``counts`` str/bytes), uncompressed RLE (``counts`` a list, COCO's
    crowd form) and polygons (``[[x1, y1, x2, y2, ...], ...]``). An RLE's ``size`` must be
    ``[height, width]`` and its runs must sum to ``height * width``; otherwise ``ValueError``
    says which rule broke.
    """
    from pycocotools import mask as mask_utils

    width, height = check_canvas(width, height)
    if isinstance(segmentation, list):
        return _polygons_rle(segmentation, height, width)
    if (
        not isinstance(segmentation, dict)
        or "counts" not in segmentation
        or "size" not in segmentation
    ):
        raise ValueError("segmentation must be polygons or an RLE object with 'counts' and 'size'")
    _check_size(segmentation, height, width)
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise ValueError("uncompressed RLE counts must be non-negative integers")
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        text = counts.decode("ascii") if isinstance(counts, bytes) else counts
        total = rle_string_total(text)
    else:
        raise ValueError("RLE counts must be a string or a list of integers")
    if total != height * width:
        raise ValueError(f"RLE runs sum to {total}, not height*width = {height * width}")
    if isinstance(counts, list):
        rle: dict[str, Any] = mask_utils.frPyObjects(
            {"counts": counts, "size": [height, width]}, height, width
        )
        return rle
    return {"counts": text.encode("ascii"), "size": [height, width]}


def _polygons_rle(polygons: list[Any], height: int, width: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rings = []
    for ring in polygons:
        if not isinstance(ring, list):
            raise ValueError("a polygon must be a list of an even number of coordinates")
        ring = check_polygon(ring, width, height)
        if len(ring) >= 2:
            # pycocotools takes a first ring of exactly 4 numbers for a bbox: pad short rings
            # by repeating the last point (same shape, never a bbox).
            while len(ring) < 6:
                ring = [*ring, ring[-2], ring[-1]]
            rings.append([float(v) for v in ring])
    if not rings:
        return dict(mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F")))
    return dict(mask_utils.merge(mask_utils.frPyObjects(rings, height, width)))


def decode_segmentation(segmentation: Any, height: int, width: int) -> npt.NDArray[np.uint8]:
    """Any COCO segmentation (see :func:`compressed_rle`) -> a binary H x W uint8 mask."""
    return decode_compressed_rle(compressed_rle(segmentation, height, width))


def decode_compressed_rle(rle: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """Decode an RLE that :func:`compressed_rle` returned (already checked)."""
    from pycocotools import mask as mask_utils

    decoded: npt.NDArray[np.uint8] = mask_utils.decode(rle)
    return decoded


def rle_area(rle: dict[str, Any]) -> int:
    """Pixel count of a compressed RLE, without decoding it."""
    from pycocotools import mask as mask_utils

    return int(mask_utils.area(rle))


def encode_rle(binary: npt.NDArray[Any]) -> dict[str, Any]:
    """A binary H x W mask -> compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8, copy=False)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_area_and_bbox(rle: dict[str, Any]) -> tuple[int, list[float]]:
    """Pixel count and XYWH bbox of a compressed RLE, computed by pycocotools."""
    from pycocotools import mask as mask_utils

    native = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(native)), [float(v) for v in mask_utils.toBbox(native)]
