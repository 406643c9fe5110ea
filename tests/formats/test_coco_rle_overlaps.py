"""coco-rle overlaps are lossless: no instance dropped, every pixel back, records as they were,
results stay results; checked on real COCO, LVIS, cocoapi results and an SA-1B-style file."""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from helpers import COCOAPI_RESULTS, FASTER_COCO_EVAL, LVIS, REALDATA, decode_any, read_jsonl
from PIL import Image
from pycocotools import mask as mask_utils

from segconvert import Registry, convert

needs_realdata = pytest.mark.skipif(
    not (REALDATA / "cocoapi").is_dir(), reason="../shared/realdata absent"
)


def run(source: Path, out: Path, registry: Registry, source_format: str, target: str, **options):
    return convert(
        source,
        out,
        from_format=source_format,
        to_format=target,
        options=options,
        registry=registry,
        jobs=1,
    )


def round_trip(source: Path, tmp: Path, registry: Registry, via_nucleus: bool, **options) -> Path:
    """coco-rle -> nucleus -> coco-rle, or coco-rle -> coco-rle; the output folder."""
    if via_nucleus:
        first = run(source, tmp / "nucleus", registry, "coco-rle", "nucleus", **options)
        assert first.exit_code == 0, first.errors[:3]
        source = tmp / "nucleus"
        back = run(source, tmp / "back", registry, "nucleus", "coco-rle")
    else:
        back = run(source, tmp / "back", registry, "coco-rle", "coco-rle", **options)
    assert back.exit_code == 0, back.errors[:3]
    return tmp / "back"


def rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    return decode_any(segmentation, height, width)


def write_instances(path: Path, size: tuple[int, int], annotations: list[dict]) -> Path:
    document = {
        "images": [{"id": 1, "file_name": "img.jpg", "height": size[0], "width": size[1]}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing", "supercategory": "x"}],
    }
    path.write_text(json.dumps(document))
    return path


def box_rle(height: int, width: int, rows: slice, cols: slice) -> dict:
    binary = np.zeros((height, width), dtype=np.uint8, order="F")
    binary[rows, cols] = 1
    encoded = mask_utils.encode(binary)
    return {"size": [height, width], "counts": encoded["counts"].decode()}


@pytest.mark.parametrize("via_nucleus", [True, False])
def test_an_instance_entirely_under_others_and_an_empty_one_come_back_whole(
    tmp_path, registry, via_nucleus
):
    whole = box_rle(10, 10, slice(0, 10), slice(0, 10))
    top = box_rle(10, 10, slice(0, 5), slice(0, 10))
    bottom = box_rle(10, 10, slice(5, 10), slice(0, 10))
    empty = box_rle(10, 10, slice(0, 0), slice(0, 0))
    records = [
        {"id": 100, "image_id": 1, "category_id": 1, "segmentation": whole, "iscrowd": 0},
        {"id": 101, "image_id": 1, "category_id": 1, "segmentation": top, "iscrowd": 0},
        {"id": 102, "image_id": 1, "category_id": 1, "segmentation": bottom, "iscrowd": 0},
        {"id": 103, "image_id": 1, "category_id": 1, "segmentation": empty, "iscrowd": 0},
    ]
    source = write_instances(tmp_path / "in.json", (10, 10), records)
    out = round_trip(source, tmp_path, registry, via_nucleus)
    result = json.loads((out / "instances.json").read_text())
    assert [a["id"] for a in result["annotations"]] == [100, 101, 102, 103]
    for theirs, ours in zip(records, result["annotations"], strict=True):
        assert ours["segmentation"] == theirs["segmentation"]  # the very same RLE string
    assert [a["area"] for a in result["annotations"]] == [100, 50, 50, 0]
    assert result["annotations"][3]["bbox"] == [0.0, 0.0, 0.0, 0.0]


def test_drop_hidden_leaves_the_hidden_pixels_out_and_the_notes_say_so(tmp_path, registry):
    whole = box_rle(10, 10, slice(0, 10), slice(0, 10))
    top = box_rle(10, 10, slice(0, 5), slice(0, 10))
    records = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": whole, "area": 100},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": top, "area": 50},
    ]
    source = write_instances(tmp_path / "in.json", (10, 10), records)
    report = run(source, tmp_path / "n", registry, "coco-rle", "nucleus", drop_hidden=True)
    (occluded,) = [n for n in report.notes if n["rule"] == "occluded"]
    assert occluded["occluded_pixels"] == 50 and occluded["kept"] is False
    assert "lost" in occluded["message"]
    (line,) = read_jsonl(tmp_path / "n" / "annotations.jsonl")
    assert not any("hidden_rle" in (s.get("metadata") or {}) for s in line["annotations"])
    back = run(tmp_path / "n", tmp_path / "b", registry, "nucleus", "coco-rle")
    assert back.exit_code == 0
    result = json.loads((tmp_path / "b" / "instances.json").read_text())
    first = result["annotations"][0]
    assert first["area"] == 50 == rle(first["segmentation"], 10, 10).sum()  # recomputed
    assert result["annotations"][1]["area"] == 50


