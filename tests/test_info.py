"""``segconvert info``: counts equal to ones made directly from the files with numpy/pycocotools."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest
from helpers import FASTER_COCO_EVAL, PANOPTICAPI, decode_any, default_spec, write_coco_panoptic
from PIL import Image

from segconvert.cli import main
from segconvert.info import dataset_info, median_of


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-plugins", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def panoptic_counts_made_directly(json_path, png_dir):
    """Per category: (instances, crowd, pixels), and void pixels, counted from PNG ids."""
    document = json.loads(json_path.read_text())
    per_category = defaultdict(lambda: [0, 0, 0])
    void = 0
    for annotation in document["annotations"]:
        rgb = np.asarray(Image.open(png_dir / annotation["file_name"]), dtype=np.uint32)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        void += int((ids == 0).sum())
        for info in annotation["segments_info"]:
            entry = per_category[info["category_id"]]
            entry[0] += 1
            entry[1] += info.get("iscrowd", 0)
            entry[2] += int((ids == info["id"]).sum())
    return {k: tuple(v) for k, v in per_category.items()}, void


def test_info_json_counts_of_the_panopticapi_sample_equal_a_direct_numpy_count(capsys):
    json_path = PANOPTICAPI / "panoptic_examples.json"
    code, out, _ = run(capsys, "info", str(json_path), "--json", "-j", "1")
    assert code == 0
    report = json.loads(out)
    expected, void = panoptic_counts_made_directly(json_path, PANOPTICAPI / "panoptic_examples")
    counted = {
        row["id"]: (row["instances"], row["crowd"], row["pixels"])
        for row in report["categories"]
        if row["instances"]
    }
    assert counted == expected
    assert report["items"] == 2 and report["failed"] == 0
    assert report["void_pixels"] == void
    assert report["pixels"] == 640 * 427 + 640 * 360
    assert report["void_fraction"] == pytest.approx(void / report["pixels"])
    assert report["segments_per_image"] == {"min": 18, "median": 25.0, "max": 32, "total": 50}
    assert sorted((s["width"], s["height"]) for s in report["image_sizes"]) == [
        (640, 360),
        (640, 427),
    ]
    things = {row["name"]: row["isthing"] for row in report["categories"]}
    assert things["person"] is True and things["sky-other-merged"] is False


@pytest.mark.skipif(not FASTER_COCO_EVAL.is_file(), reason="real data not available")
def test_info_json_counts_of_the_faster_coco_eval_file_equal_a_direct_pycocotools_count(capsys):
    from pycocotools import mask as mask_utils

    code, out, _ = run(capsys, "info", str(FASTER_COCO_EVAL), "--from", "coco-rle", "--json")
    assert code == 0
    report = json.loads(out)
    document = json.loads(FASTER_COCO_EVAL.read_text())
    images = {image["id"]: image for image in document["images"]}
    by_image = defaultdict(list)
    for annotation in document["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    instances, crowd, pixels = Counter(), Counter(), Counter()
    for image_id, image_annotations in by_image.items():
        height, width = images[image_id]["height"], images[image_id]["width"]
        masks = [decode_any(a["segmentation"], height, width) for a in image_annotations]
        areas = [
            int(mask_utils.area(mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))))
            for m in masks
        ]
        top = np.zeros((height, width), dtype=np.int64)  # smaller instances on top (the default)
        for position in sorted(range(len(masks)), key=lambda i: (-areas[i], i)):
            top[masks[position]] = position + 1
        visible = np.bincount(top.ravel(), minlength=len(masks) + 1)
        for position, annotation in enumerate(image_annotations):
            instances[annotation["category_id"]] += 1
            crowd[annotation["category_id"]] += annotation.get("iscrowd", 0)
            pixels[annotation["category_id"]] += int(visible[position + 1])
    counted = {row["id"]: row for row in report["categories"] if row["instances"]}
    assert {k: r["instances"] for k, r in counted.items()} == dict(instances)
    assert {k: r["crowd"] for k, r in counted.items() if r["crowd"]} == {
        k: v for k, v in crowd.items() if v
    }
    assert {k: r["pixels"] for k, r in counted.items()} == dict(pixels)
    assert report["items"] == len(images)
    assert sum(instances.values()) == 839


def test_info_counts_an_unreadable_item_apart_and_the_rest_as_usual(tmp_path):
    json_path = write_coco_panoptic(
        tmp_path, [default_spec("a"), default_spec("b")], skip_png={"b"}
    )
    report = dataset_info(json_path, jobs=1)
    assert report.items == 1 and report.failed == 1
    assert report.errors[0]["item"] == "b" and report.errors[0]["rule"] == "png-missing"
    person = next(row for row in report.to_json()["categories"] if row["name"] == "person")
    assert (person["instances"], person["crowd"], person["pixels"]) == (3, 1, 64 + 64 + 120)


def test_info_is_the_same_with_workers_and_with_a_limit(tmp_path):
    specs = [default_spec(f"i{k}", k) for k in range(9)]
    json_path = write_coco_panoptic(tmp_path, specs)
    in_process = dataset_info(json_path, jobs=1).to_json()
    assert dataset_info(json_path, jobs=2).to_json() == in_process
    assert dataset_info(json_path, jobs=1, limit=4).items == 4


def test_median_of_counted_values():
    assert median_of(Counter({1: 1, 5: 1, 9: 1})) == 5
    assert median_of(Counter({2: 2, 4: 2})) == 3
    assert median_of(Counter()) is None


def test_info_text_names_the_categories_present(capsys):
    code, out, _ = run(capsys, "info", str(PANOPTICAPI / "panoptic_examples.json"), "-j", "1")
    assert code == 0
    assert "2 item(s)" in out and "horse" in out and "thing" in out and "stuff" in out


def test_the_info_document_is_checked_against_its_schema(tmp_path):
    from segconvert import schemas

    json_path = write_coco_panoptic(tmp_path, [default_spec("a")])
    document = dataset_info(json_path, jobs=1).to_json()
    assert schemas.problems(schemas.INFO_REPORT, document) == []
    assert schemas.problems(schemas.INFO_REPORT, {**document, "void_fraction": 2})


@pytest.mark.slow
def test_info_memory_stays_flat_as_the_dataset_grows(tmp_path):
    import tracemalloc

    peaks = []
    dataset_info(write_coco_panoptic(tmp_path / "warm-up", [default_spec("w")]), jobs=1)
    for count in (40, 400):
        specs = [default_spec(f"i{k}", k) for k in range(count)]
        json_path = write_coco_panoptic(tmp_path / str(count), specs)
        tracemalloc.start()
        report = dataset_info(json_path, jobs=1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.items == count
    # The COCO panoptic scan keeps each image's record (by design; ~1.7 kB each here), never a
    # mask or a decoded segment list: what 360 more items cost is bounded per item.
    per_item = (peaks[1] - peaks[0]) / 360
    assert per_item < 4096, peaks
