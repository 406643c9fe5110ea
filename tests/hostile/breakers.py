"""Builders of malformed inputs: each function breaks one item of a small dataset."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def png_header_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """A tiny PNG file whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


Breaker = Callable[[dict, dict, Path, Path], None]
"""``(document, annotation, png path, dataset folder)``: break one item in place."""


def missing_png(document, annotation, png, root):
    png.unlink()


def truncated_png(document, annotation, png, root):
    png.write_bytes(png.read_bytes()[:50])


def garbage_png(document, annotation, png, root):
    png.write_bytes(b"this is not an image at all")


def palette_png(document, annotation, png, root):
    Image.open(png).convert("P").save(png)


def grey_png(document, annotation, png, root):
    Image.open(png).convert("L").save(png)


def rgba_png(document, annotation, png, root):
    Image.open(png).convert("RGBA").save(png)


def sixteen_bit_png(document, annotation, png, root):
    Image.fromarray(np.asarray(Image.open(png))[..., 0].astype(np.uint16)).save(png)


def bomb_png(document, annotation, png, root):
    png_header_bomb(png)


def wrong_size(document, annotation, png, root):
    image = next(i for i in document["images"] if i["id"] == annotation["image_id"])
    image["height"] += 3


def id_only_in_png(document, annotation, png, root):
    annotation["segments_info"].pop(0)


def id_only_in_json(document, annotation, png, root):
    annotation["segments_info"].append({"id": 999_999, "category_id": 1, "iscrowd": 0})


def duplicate_id(document, annotation, png, root):
    annotation["segments_info"].append(dict(annotation["segments_info"][0]))


def unknown_category(document, annotation, png, root):
    annotation["segments_info"][0]["category_id"] = 4242


def void_id(document, annotation, png, root):
    annotation["segments_info"][0]["id"] = 0


def escaping_name(document, annotation, png, root):
    annotation["file_name"] = "../../../secret.png"


def absolute_name(document, annotation, png, root):
    annotation["file_name"] = "/etc/hostname.png"


def symlink_out(document, annotation, png, root):
    outside = root.parent / "outside.png"
    outside.write_bytes(png.read_bytes())
    png.unlink()
    png.symlink_to(outside)


def duplicate_reference(document, annotation, png, root):
    image = next(i for i in document["images"] if i["id"] == annotation["image_id"])
    image["file_name"] = "good0.jpg"


def not_an_object(document, annotation, png, root):
    annotation["segments_info"] = "nope"


CASES: dict[str, tuple[Breaker, str]] = {
    "missing_png": (missing_png, "png-missing"),
    "truncated_png": (truncated_png, "png-unreadable"),
    "garbage_png": (garbage_png, "png-unreadable"),
    "palette_png": (palette_png, "png-mode"),
    "grey_png": (grey_png, "png-mode"),
    "rgba_png": (rgba_png, "png-mode"),
    "sixteen_bit_png": (sixteen_bit_png, "png-mode"),
    "bomb_png": (bomb_png, "png-too-large"),
    "wrong_size": (wrong_size, "mask-size"),
    "id_only_in_png": (id_only_in_png, "unlisted-id"),
    "id_only_in_json": (id_only_in_json, "missing-id"),
    "duplicate_id": (duplicate_id, "duplicate-id"),
    "unknown_category": (unknown_category, "unknown-category"),
    "void_id": (void_id, "segment-id"),
    "escaping_name": (escaping_name, "unsafe-path"),
    "absolute_name": (absolute_name, "unsafe-path"),
    "symlink_out": (symlink_out, "unsafe-path"),
    "duplicate_reference": (duplicate_reference, "duplicate-reference-id"),
    "not_an_object": (not_an_object, "schema"),
}


def break_dataset(json_path: Path, names: list[str]) -> None:
    """Apply ``CASES[name]`` to the image called ``name`` of the dataset at ``json_path``."""
    document = json.loads(json_path.read_text())
    png_dir = json_path.with_suffix("")
    for annotation in document["annotations"]:
        name = Path(annotation["file_name"]).stem
        if name in names:
            CASES[name][0](
                document, annotation, png_dir / annotation["file_name"], json_path.parent
            )
    json_path.write_text(json.dumps(document))