def sa1b_style_file(path: Path, seed: int = 0, height: int = 90, width: int = 120) -> Path:
    """Nested, overlapping elliptic masks like SA-1B's: regions, objects and their parts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    annotations = []
    for k in range(40):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(2, 40), rng.uniform(2, 50)
        binary = ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1).astype(np.uint8)
        encoded = mask_utils.encode(np.asfortranarray(binary))
        annotations.append(
            {
                "id": 1000 + k,
                "segmentation": {"size": [height, width], "counts": encoded["counts"].decode()},
                "area": int(binary.sum()),
                "bbox": mask_utils.toBbox(encoded).tolist(),
                "predicted_iou": float(rng.uniform(0.8, 1)),
                "point_coords": [[cx, cy]],
                "stability_score": 0.9,
                "crop_box": [0, 0, width, height],
            }
        )
    image = {"image_id": 7, "width": width, "height": height, "file_name": "sa_7.jpg"}
    path.write_text(json.dumps({"image": image, "annotations": annotations}))
    return path


@pytest.mark.parametrize("via_nucleus", [True, False])
def test_every_sa1b_mask_comes_back_identical_with_its_id(tmp_path, registry, via_nucleus):
    source = sa1b_style_file(tmp_path / "sa_7.json")
    out = round_trip(source, tmp_path, registry, via_nucleus)
    theirs = json.loads(source.read_text())["annotations"]
    ours = json.loads((out / "instances.json").read_text())["annotations"]
    assert [a["id"] for a in ours] == [a["id"] for a in theirs]
    for mine, original in zip(ours, theirs, strict=True):
        assert mine["segmentation"] == original["segmentation"]
        assert (mine["area"], mine["bbox"]) == (original["area"], original["bbox"])
        assert mine["predicted_iou"] == original["predicted_iou"]


def by_id(document: dict) -> dict:
    return {a["id"]: a for a in document["annotations"]}


@needs_realdata
@pytest.mark.slow
@pytest.mark.parametrize("source", [FASTER_COCO_EVAL, LVIS], ids=["coco", "lvis"])
@pytest.mark.parametrize("via_nucleus", [True, False])
def test_every_real_annotation_id_comes_back_with_an_equal_mask_and_its_record(
    tmp_path, registry, source, via_nucleus
):
    out = round_trip(source, tmp_path, registry, via_nucleus)
    original = json.loads(source.read_text())
    result = json.loads((out / "instances.json").read_text())
    sizes = {i["id"]: (i["height"], i["width"]) for i in original["images"]}
    ours = by_id(result)
    assert sorted(ours) == sorted(a["id"] for a in original["annotations"])
    for annotation in original["annotations"]:
        mine = ours[annotation["id"]]
        size = sizes[annotation["image_id"]]
        assert np.array_equal(
            rle(mine["segmentation"], *size), rle(annotation["segmentation"], *size)
        )
        for key, value in annotation.items():  # every field as it was, none recomputed
            if key != "segmentation":
                assert mine[key] == value, key
    assert result["images"] == original["images"]
    assert result["categories"] == original["categories"]


def coco_eval(gt_file: Path, results_file: Path) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        detections = gt.loadRes(str(results_file))
        evaluation = COCOeval(gt, detections, "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats]


@needs_realdata
@pytest.mark.slow
@pytest.mark.parametrize("via_nucleus", [True, False])
def test_cocoeval_gives_all_twelve_numbers_identical_after_round_trips(
    tmp_path, registry, via_nucleus
):
    gt_back = round_trip(FASTER_COCO_EVAL, tmp_path / "gt", registry, via_nucleus)
    results_back = round_trip(
        COCOAPI_RESULTS,
        tmp_path / "dt",
        registry,
        via_nucleus,
        categories=str(FASTER_COCO_EVAL),
    )
    original = coco_eval(FASTER_COCO_EVAL, COCOAPI_RESULTS)
    assert original[0] == pytest.approx(0.3195, abs=1e-4)  # the real, non-trivial number
    assert coco_eval(gt_back / "instances.json", COCOAPI_RESULTS) == original
    assert coco_eval(FASTER_COCO_EVAL, results_back / "results.json") == original
    assert coco_eval(gt_back / "instances.json", results_back / "results.json") == original


@needs_realdata
@pytest.mark.slow
@pytest.mark.parametrize("rule", ["smaller-on-top", "score"])
def test_results_stay_a_results_list_with_their_scores_and_no_added_keys(tmp_path, registry, rule):
    from pycocotools.coco import COCO

    out = round_trip(
        COCOAPI_RESULTS,
        tmp_path,
        registry,
        True,
        categories=str(FASTER_COCO_EVAL),
        overlap=rule,
    )
    original = json.loads(COCOAPI_RESULTS.read_text())
    result = json.loads((out / "results.json").read_text())
    assert isinstance(result, list) and len(result) == len(original) == 734
    grouped = defaultdict(list)
    for detection in original:
        grouped[detection["image_id"]].append(detection)
    images = json.loads(FASTER_COCO_EVAL.read_text())["images"]  # the order images come in
    in_file_order = [d for image in images for d in grouped[image["id"]]]
    for mine, theirs in zip(result, in_file_order, strict=True):
        assert set(mine) == set(theirs)  # no bbox, area, id or iscrowd added
        assert mine["score"] == theirs["score"] and mine["image_id"] == theirs["image_id"]
        height, width = theirs["segmentation"]["size"]
        assert np.array_equal(
            rle(mine["segmentation"], height, width), rle(theirs["segmentation"], height, width)
        )
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = COCO(str(FASTER_COCO_EVAL)).loadRes(str(out / "results.json"))
    assert len(loaded.getAnnIds()) == 734


@needs_realdata
@pytest.mark.slow
@pytest.mark.parametrize("rule", ["smaller-on-top", "later-on-top", "score"])
def test_index_masks_are_the_painters_result_pixel_for_pixel(tmp_path, registry, rule):
    """The run painter gives exactly what decoding every mask and painting it by the rule
    gives (the masks segconvert wrote before painting from runs)."""
    run(
        COCOAPI_RESULTS,
        tmp_path / "n",
        registry,
        "coco-rle",
        "nucleus",
        overlap=rule,
        categories=str(FASTER_COCO_EVAL),
    )
    names = {
        i["id"]: Path(i["file_name"]).stem
        for i in json.loads(FASTER_COCO_EVAL.read_text())["images"]
    }
    grouped = defaultdict(list)
    for detection in json.loads(COCOAPI_RESULTS.read_text()):
        grouped[detection["image_id"]].append(detection)
    for image_id, detections in grouped.items():
        masks = [mask_utils.decode(d["segmentation"]).astype(bool) for d in detections]
        areas = [int(m.sum()) for m in masks]
        order = list(range(len(masks)))
        if rule == "smaller-on-top":
            order.sort(key=lambda i: (-areas[i], i))
        elif rule == "score":
            order.sort(key=lambda i: (detections[i]["score"], i))
        expected = np.zeros(masks[0].shape, dtype=np.uint8)
        for position in order:
            expected[masks[position]] = position + 1
        png = np.asarray(Image.open(tmp_path / "n" / "masks" / f"{names[image_id]}.png"))
        if expected.all():
            expected -= 1  # no void: instances from 0
        assert np.array_equal(png, expected)


def test_placeholder_categories_are_announced_and_things_inferred(tmp_path, registry):
    a = box_rle(10, 10, slice(0, 3), slice(0, 3))
    b = box_rle(10, 10, slice(5, 9), slice(5, 9))
    detections = [
        {"image_id": 1, "category_id": 4, "segmentation": a, "score": 0.9},
        {"image_id": 1, "category_id": 4, "segmentation": b, "score": 0.8},
        {"image_id": 1, "category_id": 9, "segmentation": b, "score": 0.7},
        {"image_id": 2, "category_id": 9, "segmentation": a, "score": 0.6},
    ]
    source = tmp_path / "results.json"
    source.write_text(json.dumps(detections))
    report = run(source, tmp_path / "o", registry, "coco-rle", "coco-panoptic")
    assert report.exit_code == 0, report.errors
    (note,) = [n for n in report.notes if n["rule"] == "placeholder-categories"]
    assert note["ids"] == [4, 9] and "--categories" in note["message"]
    assert report.warnings == [note["message"]]
    document = json.loads((tmp_path / "o" / "panoptic.json").read_text())
    assert {c["id"]: c["isthing"] for c in document["categories"]} == {4: 1, 9: 0}
