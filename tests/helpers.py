"""Builders for small synthetic datasets and readers for what segconvert writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
PANOPTICAPI = FIXTURES / "coco-panoptic" / "panopticapi"
TRANSFORMERS = FIXTURES / "coco-panoptic" / "transformers"
REALDATA = Path(os.environ.get("SEGCONVERT_REALDATA", REPO.parent / "shared" / "realdata"))

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person", "isthing": 1, "color": [220, 20, 60]},
    {"id": 3, "name": "car", "supercategory": "vehicle", "isthing": 1, "color": [0, 0, 142]},
    {"id": 184, "name": "sky", "supercategory": "sky", "isthing": 0, "color": [70, 130, 180]},
]


@dataclass
class ImageSpec:
    """One synthetic panoptic image: rectangles of segment ids painted on void."""

    name: str
    width: int = 40
    height: int = 30
    # (segment id, category id, iscrowd, (y0, y1, x0, x1))
    segments: list[tuple[int, int, int, tuple[int, int, int, int]]] = field(default_factory=list)
    image_id: int | str | None = None


def grid_spec(name: str, count: int, cell: int = 3) -> ImageSpec:
    """An image with ``count`` small square segments (for the 256-segment limit)."""
    columns = 20
    rows = (count + columns - 1) // columns
    spec = ImageSpec(name, width=columns * cell, height=rows * cell)
    for k in range(count):
        y, x = divmod(k, columns)
        spec.segments.append((1000 + k, 1, 0, (y * cell, (y + 1) * cell, x * cell, (x + 1) * cell)))
    return spec


def default_spec(name: str, seed: int = 0) -> ImageSpec:
    """Sky on top, a car, two people and a crowd of people, some void."""
    s = seed
    return ImageSpec(
        name,
        segments=[
            (5000000 + s, 184, 0, (0, 10, 0, 40)),
            (1001 + s, 3, 0, (12, 20, 2, 14)),
            (77 + s, 1, 0, (12, 28, 16, 20)),
            (78 + s, 1, 0, (12, 28, 22, 26)),
            (90 + s, 1, 1, (20, 30, 28, 40)),
        ],
    )


def paint_ids(spec: ImageSpec) -> np.ndarray:
    """The H x W uint32 id map of ``spec``."""
    ids = np.zeros((spec.height, spec.width), dtype=np.uint32)
    for segment_id, _, _, (y0, y1, x0, x1) in spec.segments:
        ids[y0:y1, x0:x1] = segment_id
    return ids


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic colour encoding of an id map."""
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def write_coco_panoptic(
    root: Path,
    specs: list[ImageSpec],
    *,
    name: str = "panoptic_val",
    skip_png: set[str] = frozenset(),
    categories: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``root/name.json`` and ``root/name/*.png``; return the JSON path."""
    png_dir = root / name
    png_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for number, spec in enumerate(specs, start=1):
        image_id = spec.image_id if spec.image_id is not None else number
        ids = paint_ids(spec)
        infos = []
        for segment_id, category_id, iscrowd, _ in spec.segments:
            ys, xs = np.nonzero(ids == segment_id)
            if len(ys) == 0:
                continue
            bbox = [
                int(xs.min()),
                int(ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            ]
            infos.append(
                {
                    "id": segment_id,
                    "category_id": category_id,
                    "iscrowd": iscrowd,
                    "area": int(len(ys)),
                    "bbox": bbox,
                }
            )
        images.append(
            {
                "id": image_id,
                "file_name": f"{spec.name}.jpg",
                "width": spec.width,
                "height": spec.height,
            }
        )
        annotations.append(
            {"image_id": image_id, "file_name": f"{spec.name}.png", "segments_info": infos}
        )
        if spec.name not in skip_png:
            Image.fromarray(ids_to_rgb(ids)).save(png_dir / f"{spec.name}.png")
    document = {
        "info": {"description": "synthetic"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories or CATEGORIES,
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def read_panoptic(json_path: Path, png_dir: Path | None = None) -> dict[str, Any]:
    """``{reference: (image, annotation, id map)}`` of a COCO panoptic dataset."""
    document = json.loads(json_path.read_text())
    png_dir = png_dir or json_path.with_suffix("")
    images = {i["id"]: i for i in document.get("images", [])}
    result = {}
    for annotation in document["annotations"]:
        rgb = np.asarray(Image.open(png_dir / annotation["file_name"]).convert("RGB")).astype(
            np.uint32
        )
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        result[Path(annotation["file_name"]).stem] = (
            images.get(annotation["image_id"]),
            annotation,
            ids,
        )
    return result


def read_jsonl(path: Path) -> list[Any]:
    """Every record of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def segconvert_command() -> list[str]:
    """The installed ``segconvert`` script next to this interpreter (else ``python -m``)."""
    script = Path(sys.executable).parent / "segconvert"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "segconvert.cli"]


@dataclass
class CliResult:
    """What a ``segconvert`` run printed and returned (in-process or not)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, registry: Any = None) -> CliResult:
    """Run ``segconvert ARGS`` in this process (click's runner), as :func:`main` would
    (with ``registry`` instead of the installed formats when given).

    A ``PYTHONPATH`` in ``env`` means new plugins on the path: that needs a fresh process
    (entry points are read once per interpreter), so it runs :func:`run_cli_subprocess`.
    """
    if env and "PYTHONPATH" in env:
        done = run_cli_subprocess(*args, env=env)
        return CliResult(done.returncode, done.stdout, done.stderr)
    from click.testing import CliRunner

    from segconvert.cli import main

    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        try:
            main(list(args), registry=registry)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        return CliResult(
            code,
            stdout.getvalue().decode("utf-8", "replace"),
            stderr.getvalue().decode("utf-8", "replace"),
        )


def run_cli_subprocess(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``segconvert ARGS`` in a fresh process, as a user would (for what only a real
    process shows: entry points installed on a path, signals, a terminal)."""
    return subprocess.run(
        [*segconvert_command(), *args],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


# ---------------------------------------------------------------- Cityscapes

MMSEG_GTFINE = (
    REALDATA / "mmsegmentation" / "tests" / "data" / "pseudo_cityscapes_dataset" / "gtFine"
)
DATUMARO_CITYSCAPES = REALDATA / "datumaro" / "tests" / "assets" / "cityscapes_dataset"


def write_gtfine_frame(
    root: Path,
    split: str,
    city: str,
    reference_id: str,
    instance_ids: np.ndarray,
    *,
    label_ids: bool = True,
    instances: bool = True,
) -> None:
    """Write one frame's 16-bit instanceIds (and the labelIds derived from it)."""
    folder = root / "gtFine" / split / city
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{reference_id}_gtFine"
    values = instance_ids.astype(np.uint16)
    if instances:
        Image.fromarray(values).save(f"{stem}_instanceIds.png")
    if label_ids:
        labels = np.where(values >= 1000, values // 1000, values).astype(np.uint8)
        Image.fromarray(labels).save(f"{stem}_labelIds.png")


def synthetic_instance_ids(seed: int = 0, height: int = 40, width: int = 60) -> np.ndarray:
    """A frame with road, sky, a car group (crowd), cars 26000/26003 (k not contiguous),
    a person 24000 (k = 0), a caravan 29000 (ignored class), and out-of-roi (ignored)."""
    values = np.full((height, width), 7, dtype=np.uint16)  # road
    values[:10] = 23  # sky
    values[10:14, :] = 3  # out of roi
    values[15:25, 0:10] = 26  # cargroup
    values[15:25, 12:20] = 26000 + seed
    values[15:25, 22:30] = 26003
    values[26:36, 30:34] = 24000
    values[26:36, 40:50] = 29000
    values[0:4, 50:60] = 0  # unlabeled
    return values


# ---------------------------------------------------------------- COCO RLE

COCOAPI_RESULTS = REALDATA / "cocoapi" / "results" / "instances_val2014_fakesegm100_results.json"
FASTER_COCO_EVAL = (
    REALDATA / "faster_coco_eval" / "tests" / "dataset" / "cocoapi" / "instances_val2014_100.json"
)
LVIS = REALDATA / "lvis-api" / "data" / "lvis_val_100.json"
DATUMARO_COCO = (
    REALDATA / "datumaro" / "tests" / "assets" / "coco_dataset" / "coco_instances" / "annotations"
)
DATUMARO_SA1B = REALDATA / "datumaro" / "tests" / "assets" / "segment_anything_dataset"


def decode_any(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation with pycocotools directly (the test's own oracle)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return mask_utils.decode(rle).astype(bool)


# ---------------------------------------------------------------- the Nucleus docs' example

NUCLEUS_EXAMPLE_CATEGORIES = [
    {"id": 101, "name": "building", "supercategory": "", "isthing": 0, "color": [70, 70, 70]},
    {"id": 102, "name": "tree", "supercategory": "", "isthing": 0, "color": [107, 142, 35]},
    {"id": 103, "name": "fence", "supercategory": "", "isthing": 0, "color": [190, 153, 153]},
    {"id": 104, "name": "wall", "supercategory": "", "isthing": 0, "color": [102, 102, 156]},
    {"id": 105, "name": "pavement", "supercategory": "", "isthing": 0, "color": [244, 35, 232]},
    {"id": 1, "name": "person", "supercategory": "", "isthing": 1, "color": [220, 20, 60]},
    {"id": 2, "name": "handbag", "supercategory": "", "isthing": 1, "color": [0, 0, 142]},
    {"id": 3, "name": "bird", "supercategory": "", "isthing": 1, "color": [255, 0, 0]},
]


def nucleus_example_spec() -> ImageSpec:
    """11 values: background (void), building, tree, fence, wall, pavement (stuff),
    person, handbag, three birds (things)."""
    return ImageSpec(
        "example",
        width=60,
        height=40,
        segments=[
            (11, 101, 0, (0, 10, 0, 30)),
            (12, 102, 0, (0, 10, 30, 60)),
            (13, 103, 0, (10, 20, 0, 20)),
            (14, 104, 0, (10, 20, 20, 40)),
            (15, 105, 0, (30, 40, 0, 60)),
            (21, 1, 0, (20, 30, 0, 8)),
            (22, 2, 0, (24, 28, 8, 12)),
            (31, 3, 0, (20, 24, 20, 24)),
            (32, 3, 0, (20, 24, 30, 34)),
            (33, 3, 0, (20, 24, 40, 44)),
        ],
    )  # rows 20-30 outside those boxes stay void: the background
