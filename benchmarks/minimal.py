"""Minimal correct conversions with the same codecs as segconvert: the floor it is measured against.

    python benchmarks/minimal.py sa1b-to-nucleus SA1B_DIR OUT
    python benchmarks/minimal.py nucleus-to-rle NUCLEUS_DIR OUT
    python benchmarks/minimal.py instances-to-nucleus instances.json OUT
    python benchmarks/minimal.py panoptic-to-nucleus panoptic.json OUT

No options, no validation, no reports: two worker processes (``multiprocessing.Pool.imap``), each
item's masks painted straight from its RLE runs (smaller on top) or its ids mapped with a lookup
table, PNGs encoded like segconvert does (zlib level 1, RLE strategy, SUB filter), one JSON line
per item written by the parent. The masks are pixel-identical to segconvert's (``run.py``
checks that). The way back is lossless like segconvert's: each instance's full mask is its
visible pixels plus the hidden pixels the Nucleus metadata carries (``hidden_rle``), so its RLE
strings equal segconvert's (``run.py`` checks that too). Codecs come from the same libraries:
pycocotools, imagecodecs, and segconvert's RLE string decoder and id lookup (the codec layer,
not its pipeline).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np

from segconvert.masks import map_ids, rgb_to_id
from segconvert.rle import decode_counts, encode_runs, intervals_of, runs_of, symmetric_difference

WORKERS = 2


def encode_png(mask: np.ndarray) -> bytes:
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(mask), level=1, strategy=3, filter=16))


def paint(annotations: list[dict[str, Any]], height: int, width: int) -> tuple[np.ndarray, bool]:
    """The index mask (smaller on top) and whether it has uncovered (void) pixels."""
    instances = [intervals_of(decode_counts(a["segmentation"]["counts"])) for a in annotations]
    areas = [int((ends - starts).sum()) for starts, ends in instances]
    flat = np.zeros(height * width, dtype=np.uint8)
    for position in sorted(range(len(instances)), key=lambda i: (-areas[i], i)):
        starts, ends = instances[position]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            flat[start:end] = position + 1
    mask = flat.reshape(width, height).T
    has_void = not mask.all()
    return (mask if has_void else mask - 1), has_void


def nucleus_line(out: Path, name: str, mask: np.ndarray, labels: list[str], void: bool) -> str:
    path = out / "masks" / f"{name}.png"
    path.write_bytes(encode_png(mask))
    segments = [{"label": "void", "index": 0}] if void else []
    segments += [{"label": label, "index": k + int(void)} for k, label in enumerate(labels)]
    return json.dumps(
        {
            "type": "mask",
            "mask_url": str(path),
            "annotations": segments,
            "annotation_id": None,
            "reference_id": name,
        }
    )


def sa1b_item(job: tuple[str, str]) -> str:
    source, out = job
    document = json.loads(Path(source).read_text())
    image = document["image"]
    mask, void = paint(document["annotations"], image["height"], image["width"])
    labels = ["object"] * len(document["annotations"])
    return nucleus_line(Path(out), Path(source).stem, mask, labels, void)


def instances_item(job: tuple[dict[str, Any], list[dict[str, Any]], dict[int, str], str]) -> str:
    image, annotations, names, out = job
    mask, void = paint(annotations, image["height"], image["width"])
    labels = [names[a["category_id"]] for a in annotations]
    return nucleus_line(Path(out), Path(image["file_name"]).stem, mask, labels, void)


def panoptic_item(job: tuple[dict[str, Any], str, dict[int, str], str]) -> str:
    annotation, png_dir, names, out = job
    rgb = imagecodecs.png_decode((Path(png_dir) / annotation["file_name"]).read_bytes())
    infos = annotation["segments_info"]
    positions, _, _ = map_ids(rgb_to_id(rgb), [0, *(s["id"] for s in infos)])
    labels = [names[s["category_id"]] for s in infos]
    return nucleus_line(Path(out), Path(annotation["file_name"]).stem, positions, labels, True)


def rle_item(line: str) -> list[dict[str, Any]]:
    record = json.loads(line)
    mask = imagecodecs.png_decode(Path(record["mask_url"]).read_bytes())
    height, width = mask.shape
    flat = mask.T.ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes, [flat.size]))
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(int(values.max(initial=0)) + 2))
    annotations = []
    for segment in record["annotations"]:
        metadata = segment.get("metadata") or {}
        if metadata.get("void"):
            continue
        index = segment["index"]
        chosen = order[bounds[index] : bounds[index + 1]] if index + 1 < bounds.size else order[:0]
        full = (starts[chosen], ends[chosen])
        if metadata.get("hidden_rle") is not None:  # the pixels other instances cover
            full = symmetric_difference(full, intervals_of(decode_counts(metadata["hidden_rle"])))
        counts = encode_runs(runs_of(full, flat.size), height, width)
        annotations.append(
            {
                "image": record["reference_id"],
                "label": segment["label"],
                "segmentation": {"size": [height, width], "counts": counts},
                "area": int((full[1] - full[0]).sum()),
            }
        )
    return annotations


def write_lines(out: Path, lines: Any) -> None:
    with (out / "annotations.jsonl").open("w") as handle:
        for line in lines:
            handle.write(line + "\n")


def main() -> None:
    job, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    (target / "masks").mkdir(parents=True, exist_ok=True)
    with Pool(WORKERS) as pool:
        if job == "sa1b-to-nucleus":
            files = [(str(p), str(target)) for p in sorted(source.glob("*.json"))]
            write_lines(target, pool.imap(sa1b_item, files, chunksize=2))
        elif job == "instances-to-nucleus":
            document = json.loads(source.read_text())
            names = {c["id"]: c["name"] for c in document["categories"]}
            grouped = defaultdict(list)
            for annotation in document["annotations"]:
                grouped[annotation["image_id"]].append(annotation)
            jobs = ((i, grouped[i["id"]], names, str(target)) for i in document["images"])
            write_lines(target, pool.imap(instances_item, jobs, chunksize=16))
        elif job == "panoptic-to-nucleus":
            document = json.loads(source.read_text())
            names = {c["id"]: c["name"] for c in document["categories"]}
            png_dir = str(source.with_suffix(""))
            jobs = ((a, png_dir, names, str(target)) for a in document["annotations"])
            write_lines(target, pool.imap(panoptic_item, jobs, chunksize=16))
        elif job == "nucleus-to-rle":
            lines = (source / "annotations.jsonl").read_text().splitlines()
            annotations = [a for group in pool.imap(rle_item, lines, chunksize=2) for a in group]
            (target / "instances.json").write_text(json.dumps({"annotations": annotations}))
        else:
            raise SystemExit(f"unknown job {job!r}")


if __name__ == "__main__":
    main()
