"""Hostile inputs of the process side: values that would crash or exhaust native code, JSON
past the reader's limits, and every per-item breaker of a COCO panoptic dataset at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from helpers import default_spec, write_coco_panoptic

from . import Case
from .breakers import CASES as BREAKERS
from .breakers import break_dataset

COCO_RLE = ["--from", "coco-rle", "--to", "nucleus"]
PANOPTIC = ["--from", "coco-panoptic", "--to", "nucleus"]
NUCLEUS = ["--from", "nucleus", "--to", "coco-panoptic"]
CITYSCAPES = ["--from", "cityscapes", "--to", "nucleus"]


def instances(folder: Path, bad: dict, image: dict | None = None) -> Path:
    """A COCO instances file: image ``bad`` (annotation fields from ``bad``) and a good one."""
    images = [
        {"id": 1, "file_name": "bad.jpg", "width": 8, "height": 6, **(image or {})},
        {"id": 2, "file_name": "good.jpg", "width": 8, "height": 6},
    ]
    good = {"segmentation": [[0, 0, 4, 0, 4, 4]], "area": 8, "bbox": [0, 0, 4, 4]}
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, **good, **bad},
        {"id": 2, "image_id": 2, "category_id": 1, "iscrowd": 0, **good},
    ]
    document = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing", "supercategory": "thing"}],
    }
    path = folder / "instances.json"
    path.write_text(json.dumps(document).replace('"INF"', "1e400"))
    return path


def polygon(values: list) -> Callable:
    def build(folder: Path) -> list[str]:
        return [str(instances(folder, {"segmentation": [values]})), *COCO_RLE]

    return build


def huge_image(folder: Path) -> list[str]:
    path = instances(folder, {}, {"width": 100_000, "height": 100_000})
    return [str(path), *COCO_RLE]


def panoptic(folder: Path) -> Path:
    return write_coco_panoptic(folder / "src", [default_spec(f"img{k}", k) for k in range(3)])


def rewrite(transform) -> Callable:
    def build(folder: Path) -> list[str]:
        path = panoptic(folder)
        path.write_bytes(transform(path.read_bytes()))
        return [str(path), *PANOPTIC]

    return build


def deep_nesting(data: bytes) -> bytes:
    return data.replace(b'"licenses": []', b'"licenses": ' + b"[" * 60_000 + b"]" * 60_000)


def duplicate_key(data: bytes) -> bytes:
    return data.replace(b'"images": [', b'"images": [], "images": [', 1)


def invalid_utf8(data: bytes) -> bytes:
    return data.replace(b'"synthetic"', b'"synth\xffetic"', 1)


def not_a_number(data: bytes) -> bytes:
    return data.replace(b'"licenses": []', b'"licenses": [NaN]', 1)


def nucleus_lines(transform) -> Callable:
    """A Nucleus folder (converted from the panoptic set) whose annotations.jsonl is broken."""

    def build(folder: Path) -> list[str]:
        from segconvert import build_registry, convert

        out = folder / "nucleus"
        convert(
            panoptic(folder),
            out,
            from_format="coco-panoptic",
            to_format="nucleus",
            jobs=1,
            registry=build_registry(load_third_party=False),
        )
        lines = (out / "annotations.jsonl").read_bytes().splitlines(keepends=True)
        lines[1] = transform(lines[1])
        (out / "annotations.jsonl").write_bytes(b"".join(lines))
        return [str(out), *NUCLEUS]

    return build


def cityscapes_polygons(document: dict, *, raw: tuple[str, str] = ("", "")) -> Callable:
    """A gtFine tree with one good frame and one whose polygons file is ``document`` (its
    JSON text with ``raw[0]`` replaced by ``raw[1]``)."""

    def build(folder: Path) -> list[str]:
        city = folder / "gtFine" / "val" / "aachen"
        city.mkdir(parents=True)
        good = {
            "imgWidth": 8,
            "imgHeight": 6,
            "objects": [{"label": "road", "polygon": [[0, 0], [7, 0], [7, 5]]}],
        }
        (city / "aachen_000000_000019_gtFine_polygons.json").write_text(json.dumps(good))
        text = json.dumps(document)
        (city / "aachen_000001_000019_gtFine_polygons.json").write_text(
            text.replace(*raw) if raw[0] else text
        )
        return [str(folder / "gtFine"), *CITYSCAPES]

    return build


def every_item_breaker(folder: Path) -> list[str]:
    names = sorted(BREAKERS)
    specs = [default_spec(name, k) for k, name in enumerate(names)]
    specs += [default_spec("good0", 98), default_spec("good1", 99)]
    path = write_coco_panoptic(folder / "src", specs)
    break_dataset(path, names)
    return [str(path), *PANOPTIC]


PARTIAL = frozenset({3})
NOTHING = frozenset({1})
OUT_OF_BOUNDS = "bad-segmentation"

CASES = [
    Case("polygon-3e8", polygon([0, 0, 3e8, 0, 3, 3]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("polygon-1e8", polygon([0, 0, 1e8, 1e8, 3, 3]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("polygon-infinity", polygon([0, 0, "INF", 0, 3, 3]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("polygon-odd", polygon([0, 0, 4, 0, 4]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("polygon-strings", polygon(["0", 0, 4, 0, 4, 4]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("polygon-bools", polygon([True, 0, 4, 0, 4, 4]), PARTIAL, {"bad": OUT_OF_BOUNDS}),
    Case("image-100000-squared", huge_image, PARTIAL, {"bad": "png-too-large"}),
    Case("json-deep-nesting", rewrite(deep_nesting), NOTHING, error="nesting deeper than"),
    Case("json-duplicate-key", rewrite(duplicate_key), NOTHING, error="duplicate key 'images'"),
    Case("json-invalid-utf8", rewrite(invalid_utf8), NOTHING, error="invalid UTF-8"),
    Case("json-nan", rewrite(not_a_number), NOTHING, error="NaN is not valid JSON"),
    Case(
        "jsonl-invalid-utf8",
        nucleus_lines(lambda line: line.replace(b'"void"', b'"vo\xffid"', 1)),
        PARTIAL,
        {"line-2": "bad-json"},
    ),
    Case(
        "jsonl-deep-nesting",
        nucleus_lines(lambda line: b"[" * 5000 + b"]" * 5000 + b"\n"),
        PARTIAL,
        {"line-2": "bad-json"},
    ),
    Case(
        "cityscapes-32768-squared",
        cityscapes_polygons({"imgWidth": 32768, "imgHeight": 32768, "objects": []}),
        PARTIAL,
        {"aachen_000001_000019": "image-too-large"},
    ),
    Case(
        "cityscapes-3-coordinate-points",
        cityscapes_polygons(
            {
                "imgWidth": 8,
                "imgHeight": 6,
                "objects": [{"label": "road", "polygon": [[0, 0, 1], [7, 0, 1], [7, 5, 1]]}],
            }
        ),
        PARTIAL,
        {"aachen_000001_000019": "bad-polygon"},
    ),
    Case(
        "cityscapes-overflowing-coordinates",
        cityscapes_polygons(
            {
                "imgWidth": 8,
                "imgHeight": 6,
                "objects": [{"label": "road", "polygon": [[0, 0], [99, 0], [7, 5]]}],
            },
            raw=("99", "1e400"),
        ),
        PARTIAL,
        {"aachen_000001_000019": "bad-polygon"},
    ),
    Case(
        "cityscapes-infinity-in-one-frame",
        cityscapes_polygons(
            {
                "imgWidth": 8,
                "imgHeight": 6,
                "objects": [{"label": "road", "polygon": [[0, 0], [float("inf"), 0], [7, 5]]}],
            }
        ),
        PARTIAL,
        {"aachen_000001_000019": "invalid-json"},
    ),
    Case(
        "every-item-breaker",
        every_item_breaker,
        PARTIAL,
        {
            **{n: rule for n, (_, rule) in BREAKERS.items() if n != "duplicate_reference"},
            "good0": "duplicate-reference-id",  # the second 'good0' is the one refused
        },
    ),
]
