"""Modes, label maps and the 256-segment limit (segconvert.transforms), through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    MMSEG_GTFINE,
    NUCLEUS_EXAMPLE_CATEGORIES,
    PANOPTICAPI,
    default_spec,
    grid_spec,
    nucleus_example_spec,
    paint_ids,
    read_jsonl,
    read_panoptic,
    run_cli,
    synthetic_instance_ids,
    write_coco_panoptic,
    write_gtfine_frame,
)
from PIL import Image

from segconvert import UsageError, convert, validate_dataset

EXAMPLE_IDS = {
    "background": [0],
    "building": [11],
    "tree": [12],
    "fence": [13],
    "wall": [14],
    "pavement": [15],
    "person": [21],
    "handbag": [22],
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return write_coco_panoptic(
        tmp_path / "src", [nucleus_example_spec()], categories=NUCLEUS_EXAMPLE_CATEGORIES
    )


def to_nucleus(source, out, registry, **kwargs):
    report = convert(
        source,
        out,
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
        **kwargs,
    )
    assert report.exit_code == 0, report.errors
    (line,) = read_jsonl(out / "annotations.jsonl")
    return line, np.asarray(Image.open(out / "masks" / f"{line['reference_id']}.png"))


def partition(line, mask):
    """label -> sorted list of index regions, each as a boolean mask."""
    return [
        (s["label"], mask == s["index"])
        for s in sorted(line["annotations"], key=lambda s: s["index"])
    ]


def test_the_nucleus_example_in_panoptic_mode_gives_11_segments(example, tmp_path, registry):
    line, mask = to_nucleus(example, tmp_path / "p", registry, void_label="background")
    ids = paint_ids(nucleus_example_spec())
    got = partition(line, mask)
    assert [label for label, _ in got] == [
        "background",
        "building",
        "tree",
        "fence",
        "wall",
        "pavement",
        "person",
        "handbag",
        "bird",
        "bird",
        "bird",
    ]
    assert [s["index"] for s in line["annotations"]] == list(range(11))
    originals = [0, 11, 12, 13, 14, 15, 21, 22, 31, 32, 33]
    for (_, region), original in zip(got, originals, strict=True):
        assert np.array_equal(region, ids == original)


def test_the_nucleus_example_in_instance_mode_gives_6_segments(example, tmp_path, registry):
    line, mask = to_nucleus(example, tmp_path / "i", registry, mode="instance")
    ids = paint_ids(nucleus_example_spec())
    got = partition(line, mask)
    assert [label for label, _ in got] == [
        "background",
        "person",
        "handbag",
        "bird",
        "bird",
        "bird",
    ]
    assert line["annotations"][0] == {"label": "background", "index": 0, "metadata": {"void": True}}
    assert np.array_equal(got[0][1], np.isin(ids, [0, 11, 12, 13, 14, 15]))  # old 0-5
    for (_, region), original in zip(got[1:], [21, 22, 31, 32, 33], strict=True):
        assert np.array_equal(region, ids == original)


def test_the_nucleus_example_in_semantic_mode_gives_9_segments(example, tmp_path, registry):
    line, mask = to_nucleus(
        example, tmp_path / "s", registry, mode="semantic", void_label="background"
    )
    ids = paint_ids(nucleus_example_spec())
    got = partition(line, mask)
    assert [label for label, _ in got] == [
        "background",
        "building",
        "tree",
        "fence",
        "wall",
        "pavement",
        "person",
        "handbag",
        "bird",
    ]
    for label, region in got[:-1]:
        assert np.array_equal(region, np.isin(ids, EXAMPLE_IDS[label]))
    assert np.array_equal(got[-1][1], np.isin(ids, [31, 32, 33]))  # one bird = old 8-10
    assert got[-1][0] == "bird"


@pytest.mark.parametrize("mode", ["panoptic", "instance", "semantic"])
def test_each_mode_from_coco_panoptic_reads_back_through_the_inverse_exporter(
    tmp_path, registry, mode
):
    convert(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "n",
        from_format="coco-panoptic",
        to_format="nucleus",
        mode=mode,
        registry=registry,
        jobs=1,
    )
    assert validate_dataset(tmp_path / "n", "nucleus", registry=registry, jobs=1)[1] == []
    back = convert(
        tmp_path / "n",
        tmp_path / "c",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0, back.errors
    assert (
        validate_dataset(
            tmp_path / "c" / "panoptic.json", "coco-panoptic", registry=registry, jobs=1
        )[1]
        == []
    )
    source = read_panoptic(PANOPTICAPI / "panoptic_examples.json")
    categories = {
        c["id"]: c
        for c in json.loads((PANOPTICAPI / "panoptic_examples.json").read_text())["categories"]
    }
    for reference, (_, annotation, _) in read_panoptic(tmp_path / "c" / "panoptic.json").items():
        source_infos = source[reference][1]["segments_info"]
        classes = [s["category_id"] for s in annotation["segments_info"]]
        if mode == "semantic":  # one segment per class
            assert sorted(classes) == sorted({s["category_id"] for s in source_infos})
        elif mode == "instance":  # stuff is gone, every thing instance is kept
            assert sorted(classes) == sorted(
                s["category_id"] for s in source_infos if categories[s["category_id"]]["isthing"]
            )
        else:
            assert len(classes) == len(source_infos)


@pytest.mark.parametrize("mode", ["panoptic", "instance", "semantic"])
def test_each_mode_from_cityscapes_reads_back_as_cityscapes(tmp_path, registry, mode):
    write_gtfine_frame(tmp_path / "cs", "val", "c", "c_000000_000001", synthetic_instance_ids())
    convert(
        tmp_path / "cs",
        tmp_path / "n",
        from_format="cityscapes",
        to_format="nucleus",
        mode=mode,
        registry=registry,
        jobs=1,
    )
    back = convert(
        tmp_path / "n",
        tmp_path / "b",
        from_format="nucleus",
        to_format="cityscapes",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0, back.errors
    assert (
        validate_dataset(tmp_path / "b" / "gtFine", "cityscapes", registry=registry, jobs=1)[1]
        == []
    )
    path = next((tmp_path / "b").rglob("*_instanceIds.png"))
    values = set(np.unique(np.asarray(Image.open(path))).tolist())
    cars = {v for v in values if v == 26 or v // 1000 == 26}
    # instance mode keeps thing crowds (a car group is a thing region); semantic merges all cars
    assert {"panoptic": {26, 26000, 26003}, "instance": {26, 26000, 26003}, "semantic": {26000}}[
        mode
    ] == cars


@pytest.mark.parametrize("mode", ["panoptic", "instance", "semantic"])
def test_each_mode_from_coco_rle_reads_back_as_coco_rle(tmp_path, registry, mode):
    convert(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "rle",
        from_format="coco-panoptic",
        to_format="coco-rle",
        registry=registry,
        jobs=1,
    )
    convert(
        tmp_path / "rle" / "instances.json",
        tmp_path / "n",
        from_format="coco-rle",
        to_format="nucleus",
        mode=mode,
        registry=registry,
        jobs=1,
    )
    back = convert(
        tmp_path / "n",
        tmp_path / "b",
        from_format="nucleus",
        to_format="coco-rle",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0, back.errors
    annotations = json.loads((tmp_path / "b" / "instances.json").read_text())["annotations"]
    per_image: dict = {}
    for a in annotations:
        per_image.setdefault(a["image_id"], []).append(a["category_id"])
    for classes in per_image.values():
        if mode == "semantic":
            assert len(classes) == len(set(classes))
    assert len(annotations) == {"panoptic": 50, "instance": 43, "semantic": len(annotations)}[mode]


@pytest.mark.parametrize(
    ("policy", "code", "converted"), [("error", 3, 1), ("semantic", 0, 2), ("skip", 0, 1)]
)
def test_a_300_instance_image_under_each_overflow_policy(
    tmp_path, no_third_party, policy, code, converted
):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("small"), grid_spec("crowded", 300)]
    )
    out = tmp_path / "out"
    result = run_cli("coco-to-nucleus", str(json_path), str(out), "--on-overflow", policy, "--json")
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["converted"] == converted
    references = [line["reference_id"] for line in read_jsonl(out / "annotations.jsonl")]
    if policy == "error":
        (error,) = read_jsonl(out / "segconvert-errors.jsonl")
        assert error["item"] == "crowded" and error["rule"] == "too-many-segments"
        assert "300 segments" in error["message"]
        assert references == ["small"]
    elif policy == "semantic":
        (note,) = read_jsonl(out / "segconvert-notes.jsonl")
        assert note["item"] == "crowded" and note["rule"] == "overflow-semantic"
        crowded = read_jsonl(out / "annotations.jsonl")[1]
        assert [s["label"] for s in crowded["annotations"]] == ["person"]
    else:
        (note,) = read_jsonl(out / "segconvert-notes.jsonl")
        assert (note["item"], note["rule"]) == ("crowded", "overflow-skipped")
        assert summary["skipped"] == 1 and references == ["small"]
        assert not (out / "masks" / "crowded.png").exists()


def write_label_map(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(document))
    return path


def test_label_map_renames_merges_and_drops(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    mapping = write_label_map(
        tmp_path, {"rename": {"person": "pedestrian"}, "merge": {"car": "person"}, "drop": ["sky"]}
    )
    convert(
        json_path,
        tmp_path / "n",
        from_format="coco-panoptic",
        to_format="nucleus",
        label_map=mapping,
        registry=registry,
        jobs=1,
    )
    taxonomy = json.loads((tmp_path / "n" / "taxonomy.json").read_text())
    assert [c["name"] for c in taxonomy["categories"]] == ["pedestrian"]
    (line,) = read_jsonl(tmp_path / "n" / "annotations.jsonl")
    labels = [(s["label"], s.get("metadata", {}).get("category_id")) for s in line["annotations"]]
    assert labels == [
        ("void", None),
        ("pedestrian", 1),
        ("pedestrian", 1),
        ("pedestrian", 1),
        ("pedestrian", 1),
    ]
    mask = np.asarray(Image.open(tmp_path / "n" / "masks" / "a.png"))
    ids = paint_ids(default_spec("a"))
    assert np.array_equal(mask == 0, np.isin(ids, [0, 5000000]))  # the sky was dropped to void
    back = convert(
        tmp_path / "n",
        tmp_path / "c",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ({"merge": {"car": "bus"}}, "'bus', which is not a category"),
        ({"rename": {"lorry": "truck"}}, "no category named 'lorry'"),
        ({"drop": ["sky"], "merge": {"car": "sky"}}, "itself dropped"),
        ({"rename": {"car": "person"}}, "used twice"),
        ({"remap": {}}, "not a valid label map"),
    ],
)
def test_a_bad_label_map_fails_before_any_work(tmp_path, registry, document, text):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    with pytest.raises(UsageError, match=text):
        convert(
            json_path,
            tmp_path / "n",
            from_format="coco-panoptic",
            to_format="nucleus",
            label_map=write_label_map(tmp_path, document),
            registry=registry,
            jobs=1,
        )
    assert not (tmp_path / "n").exists()


def test_a_bad_label_map_is_exit_two_on_the_cli(tmp_path, no_third_party):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    mapping = write_label_map(tmp_path, {"merge": {"car": "bus"}})
    result = run_cli(
        "coco-to-nucleus", str(json_path), str(tmp_path / "n"), "--label-map", str(mapping)
    )
    assert result.returncode == 2 and "bus" in result.stderr and "Traceback" not in result.stderr


def test_void_label_is_configurable_and_written_to_the_taxonomy(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    line, _ = to_nucleus(json_path, tmp_path / "n", registry, void_label="unlabelled")
    assert line["annotations"][0]["label"] == "unlabelled"
    assert json.loads((tmp_path / "n" / "taxonomy.json").read_text())["void_label"] == "unlabelled"
    back = convert(
        tmp_path / "n",
        tmp_path / "c",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    ((_, annotation, ids),) = read_panoptic(tmp_path / "c" / "panoptic.json").values()
    assert back.exit_code == 0 and (ids == 0).sum() == (paint_ids(default_spec("a")) == 0).sum()


@pytest.mark.skipif(not MMSEG_GTFINE.is_dir(), reason="../shared/realdata absent")
def test_real_cityscapes_frame_in_semantic_mode_has_one_segment_per_class(tmp_path, registry):
    line, _ = to_nucleus_from(MMSEG_GTFINE, tmp_path / "n", registry)
    labels = [s["label"] for s in line["annotations"]]
    assert len(labels) == len(set(labels)) and labels.count("person") == 1


def to_nucleus_from(source, out, registry):
    convert(
        source,
        out,
        from_format="cityscapes",
        to_format="nucleus",
        mode="semantic",
        registry=registry,
        jobs=1,
    )
    (line,) = read_jsonl(out / "annotations.jsonl")
    return line, None
