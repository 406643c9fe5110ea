"""Cityscapes listing and id bugs of issue 13: gtFine beside gtCoarse, one frame id in two
cities, polygon instance ids past 65535, a COCO category with id 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_coco_panoptic, write_gtfine_frame
from PIL import Image

import segconvert
from segconvert import convert
from segconvert.diff import diff_datasets

FRAME = "aachen_000000_000019"


def write_coarse_frame(root, split, city, frame, values):
    folder = root / "gtCoarse" / split / city
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(folder / f"{frame}_gtCoarse_instanceIds.png")


@pytest.fixture
def official_root(tmp_path):
    """gtFine/ and gtCoarse/ side by side, as the official download unpacks: the frame in both
    (fine: road and a car; coarse: all road), and one frame in gtCoarse only."""
    root = tmp_path / "cityscapes"
    fine = np.full((8, 10), 7, dtype=np.uint16)
    fine[2:5, 2:6] = 26000
    write_gtfine_frame(root, "train", "aachen", FRAME, fine)
    write_coarse_frame(root, "train", "aachen", FRAME, np.full((8, 10), 7))
    write_coarse_frame(root, "train_extra", "bonn", "bonn_000000_000001", np.full((8, 10), 23))
    return root


def labels_of(dataset):
    return {s.reference_id: sorted(x.label for x in s.segments) for s in dataset}


def test_the_official_root_reads_every_frame_from_gtfine_by_default(official_root):
    dataset = segconvert.open(official_root, "cityscapes")
    assert labels_of(dataset) == {FRAME: ["car", "road"]}
    assert dataset.errors == []


def test_annotations_coarse_reads_gtcoarse_only_never_a_mix(official_root):
    dataset = segconvert.open(official_root, "cityscapes", annotations="coarse")
    assert labels_of(dataset) == {FRAME: ["road"], "bonn_000000_000001": ["sky"]}
    fine = segconvert.open(official_root, "cityscapes", annotations="fine")
    assert list(fine.reference_ids()) == [FRAME]


def test_a_gtcoarse_tree_alone_is_read_without_an_option(official_root):
    dataset = segconvert.open(official_root / "gtCoarse", "cityscapes")
    assert sorted(dataset.reference_ids()) == ["aachen_000000_000019", "bonn_000000_000001"]


def test_one_frame_id_in_two_cities_gives_two_items_and_both_are_written_back(tmp_path):
    root = tmp_path / "cs"
    car = np.full((6, 6), 7, dtype=np.uint16)
    car[1:3, 1:3] = 26001
    sky = np.full((6, 6), 23, dtype=np.uint16)
    write_gtfine_frame(root, "val", "a", "defaultcity_000001_000031", car)
    write_gtfine_frame(root, "val", "b", "defaultcity_000001_000031", sky)
    dataset = segconvert.open(root, "cityscapes")
    assert labels_of(dataset) == {
        "a/defaultcity_000001_000031": ["car", "road"],
        "b/defaultcity_000001_000031": ["sky"],
    }
    out = tmp_path / "out"
    report = convert(root, out, from_format="cityscapes", to_format="cityscapes", jobs=1)
    assert report.converted == 2 and report.exit_code == 0
    for city, expected in (("a", car), ("b", sky)):
        path = out / "gtFine" / "val" / city / "defaultcity_000001_000031_gtFine_instanceIds.png"
        assert np.array_equal(np.asarray(Image.open(path)), expected)


def polygon_file(folder, frame, objects, width=40, height=30):
    folder.mkdir(parents=True, exist_ok=True)
    document = {"imgWidth": width, "imgHeight": height, "objects": objects}
    (folder / f"{frame}_gtFine_polygons.json").write_text(json.dumps(document))


def test_polygon_instance_ids_past_65535_keep_their_class(tmp_path):
    table = [
        {"name": "unlabeled", "id": 0, "ignoreInEval": True, "color": [0, 0, 0]},
        {"name": "road", "id": 7, "color": [128, 64, 128]},
        {"name": "robot", "id": 70, "hasInstances": True, "color": [0, 255, 0]},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(table))
    objects = [{"label": "road", "polygon": [[0, 0], [39, 0], [39, 29], [0, 29]]}] + [
        {"label": "robot", "polygon": [[4 * k, 5], [4 * k + 3, 5], [4 * k + 3, 9], [4 * k, 9]]}
        for k in range(3)
    ]
    polygon_file(tmp_path / "cs" / "gtFine" / "val" / "lab", "lab_000000_000001", objects)
    dataset = segconvert.open(tmp_path / "cs", "cityscapes", labels=tmp_path / "labels.json")
    sample = next(iter(dataset))
    robots = [s for s in sample.segments if s.label == "robot"]
    assert [s.metadata["source_id"] for s in robots] == [70000, 70001, 70002]
    assert {s.category_id for s in robots} == {70}
    assert dataset.errors == []


def test_a_thousand_and_first_polygon_instance_is_an_item_error_not_a_wrap(tmp_path):
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    objects = [{"label": "person", "polygon": square} for _ in range(1001)]
    polygon_file(tmp_path / "cs" / "gtFine" / "val" / "c", "c_000000_000001", objects)
    dataset = segconvert.open(tmp_path / "cs", "cityscapes")
    assert list(dataset) == []
    assert [e.rule for e in dataset.errors] == ["instance-id-overflow"]


def test_a_coco_category_with_id_0_does_not_take_the_void_value_in_a_cityscapes_export(
    tmp_path,
):
    from helpers import ImageSpec

    categories = [
        {"id": 0, "name": "road", "supercategory": "flat", "isthing": 0, "color": [128, 64, 128]},
        {"id": 13, "name": "car", "supercategory": "vehicle", "isthing": 1, "color": [0, 0, 142]},
    ]
    spec = ImageSpec(
        "dummy_000000_000000",
        segments=[(7, 0, 0, (0, 15, 0, 40)), (26000, 13, 0, (18, 24, 5, 15))],
    )  # the rest of the frame is void
    source = write_coco_panoptic(tmp_path / "src", [spec], categories=categories)
    out = tmp_path / "cs"
    report = convert(source, out, to_format="cityscapes", jobs=1)
    assert report.exit_code == 0, report.errors
    table = {row["name"]: row for row in json.loads((out / "labels.json").read_text())}
    assert table["unlabeled"]["id"] == 0
    assert table["road"]["id"] != 0 and table["road"]["segconvertCategoryId"] == 0
    label_ids = np.asarray(
        Image.open(out / "gtFine" / "train" / "dummy" / f"{spec.name}_gtFine_labelIds.png")
    )
    assert (label_ids == table["road"]["id"]).sum() == 15 * 40
    assert (label_ids == 0).sum() == 40 * 30 - 15 * 40 - 6 * 10
    back = segconvert.open(out, "cityscapes")
    road = next(s for s in next(iter(back)).segments if s.label == "road")
    assert road.category_id == 0
    summary = list(diff_datasets(source, out, from_b="cityscapes"))[-1]
    assert summary["identical_datasets"], summary
