"""cityscapes importer and exporter: instance-exact, against cityscapesScripts itself."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    DATUMARO_CITYSCAPES,
    MMSEG_GTFINE,
    read_jsonl,
    read_panoptic,
    run_cli,
    synthetic_instance_ids,
    write_gtfine_frame,
)
from PIL import Image

from segconvert import Registry, UsageError, convert
from segconvert.formats.cityscapes.labels import OFFICIAL

IGNORED_IDS = [label.id for label in OFFICIAL.labels if label.ignoreInEval and label.id >= 0]
needs_realdata = pytest.mark.skipif(not MMSEG_GTFINE.is_dir(), reason="../shared/realdata absent")


def gt_files(root: Path, file_type: str) -> dict[str, np.ndarray]:
    """``{reference id: pixels}`` of every ``*_gtFine_<file_type>.png`` under ``root``."""
    found = {}
    for path in sorted(root.rglob(f"*_gtFine_{file_type}.png")):
        found[path.name.split("_gtFine_")[0]] = np.asarray(Image.open(path)).astype(np.int64)
    return found


def labels_of(instance_ids: np.ndarray) -> np.ndarray:
    return np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)


def via_nucleus(source: Path, tmp_path: Path, registry: Registry, **options: object) -> Path:
    nucleus, back = tmp_path / "nucleus", tmp_path / "back"
    first = convert(
        source,
        nucleus,
        from_format="cityscapes",
        to_format="nucleus",
        options=options,
        registry=registry,
        jobs=1,
    )
    assert first.exit_code == 0, first.errors
    second = convert(
        nucleus, back, from_format="nucleus", to_format="cityscapes", registry=registry, jobs=1
    )
    assert second.exit_code == 0, second.errors
    return back


@pytest.fixture
def synthetic_tree(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    write_gtfine_frame(root, "val", "aachen", "aachen_000000_000019", synthetic_instance_ids(0))
    write_gtfine_frame(root, "val", "aachen", "aachen_000001_000019", synthetic_instance_ids(1))
    write_gtfine_frame(root, "train", "bochum", "bochum_000000_000313", synthetic_instance_ids(2))
    return root / "gtFine"


def assert_round_trip(source: Path, back: Path, keep_ignored: bool) -> None:
    original, result = gt_files(source, "instanceIds"), gt_files(back, "instanceIds")
    assert original.keys() == result.keys() and original
    for reference, values in original.items():
        labels = labels_of(values)
        outside = ~np.isin(labels, IGNORED_IDS) if not keep_ignored else np.ones_like(labels, bool)
        assert np.array_equal(values[outside], result[reference][outside]), reference
        assert np.array_equal(labels[outside], gt_files(back, "labelIds")[reference][outside])
        if not keep_ignored:
            assert (result[reference][~outside] == 0).all()  # ignored classes came back as void


@pytest.mark.parametrize("keep_ignored", [False, True])
def test_synthetic_tree_round_trips_through_nucleus(
    synthetic_tree, tmp_path, registry, keep_ignored
):
    back = via_nucleus(synthetic_tree, tmp_path, registry, keep_ignored=keep_ignored)
    assert_round_trip(synthetic_tree, back / "gtFine", keep_ignored)
    assert (
        back / "gtFine" / "train" / "bochum" / "bochum_000000_000313_gtFine_color.png"
    ).is_file()


@needs_realdata
@pytest.mark.parametrize("keep_ignored", [False, True])
@pytest.mark.parametrize("sample", ["mmseg", "datumaro-dataset", "datumaro-train"])
def test_every_real_cityscapes_sample_round_trips_through_nucleus(
    tmp_path, registry, keep_ignored, sample
):
    source = {
        "mmseg": MMSEG_GTFINE,
        "datumaro-dataset": DATUMARO_CITYSCAPES / "dataset" / "gtFine",
        "datumaro-train": DATUMARO_CITYSCAPES / "train_dataset" / "gtFine",
    }[sample]
    back = via_nucleus(source, tmp_path, registry, keep_ignored=keep_ignored)
    assert_round_trip(source, back / "gtFine", keep_ignored)
    if sample == "mmseg":
        for reference, labels in gt_files(source, "labelIds").items():
            result = gt_files(back / "gtFine", "labelIds")[reference]
            outside = np.ones_like(labels, bool) if keep_ignored else ~np.isin(labels, IGNORED_IDS)
            assert np.array_equal(labels[outside], result[outside])


@needs_realdata
def test_the_real_frame_keeps_all_seven_instances_to_coco_panoptic(tmp_path, registry):
    nucleus = tmp_path / "nucleus"
    convert(
        MMSEG_GTFINE,
        nucleus,
        from_format="cityscapes",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    (line,) = read_jsonl(nucleus / "annotations.jsonl")
    instances = sorted(
        s["metadata"]["source_id"]
        for s in line["annotations"]
        if s.get("metadata", {}).get("source_id", 0) >= 1000
    )
    assert instances == [24000, 24001, 24002, 24003, 26000, 26001, 26002]
    convert(
        nucleus,
        tmp_path / "coco",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    ((_, annotation, ids),) = read_panoptic(tmp_path / "coco" / "panoptic.json").values()
    things = sorted(s["id"] for s in annotation["segments_info"] if s["id"] >= 1000)
    assert things == instances
    original = gt_files(MMSEG_GTFINE, "instanceIds")["frankfurt_000000_000294"]
    for value in instances:
        assert np.array_equal(ids == value, original == value)


def run_cs_create_panoptic(gtfine: Path, out: Path, *extra: str) -> None:
    pytest.importorskip("cityscapesscripts")
    tool = Path(sys.executable).parent / "csCreatePanopticImgs"
    splits = sorted(p.name for p in gtfine.iterdir() if p.is_dir())
    out.mkdir(parents=True)
    subprocess.run(
        [
            str(tool),
            "--dataset-folder",
            str(gtfine),
            "--output-folder",
            str(out),
            "--set-names",
            *splits,
            *extra,
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("use_train_id", [False, True])
def test_cityscapes_to_coco_panoptic_agrees_with_cs_create_panoptic_imgs(
    synthetic_tree, tmp_path, use_train_id
):
    if MMSEG_GTFINE.is_dir():  # add the real frame to the comparison (copied to tmp only)
        shutil.copytree(MMSEG_GTFINE / "val" / "frankfurt", synthetic_tree / "val" / "frankfurt")
    reference_out = tmp_path / "reference"
    run_cs_create_panoptic(
        synthetic_tree, reference_out, *(["--use-train-id"] if use_train_id else [])
    )
    suffix = "_trainId" if use_train_id else ""
    ours = {}
    for split in ("train", "val"):
        result = run_cli(
            "convert",
            str(synthetic_tree / split),
            str(tmp_path / f"ours-{split}"),
            "--from",
            "cityscapes",
            "--to",
            "coco-panoptic",
            *(["--use-train-id"] if use_train_id else []),
        )
        assert result.returncode == 0, result.stderr
        theirs_json = reference_out / f"cityscapes_panoptic_{split}{suffix}.json"
        theirs = json.loads(theirs_json.read_text())
        mine = json.loads((tmp_path / f"ours-{split}" / "panoptic.json").read_text())
        fields = ("id", "name", "color", "supercategory", "isthing")
        assert [{k: c[k] for k in fields} for c in mine["categories"]] == theirs["categories"]
        assert sorted(i["id"] for i in mine["images"]) == sorted(i["id"] for i in theirs["images"])
        their_pngs = read_panoptic(theirs_json)
        for reference, (_, annotation, ids) in read_panoptic(
            tmp_path / f"ours-{split}" / "panoptic.json"
        ).items():
            ((_, their_annotation, their_ids),) = [
                v for k, v in their_pngs.items() if k.startswith(reference)
            ]
            assert np.array_equal(ids, their_ids), reference
            key = lambda s: s["id"]  # noqa: E731
            assert sorted(annotation["segments_info"], key=key) == sorted(
                their_annotation["segments_info"], key=key
            )
            assert annotation["image_id"] == their_annotation["image_id"]
            ours[reference] = annotation
    assert len(ours) == 3 + MMSEG_GTFINE.is_dir()


def test_crowd_groups_and_ignored_instances_are_mapped_as_documented(synthetic_tree, registry):
    dataset = registry.importer("cityscapes").open(synthetic_tree / "val", {})
    sample = next(iter(dataset))
    by_source = {s.metadata["source_id"]: s for s in sample.segments if not s.is_void}
    assert by_source[26].metadata["iscrowd"] == 1 and by_source[26].label == "car"
    assert by_source[26000].metadata["iscrowd"] == 0
    assert by_source[26003].metadata["iscrowd"] == 0
    assert by_source[7].metadata["iscrowd"] == 0  # road: stuff
    assert 29000 not in by_source and 3 not in by_source  # caravan, out of roi: void
    assert sample.segments[0].is_void
    assert sample.metadata["cityscapes"] == {
        "split": "val",
        "city": "aachen",
        "frame": "aachen_000000_000019",
    }


def test_keep_ignored_and_train_ids_cannot_be_combined(synthetic_tree, registry):
    with pytest.raises(UsageError, match="keep-ignored"):
        registry.importer("cityscapes").open(
            synthetic_tree, {"keep_ignored": True, "use_train_id": True}
        )


def test_label_ids_fill_in_where_there_are_no_instance_ids(tmp_path, registry):
    root = tmp_path / "cs"
    write_gtfine_frame(
        root, "val", "c", "c_000000_000001", synthetic_instance_ids(), instances=False
    )
    sample = next(iter(registry.importer("cityscapes").open(root, {})))
    cars = [s for s in sample.segments if s.label == "car"]
    assert len(cars) == 1 and cars[0].metadata["iscrowd"] == 1  # no instance info: one group


def test_label_train_ids_alone_are_read_through_the_train_id_table(tmp_path, registry):
    folder = tmp_path / "gtFine" / "val" / "c"
    folder.mkdir(parents=True)
    train_ids = np.array([[0, 0, 13, 255], [10, 10, 13, 255]], dtype=np.uint8)
    Image.fromarray(train_ids).save(folder / "c_000000_000001_gtFine_labelTrainIds.png")
    sample = next(iter(registry.importer("cityscapes").open(tmp_path / "gtFine", {})))
    assert [(s.label, s.metadata.get("category_id")) for s in sample.segments] == [
        ("void", None),
        ("road", 7),
        ("sky", 23),
        ("car", 26),
    ]


def test_polygons_are_rasterised_like_cityscapes_scripts(tmp_path, registry):
    json2instance = pytest.importorskip("cityscapesscripts.preparation.json2instanceImg")
    from cityscapesscripts.helpers.annotation import Annotation

    polygons = {
        "imgHeight": 40,
        "imgWidth": 50,
        "objects": [
            {"label": "road", "polygon": [[0, 20], [49, 20], [49, 39], [0, 39]]},
            {"label": "sky", "polygon": [[0, 0], [49, 0], [49, 10], [0, 10]]},
            {"label": "car", "polygon": [[5, 22], [20, 22], [20, 30], [5, 30]]},
            {"label": "car", "polygon": [[15, 25], [30, 25], [28, 35], [14, 33]]},
            {"label": "cargroup", "polygon": [[32, 22], [45, 22], [45, 30]]},
            {"label": "license plate", "polygon": [[8, 27], [12, 27], [12, 29], [8, 29]]},
            {"label": "person", "polygon": [[40, 5], [44, 5], [44, 15]], "deleted": 1},
            {"label": "caravan", "polygon": [[1, 31], [4, 31], [4, 38], [1, 38]]},
        ],
    }
    folder = tmp_path / "gtFine" / "val" / "c"
    folder.mkdir(parents=True)
    path = folder / "c_000000_000001_gtFine_polygons.json"
    path.write_text(json.dumps(polygons))
    annotation = Annotation()
    annotation.fromJsonFile(str(path))
    expected = np.asarray(json2instance.createInstanceImage(annotation, "ids"), dtype=np.int64)
    out = tmp_path / "out"
    report = convert(
        tmp_path / "gtFine",
        out,
        from_format="cityscapes",
        to_format="cityscapes",
        options={"keep_ignored": True},
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 0, report.errors
    assert np.array_equal(gt_files(out, "instanceIds")["c_000000_000001"], expected)


def test_a_user_label_table_replaces_the_official_one(tmp_path, registry):
    table = [
        {"name": "background", "id": 0, "trainId": 255, "ignoreInEval": True, "color": [0, 0, 0]},
        {"name": "lane", "id": 1, "trainId": 0, "color": [255, 255, 0]},
        {"name": "robot", "id": 2, "trainId": 1, "hasInstances": True, "color": [0, 255, 0]},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(table))
    values = np.array([[1, 1, 2000, 2001], [0, 1, 2001, 2]], dtype=np.uint16)
    write_gtfine_frame(tmp_path / "cs", "val", "lab", "lab_000000_000001", values)
    options = {"labels": str(tmp_path / "labels.json")}
    dataset = registry.importer("cityscapes").open(tmp_path / "cs", options)
    assert [c.name for c in dataset.categories] == ["lane", "robot"]
    back = via_nucleus(tmp_path / "cs", tmp_path, registry, **options)
    assert np.array_equal(gt_files(back, "instanceIds")["lab_000000_000001"], values)
    written = {row["name"]: row["id"] for row in json.loads((back / "labels.json").read_text())}
    assert written == {"unlabeled": 0, "lane": 1, "robot": 2}  # void (0) listed so it reads back


def test_more_than_256_segments_is_a_clear_item_error_going_to_nucleus(tmp_path, registry):
    values = np.full((20, 20), 7, dtype=np.uint16)
    values.ravel()[:300] = 26000 + np.arange(300)
    write_gtfine_frame(tmp_path / "cs", "val", "c", "c_000000_000001", values)
    write_gtfine_frame(tmp_path / "cs", "val", "c", "c_000000_000002", synthetic_instance_ids())
    report = convert(
        tmp_path / "cs",
        tmp_path / "o",
        from_format="cityscapes",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 3 and report.converted == 1
    assert [(e["item"], e["rule"]) for e in report.errors] == [
        ("c_000000_000001", "too-many-segments")
    ]
    assert "301 segments" in report.errors[0]["message"]


def test_unknown_label_values_are_an_item_error(tmp_path, registry):
    write_gtfine_frame(
        tmp_path / "cs", "val", "c", "c_000000_000001", np.full((4, 4), 77, np.uint16)
    )
    report = convert(
        tmp_path / "cs",
        tmp_path / "o",
        from_format="cityscapes",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert [e["rule"] for e in report.errors] == ["unknown-category"]


def test_coco_things_beyond_the_uint16_encoding_fail_alone(tmp_path, registry):
    from helpers import CATEGORIES, ImageSpec, write_coco_panoptic

    json_path = write_coco_panoptic(
        tmp_path / "src", [ImageSpec("ok", segments=[(5, 3, 0, (0, 5, 0, 5))])]
    )
    document = json.loads(json_path.read_text())
    document["categories"] = CATEGORIES + [
        {"id": 90, "name": "toothbrush", "supercategory": "x", "isthing": 1, "color": [1, 2, 3]}
    ]
    document["annotations"].append(
        {
            "image_id": 2,
            "file_name": "tb.png",
            "segments_info": [
                {"id": 9, "category_id": 90, "iscrowd": 0, "area": 25, "bbox": [0, 0, 5, 5]}
            ],
        }
    )
    document["images"].append({"id": 2, "file_name": "tb.jpg", "width": 40, "height": 30})
    Image.open(json_path.with_suffix("") / "ok.png").point(lambda v: 9 if v == 5 else v).save(
        json_path.with_suffix("") / "tb.png"
    )
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path,
        tmp_path / "o",
        from_format="coco-panoptic",
        to_format="cityscapes",
        registry=registry,
        jobs=1,
    )
    assert report.converted == 1
    assert [(e["item"], e["rule"]) for e in report.errors] == [("tb", "label-id-overflow")]
    assert not list((tmp_path / "o").rglob("tb_*"))


def test_validate_cross_checks_label_ids_against_instance_ids(synthetic_tree, registry):
    from segconvert import validate_dataset

    assert validate_dataset(synthetic_tree, "cityscapes", registry=registry, jobs=1) == (3, [])
    path = synthetic_tree / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    labels = np.asarray(Image.open(path)).copy()
    labels[0, :5] = 8
    Image.fromarray(labels).save(path)
    checked, problems = validate_dataset(synthetic_tree, "cityscapes", registry=registry, jobs=1)
    assert [(p["item"], p["rule"]) for p in problems] == [
        ("aachen_000000_000019", "labelids-mismatch")
    ]
    assert "5 pixels" in problems[0]["message"]


def test_our_label_table_is_found_when_converting_the_gtfine_folder_back(tmp_path, registry):
    table = [
        {"name": "lane", "id": 1, "color": [255, 255, 0]},
        {"name": "robot", "id": 2, "hasInstances": True, "color": [0, 255, 0]},
    ]
    (tmp_path / "labels.json").write_text(json.dumps(table))
    values = np.array([[1, 2000], [2001, 1]], dtype=np.uint16)
    write_gtfine_frame(tmp_path / "cs", "val", "lab", "lab_000000_000001", values)
    out = tmp_path / "out"
    convert(
        tmp_path / "cs",
        out,
        from_format="cityscapes",
        to_format="cityscapes",
        options={"labels": str(tmp_path / "labels.json")},
        registry=registry,
        jobs=1,
    )
    dataset = registry.importer("cityscapes").open(out / "gtFine", {})
    assert [c.name for c in dataset.categories] == ["lane", "robot"]
