"""Pixel helpers for plugin authors: PNG read/write, RGB <-> id, per-segment area and bbox.

PNGs go through Pillow and numpy, with the PNG mode checked on read (a palette image is not
an id map) and the size checked before decoding (decompression bombs).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from segconvert.errors import ItemError
from segconvert.files import atomic_write_bytes

MAX_IMAGE_PIXELS = 1 << 27
"""Largest mask (width x height) segconvert will decode: 134,217,728 pixels (e.g. 16384 x 8192),
checked from the PNG header before any pixel is decoded (decompression bombs)."""

PNG_COMPRESS_LEVEL = 1
"""zlib level for masks: level 1 is several times faster than 6 and barely larger on masks."""

_GRAY16 = ("I;16", "I;16B", "I", "I;16L")
_MODES_BY_KIND = {
    "rgb": ("RGB",),
    "gray8": ("L",),
    "gray16": _GRAY16,
    "gray": ("L", *_GRAY16),
    "index": ("L", "P"),
}


def read_png(path: Path, kind: str, *, item: str | None = None) -> npt.NDArray[Any]:
    """Decode a PNG mask, insisting on its kind.

    Args:
        kind: ``"rgb"`` (H x W x 3 uint8), ``"gray8"`` (H x W uint8), ``"gray16"``
            (H x W uint16), ``"gray"`` (8- or 16-bit grayscale, returned as decoded) or
            ``"index"`` (8-bit grayscale or palette: the stored indices, not the colours).

    Raises:
        ItemError: ``png-missing``, ``png-unreadable``, ``png-too-large`` or ``png-mode``.
    """
    file = str(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ItemError(f"{path}: no such file", rule="png-missing", item=item, file=file) from None
    with handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check below
                image = Image.open(handle)
                image_format = image.format
        except Image.DecompressionBombError as exc:
            raise ItemError(
                f"{path}: image too large to decode ({exc})",
                rule="png-too-large",
                item=item,
                file=file,
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ItemError(
                f"{path}: not a readable PNG ({exc})", rule="png-unreadable", item=item, file=file
            ) from None
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ItemError(
                f"{path}: {width}x{height} exceeds the limit of {MAX_IMAGE_PIXELS} pixels",
                rule="png-too-large",
                item=item,
                file=file,
            )
        if image_format != "PNG":
            raise ItemError(
                f"{path}: is {image_format}, not PNG", rule="png-unreadable", item=item, file=file
            )
        if image.mode not in _MODES_BY_KIND[kind]:
            raise ItemError(
                f"{path}: PNG mode {image.mode!r}, expected {_describe(kind)}",
                rule="png-mode",
                item=item,
                file=file,
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ItemError(
                f"{path}: corrupt or truncated PNG ({exc})",
                rule="png-unreadable",
                item=item,
                file=file,
            ) from None
        array = np.asarray(image)
    if array.dtype.kind == "i" or array.dtype.byteorder == ">":  # mode "I" / big-endian 16-bit
        array = array.astype(np.uint16)
    return array


def _describe(kind: str) -> str:
    return {
        "rgb": "8-bit RGB",
        "gray8": "8-bit grayscale ('L')",
        "gray16": "16-bit grayscale",
        "gray": "8- or 16-bit grayscale",
        "index": "8-bit grayscale or palette",
    }[kind]


def encode_png(array: npt.NDArray[Any]) -> bytes:
    """Encode uint8 H x W (mode L), H x W x 3 (RGB), H x W x 4 (RGBA) or uint16 H x W as PNG."""
    if array.dtype == np.uint16 and array.ndim == 2:
        image = Image.frombuffer(
            "I;16", (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes()
        )
    elif array.dtype == np.uint8 and array.ndim == 2:
        image = Image.fromarray(array)  # uint8 2-D arrays become mode "L"
    elif array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (3, 4):
        image = Image.fromarray(array)  # RGB or RGBA
    else:
        raise TypeError(f"cannot encode {array.dtype} array of shape {array.shape} as a PNG mask")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_png(path: Path, array: npt.NDArray[Any]) -> None:
    """Encode ``array`` (see :func:`encode_png`) and write it to ``path`` atomically."""
    atomic_write_bytes(path, encode_png(array))


def rgb_to_id(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """COCO panoptic colour -> id: ``R + 256 * G + 256**2 * B`` (H x W x 3 uint8 -> H x W)."""
    r = rgb[..., 0].astype(np.uint32)
    r |= rgb[..., 1].astype(np.uint32) << 8
    r |= rgb[..., 2].astype(np.uint32) << 16
    return r


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
    convention), or zeros when ``i`` is absent.
    """
    height, width = index_mask.shape
    flat = index_mask.ravel()
    areas = np.bincount(flat, minlength=count)[:count].astype(np.int64)
    rows = np.zeros((count, height), dtype=bool)
    cols = np.zeros((count, width), dtype=bool)
    rows[index_mask, np.arange(height)[:, None]] = True
    cols[index_mask, np.arange(width)[None, :]] = True
    bboxes = np.zeros((count, 4), dtype=np.int64)
    present = areas > 0
    if present.any():
        r = rows[present]
        c = cols[present]
        y0 = r.argmax(axis=1)
        y1 = height - 1 - r[:, ::-1].argmax(axis=1)
        x0 = c.argmax(axis=1)
        x1 = width - 1 - c[:, ::-1].argmax(axis=1)
        bboxes[present] = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1)
    return areas, bboxes


# ---------------------------------------------------------------- COCO RLE (via pycocotools)


def rle_string_total(counts: str) -> int:
    """Sum of the runs of a compressed COCO RLE string, without decoding the mask.

    pycocotools decodes runs into an h*w buffer without bounds checks, so a hostile or
    corrupt string whose runs sum past h*w writes out of bounds; check this first. Follows
    ``rleFrString`` in cocoapi's ``maskApi.c``. Raises ``ValueError`` on a malformed string.
    """
    runs: list[int] = []
    position, length = 0, len(counts)
    while position < length:
        value, shift, more = 0, 0, True
        while more:
            if position >= length:
                raise ValueError("RLE string ends inside a number")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"character {counts[position]!r} is not valid in an RLE string")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("RLE run length is negative")
        runs.append(value)
    return sum(runs)


def compressed_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """Any COCO segmentation -> pycocotools' compressed RLE (``counts`` as bytes), checked.

    Accepts compressed RLE (``counts`` str/bytes), uncompressed RLE (``counts`` a list, COCO's
    crowd form) and polygons (``[[x1, y1, x2, y2, ...], ...]``). An RLE's ``size`` must be
    ``[height, width]`` and its runs must sum to ``height * width``; otherwise ``ValueError``
    says which rule broke.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        return _polygons_rle(segmentation, height, width)
    if (
        not isinstance(segmentation, dict)
        or "counts" not in segmentation
        or "size" not in segmentation
    ):
        raise ValueError("segmentation must be polygons or an RLE object with 'counts' and 'size'")
    size = segmentation["size"]
    if not isinstance(size, list) or len(size) != 2 or [int(v) for v in size] != [height, width]:
        raise ValueError(
            f"RLE size {size} is not the image's [height, width] = [{height}, {width}]"
        )
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
        if not isinstance(ring, list) or len(ring) % 2:
            raise ValueError("a polygon must be a list of an even number of coordinates")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ring):
            raise ValueError("polygon coordinates must be numbers")
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
