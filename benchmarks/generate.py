"""Synthetic datasets of any size for the benchmarks.

    python benchmarks/generate.py coco-panoptic OUT --count 1000      # 640x480, ~30 segments
    python benchmarks/generate.py cityscapes OUT --count 200  # 2048x1024, 16-bit
    python benchmarks/generate.py sa1b OUT --count 80   # 2250x1500, ~100 overlapping masks
    python benchmarks/generate.py coco-instances OUT --count 2000  # 640x480, ~7 per image

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

from segconvert import bbox_of, encode_runs, runs_of, segment_stats

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
        # One segment per distinct id (a random id drawn twice paints one segment), at its
        # position in lut_keys; without a repeat that position is its place in infos.
        position = {segment_id: n for n, segment_id in enumerate(order, start=1)}
        firsts = {}
        for segment_id, category in infos:
            firsts.setdefault(segment_id, category)
        segments = [
            {
                "id": segment_id,
                "category_id": category,
                "iscrowd": 0,
                "area": int(areas[position[segment_id]]),
                "bbox": bboxes[position[segment_id]].tolist(),
            }
            for segment_id, category in firsts.items()
            if areas[position[segment_id]]
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


def blob(
    rng: np.random.Generator, height: int, width: int, area: float, centre: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A wobbly star-shaped blob of about ``area`` pixels: its column-major intervals."""
    ratio = rng.uniform(0.4, 2.5)
    ry = np.sqrt(area / np.pi / ratio)
    rx = ry * ratio
    cy, cx = centre
    y0, y1 = int(max(0, cy - 1.4 * ry)), int(min(height, cy + 1.4 * ry + 1))
    x0, x1 = int(max(0, cx - 1.4 * rx)), int(min(width, cx + 1.4 * rx + 1))
    if y1 <= y0 or x1 <= x0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    angle = np.arctan2((yy - cy) / ry, (xx - cx) / rx)
    phases = rng.uniform(0, 2 * np.pi, 3)
    wobble = 1 + sum(
        rng.uniform(0.03, 0.15) * np.sin(k * angle + p)
        for k, p in zip((3, 5, 9), phases, strict=True)
    )
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= wobble**2
    columns = np.zeros((x1 - x0, y1 - y0 + 2), dtype=np.int8)
    columns[:, 1:-1] = inside.T
    edges = np.diff(columns, axis=1)
    col_s, row_s = np.nonzero(edges == 1)
    col_e, row_e = np.nonzero(edges == -1)
    base = (col_s + x0) * height + y0
    return base + row_s, (col_e + x0) * height + y0 + row_e


def sa1b_annotations(
    rng: np.random.Generator, height: int, width: int, count: int
) -> list[dict[str, object]]:
    """~``count`` SA-1B-like masks: large regions, objects, and parts nested inside them."""
    fractions = np.concatenate(
        [
            rng.uniform(0.04, 0.2, count // 10),
            rng.uniform(0.004, 0.03, count * 3 // 10),
            rng.uniform(0.0002, 0.004, count - count // 10 - count * 3 // 10),
        ]
    )
    centres: list[tuple[float, float]] = []
    annotations = []
    for k, fraction in enumerate(fractions):
        if centres and rng.random() < 0.6:  # a part of an earlier mask
            cy, cx = centres[int(rng.integers(len(centres)))]
            centre = (cy + rng.normal(0, 40), cx + rng.normal(0, 40))
        else:
            centre = (rng.uniform(0, height), rng.uniform(0, width))
        centres.append(centre)
        starts, ends = blob(rng, height, width, fraction * height * width, centre)
        if starts.size == 0:
            continue
        order = np.argsort(starts)
        runs = runs_of((starts[order], ends[order]), height * width)
        area = int((ends - starts).sum())
        annotations.append(
            {
                "id": k + 1,
                "segmentation": {
                    "size": [height, width],
                    "counts": encode_runs(runs, height, width),
                },
                "area": area,
                "bbox": bbox_of((starts[order], ends[order]), height),
                "predicted_iou": float(rng.uniform(0.8, 1.0)),
                "point_coords": [[float(centre[1]), float(centre[0])]],
                "stability_score": float(rng.uniform(0.85, 1.0)),
                "crop_box": [0, 0, width, height],
            }
        )
    return annotations


def sa1b(
    root: Path, count: int, seed: int = 0, width: int = 2250, height: int = 1500, masks: int = 100
) -> Path:
    """``count`` SA-1B-style images: ``sa_<n>.json`` (+ a tiny ``sa_<n>.jpg`` placeholder, which
    Datumaro's ``segment_anything`` importer lists) with ~``masks`` overlapping masks each."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    placeholder = Image.new("RGB", (width, height))
    for k in range(count):
        name = f"sa_{k + 1}"
        document = {
            "image": {
                "image_id": k + 1,
                "width": width,
                "height": height,
                "file_name": f"{name}.jpg",
            },
            "annotations": sa1b_annotations(rng, height, width, masks),
        }
        (root / f"{name}.json").write_text(json.dumps(document))
        placeholder.save(root / f"{name}.jpg", quality=10)
    return root


def coco_instances(
    root: Path, count: int, seed: int = 0, width: int = 640, height: int = 480, per_image: int = 7
) -> Path:
    """A COCO instances JSON of ``count`` images with ~``per_image`` RLE instances each."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(count):
        images.append(
            {"id": k + 1, "file_name": f"{k + 1:012d}.jpg", "width": width, "height": height}
        )
        for annotation in sa1b_annotations(rng, height, width, int(rng.integers(3, 2 * per_image))):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(rng.choice([1, 3, 18, 44])),
                    "segmentation": annotation["segmentation"],
                    "area": annotation["area"],
                    "bbox": annotation["bbox"],
                    "iscrowd": 0,
                }
            )
    path = root / "instances.json"
    categories = [{"id": i, "name": n, "supercategory": n} for i, n in THINGS]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["coco-panoptic", "cityscapes", "sa1b", "coco-instances"])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make = {
        "coco-panoptic": coco_panoptic,
        "cityscapes": cityscapes,
        "sa1b": sa1b,
        "coco-instances": coco_instances,
    }[args.kind]
    print(make(args.output, args.count, args.seed))


if __name__ == "__main__":
    main()
