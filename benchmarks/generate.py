"""Synthetic datasets of any size for the benchmarks.

    python benchmarks/generate.py coco-panoptic OUT --count 1000      # 640x480, ~30 segments
    python benchmarks/generate.py cityscapes OUT --count 200  # 2048x1024, 16-bit

COCO panoptic is written in the layout Datumaro expects (``annotations/panoptic_val.json`` +
``annotations/panoptic_val/``, images as tiny placeholders); Cityscapes as ``gtFine/val/<city>/``
with ``instanceIds`` (16-bit), ``labelIds`` and tiny ``leftImg8bit`` placeholders (Datumaro
finds frames through them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from segconvert import segment_stats

STUFF = [(184, "sky"), (187, "tree"), (191, "pavement"), (199, "wall")]
THINGS = [(1, "person"), (3, "car"), (18, "dog"), (44, "bottle")]


def coco_panoptic(
    root: Path, count: int, seed: int = 0, width: int = 640, height: int = 480
) -> Path:
    """``count`` images of ``width`` x ``height`` with 4 stuff regions and ~26 instances."""
    rng = np.random.default_rng(seed)
    annotations_dir = root / "annotations"
    png_dir = annotations_dir / "panoptic_val"
    png_dir.mkdir(parents=True, exist_ok=True)
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    placeholder = root / "images" / "val"
    images, annotations = [], []
    for k in range(count):
        ids = np.zeros((height, width), dtype=np.uint32)
        infos = []
        bands = np.sort(rng.integers(0, height, 3))
        for (category, _), top, bottom in zip(STUFF, [0, *bands], [*bands, height], strict=True):
            segment_id = category + 256 * int(rng.integers(1, 200))
            ids[top:bottom] = segment_id
            infos.append((segment_id, category))
        for _ in range(26):
            category = THINGS[int(rng.integers(len(THINGS)))][0]
            y, x = int(rng.integers(0, height - 20)), int(rng.integers(0, width - 20))
            h, w = int(rng.integers(10, 120)), int(rng.integers(10, 120))
            yy, xx = np.ogrid[:h, :w]
            distance = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
            segment_id = int(rng.integers(1 << 16, 1 << 24))
            region = ids[y : y + h, x : x + w]
            cut = (slice(0, region.shape[0]), slice(0, region.shape[1]))
            region[(distance <= 1.0)[cut]] = 0  # void along the outline, as in COCO
            region[(distance <= 0.85)[cut]] = segment_id
            infos.append((segment_id, category))
        order = {segment_id: n for n, (segment_id, _) in enumerate(infos, start=1)}
        lut_keys = np.array([0, *order], dtype=np.uint32)
        index = np.searchsorted(np.sort(lut_keys), ids)
        ranks = np.argsort(lut_keys)  # sorted position -> position in [0, *infos]
        areas, bboxes = segment_stats(ranks[index].astype(np.int64), len(lut_keys))
        segments = [
            {
                "id": segment_id,
                "category_id": category,
                "iscrowd": 0,
                "area": int(areas[n]),
                "bbox": bboxes[n].tolist(),
            }
            for n, (segment_id, category) in enumerate(infos, start=1)
            if areas[n] and infos.index((segment_id, category)) == n - 1
        ]
        name = f"{k:012d}"
        rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(png_dir / f"{name}.png", compress_level=1)
        Image.new("RGB", (1, 1)).save(placeholder / f"{name}.jpg")
        images.append({"id": k + 1, "file_name": f"{name}.jpg", "width": width, "height": height})
        annotations.append(
            {"image_id": k + 1, "file_name": f"{name}.png", "segments_info": segments}
        )
    categories = [
        {"id": c, "name": n, "supercategory": n, "isthing": 0, "color": [c, 100, 50]}
        for c, n in STUFF
    ]
    categories += [
        {"id": c, "name": n, "supercategory": n, "isthing": 1, "color": [c, 50, 100]}
        for c, n in THINGS
    ]
    path = annotations_dir / "panoptic_val.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def cityscapes(
    root: Path, count: int, seed: int = 0, width: int = 2048, height: int = 1024
) -> Path:
    """``count`` frames: road, sidewalk, building, vegetation, sky, ~20 instances, a car group."""
    rng = np.random.default_rng(seed)
    gtfine = root / "gtFine" / "val" / "benchcity"
    images = root / "leftImg8bit" / "val" / "benchcity"
    gtfine.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        values = np.full((height, width), 7, dtype=np.uint16)  # road
        values[: height // 3] = 23  # sky
        values[height // 3 : height // 2] = 11  # building
        values[height // 2 : height // 2 + 60, : width // 3] = 21  # vegetation
        values[-120:, : width // 4] = 8  # sidewalk
        values[:8] = 3  # out of roi (ignored)
        for n in range(20):
            label = 26 if n % 3 else 24
            h, w = int(rng.integers(30, 200)), int(rng.integers(20, 300))
            y, x = int(rng.integers(height // 3, height - h)), int(rng.integers(0, width - w))
            values[y : y + h, x : x + w] = label * 1000 + n
        values[height - 200 : height - 150, width - 300 : width - 100] = 26  # a car group
        reference = f"benchcity_{k:06d}_000019"
        Image.fromarray(values).save(
            gtfine / f"{reference}_gtFine_instanceIds.png", compress_level=1
        )
        labels = np.where(values >= 1000, values // 1000, values).astype(np.uint8)
        Image.fromarray(labels).save(gtfine / f"{reference}_gtFine_labelIds.png", compress_level=1)
        Image.new("RGB", (1, 1)).save(images / f"{reference}_leftImg8bit.png")
    return root / "gtFine"


def subset(json_path: Path, count: int, name: str) -> Path:
    """A panoptic JSON with the first ``count`` images of ``json_path``, sharing its PNGs."""
    document = json.loads(json_path.read_text())
    document["images"] = document["images"][:count]
    document["annotations"] = document["annotations"][:count]
    path = json_path.with_name(f"{name}.json")
    path.write_text(json.dumps(document))
    link = path.with_suffix("")
    if not link.exists():
        link.symlink_to(json_path.with_suffix("").name)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["coco-panoptic", "cityscapes"])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make = coco_panoptic if args.kind == "coco-panoptic" else cityscapes
    print(make(args.output, args.count, args.seed))


if __name__ == "__main__":
    main()
