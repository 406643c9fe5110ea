"""coco-panoptic importer and exporter: lossless round trips through Nucleus, and bad input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    CATEGORIES,
    PANOPTICAPI,
    REALDATA,
    TRANSFORMERS,
    ImageSpec,
    default_spec,
    read_panoptic,
    run_cli,
    write_coco_panoptic,
)
from PIL import Image

from segconvert import Registry, convert, validate_dataset

SEGMENT_FIELDS = ("id", "category_id", "iscrowd", "area", "bbox")
CATEGORY_FIELDS = ("id", "name", "supercategory", "isthing", "color")


def round_trip(source: Path, tmp_path: Path, registry: Registry, **options: str) -> Path:
    """coco-panoptic -> nucleus -> coco-panoptic; returns the final JSON path."""
    nucleus = tmp_path / "nucleus"
    back = tmp_path / "back"
    first = convert(
        source,
        nucleus,
        from_format="coco-panoptic",
        to_format="nucleus",
        options=options,
        registry=registry,
        jobs=1,
    )
    assert first.exit_code == 0, first.errors
    second = convert(
        nucleus, back, from_format="nucleus", to_format="coco-panoptic", registry=registry, jobs=1
    )
    assert second.exit_code == 0, second.errors
    return back / "panoptic.json"


def assert_same_panoptic(original: dict, result: dict) -> None:
    assert original.keys() == result.keys()
    for reference, (_, annotation, ids) in original.items():
        _, result_annotation, result_ids = result[reference]
        assert np.array_equal(ids, result_ids), f"{reference}: segment ids differ per pixel"
        expected = [{k: s[k] for k in SEGMENT_FIELDS} for s in annotation["segments_info"]]
        got = [{k: s[k] for k in SEGMENT_FIELDS} for s in result_annotation["segments_info"]]
        assert got == expected


def test_panopticapi_sample_survives_nucleus_round_trip_exactly(tmp_path, registry):
    source = PANOPTICAPI / "panoptic_examples.json"
    result_json = round_trip(source, tmp_path, registry)
    original, result = json.loads(source.read_text()), json.loads(result_json.read_text())
    assert_same_panoptic(read_panoptic(source), read_panoptic(result_json))
    assert [{k: c[k] for k in CATEGORY_FIELDS} for c in result["categories"]] == [
        {k: c[k] for k in CATEGORY_FIELDS} for c in original["categories"]
    ]
    # Everything else comes back too: image records, info, licenses.
    assert result["images"] == original["images"]
    assert result["info"] == original["info"] and result["licenses"] == original["licenses"]
    assert result["annotations"] == original["annotations"]


def test_transformers_bare_segments_list_survives_round_trip(tmp_path, registry):
    source = TRANSFORMERS / "coco_panoptic_annotations.txt"
    categories = PANOPTICAPI / "panoptic_coco_categories.json"
    result_json = round_trip(
        source,
        tmp_path,
        registry,
        png_dir=str(TRANSFORMERS / "coco_panoptic"),
        categories=str(categories),
    )
    original_ids = np.asarray(Image.open(TRANSFORMERS / "coco_panoptic" / "000000039769.png"))
    original_ids = original_ids.astype(np.uint32) @ np.array([1, 256, 65536], dtype=np.uint32)
    result = read_panoptic(result_json)
    _, annotation, ids = result["000000039769"]
    assert np.array_equal(ids, original_ids)
    expected = json.loads(source.read_text())
    assert [{k: s[k] for k in SEGMENT_FIELDS} for s in annotation["segments_info"]] == [
        {k: s[k] for k in SEGMENT_FIELDS} for s in expected
    ]
    result_categories = json.loads(result_json.read_text())["categories"]
    assert result_categories == json.loads(categories.read_text())


@pytest.mark.skipif(not (REALDATA / "panopticapi").is_dir(), reason="../shared/realdata absent")
def test_shared_realdata_copy_matches_the_vendored_fixture():
    shared = REALDATA / "panopticapi" / "sample_data" / "panoptic_examples.json"
    assert shared.read_bytes() == (PANOPTICAPI / "panoptic_examples.json").read_bytes()


def test_round_trip_through_the_cli_gives_the_same_files(tmp_path, no_third_party):
    source = PANOPTICAPI / "panoptic_examples.json"
    first = run_cli("coco-to-nucleus", str(source), str(tmp_path / "n"), "--jobs", "2")
    assert first.returncode == 0, first.stderr
    second = run_cli("nucleus-to-coco", str(tmp_path / "n"), str(tmp_path / "c"))
    assert second.returncode == 0, second.stderr
    assert_same_panoptic(read_panoptic(source), read_panoptic(tmp_path / "c" / "panoptic.json"))


def test_source_may_be_the_folder_holding_the_json(tmp_path, registry):
    report = convert(
        PANOPTICAPI,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.converted == 2 and report.exit_code == 0


def test_png_dir_option_overrides_the_default_folder(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    moved = tmp_path / "elsewhere"
    shutil.move(str(json_path.with_suffix("")), moved)
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        options={"png_dir": str(moved)},
        registry=registry,
        jobs=1,
    )
    assert report.converted == 1


def test_deeplab2_file_without_images_or_categories_converts(tmp_path, registry):
    source = (
        REALDATA
        / "deeplab2"
        / "data"
        / "testdata"
        / "gtFine"
        / "cityscapes_panoptic_dummy_trainId.json"
    )
    if not source.is_file():
        pytest.skip("../shared/realdata absent")
    result_json = round_trip(source, tmp_path, registry)
    original = read_panoptic(source)
    result = read_panoptic(result_json)
    ((_, annotation, ids),) = original.values()
    ((_, result_annotation, result_ids),) = result.values()
    assert np.array_equal(ids, result_ids)
    assert [
        (s["id"], s["category_id"], s["iscrowd"], s["area"]) for s in annotation["segments_info"]
    ] == [
        (s["id"], s["category_id"], s["iscrowd"], s["area"])
        for s in result_annotation["segments_info"]
    ]
    # The string image id and category id 0 (road, a trainId) survive.
    assert result_annotation["image_id"] == "dummy_000000_000000"
    assert 0 in {s["category_id"] for s in result_annotation["segments_info"]}


def test_exporter_assigns_unique_nonzero_ids_deterministically_when_none_came_through(
    tmp_path, registry
):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    convert(
        json_path,
        tmp_path / "n",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    # Strip the source ids, as a foreign Nucleus dataset would lack them.
    lines = (tmp_path / "n" / "annotations.jsonl").read_text().splitlines()
    stripped = []
    for line in lines:
        record = json.loads(line)
        for segment in record["annotations"]:
            segment.get("metadata", {}).pop("source_id", None)
        stripped.append(json.dumps(record))
    (tmp_path / "n" / "annotations.jsonl").write_text("\n".join(stripped) + "\n")
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"c{attempt}"
        convert(
            tmp_path / "n",
            out,
            from_format="nucleus",
            to_format="coco-panoptic",
            registry=registry,
            jobs=1,
        )
        outputs.append(
            ((out / "panoptic.json").read_bytes(), (out / "panoptic" / "a.png").read_bytes())
        )
    assert outputs[0] == outputs[1]
    ((_, annotation, ids),) = read_panoptic(tmp_path / "c0" / "panoptic.json").values()
    segment_ids = [s["id"] for s in annotation["segments_info"]]
    assert 0 not in segment_ids and len(set(segment_ids)) == len(segment_ids)
    assert set(np.unique(ids)) == {0, *segment_ids}


@pytest.mark.parametrize(
    ("break_it", "rule"),
    [
        ("unlisted", "unlisted-id"),
        ("missing", "missing-id"),
        ("duplicate", "duplicate-id"),
        ("category", "unknown-category"),
        ("size", "mask-size"),
        ("mode", "png-mode"),
        ("truncated", "png-unreadable"),
        ("escape", "unsafe-path"),
    ],
)
def test_a_broken_item_is_reported_by_rule_and_the_rest_converted(
    tmp_path, registry, break_it, rule
):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("good"), default_spec("bad", 1)]
    )
    document = json.loads(json_path.read_text())
    bad_annotation = document["annotations"][1]
    png = json_path.with_suffix("") / "bad.png"
    if break_it == "unlisted":
        bad_annotation["segments_info"].pop()
    elif break_it == "missing":
        bad_annotation["segments_info"].append(dict(bad_annotation["segments_info"][0], id=424242))
    elif break_it == "duplicate":
        bad_annotation["segments_info"].append(dict(bad_annotation["segments_info"][0]))
    elif break_it == "category":
        bad_annotation["segments_info"][0]["category_id"] = 999
    elif break_it == "size":
        document["images"][1]["width"] = 41
    elif break_it == "mode":
        Image.open(png).convert("L").save(png)
    elif break_it == "truncated":
        png.write_bytes(png.read_bytes()[:60])
    elif break_it == "escape":
        bad_annotation["file_name"] = "../../outside.png"
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 3
    assert report.converted == 1
    assert [(e["item"], e["rule"]) for e in report.errors] == [("bad", rule)]
    assert (tmp_path / "out" / "masks" / "good.png").is_file()
    assert not (tmp_path / "out" / "masks" / "bad.png").exists()


def test_image_without_annotation_is_reported_not_dropped(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    document = json.loads(json_path.read_text())
    document["images"].append({"id": 99, "file_name": "lonely.jpg", "width": 4, "height": 4})
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert [(e["item"], e["rule"]) for e in report.errors] == [("lonely", "missing-annotation")]


def test_validate_flags_stored_area_and_bbox_that_disagree_with_pixels(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    document = json.loads(json_path.read_text())
    document["annotations"][0]["segments_info"][1]["bbox"][2] += 1
    json_path.write_text(json.dumps(document))
    checked, problems = validate_dataset(json_path, "coco-panoptic", registry=registry, jobs=1)
    assert checked == 1
    assert [(p["item"], p["rule"]) for p in problems] == [("a", "bbox-mismatch")]


def test_validate_accepts_what_the_exporter_writes(tmp_path, registry):
    result_json = round_trip(PANOPTICAPI / "panoptic_examples.json", tmp_path, registry)
    assert validate_dataset(result_json, "coco-panoptic", registry=registry, jobs=1) == (2, [])


def test_image_ids_may_be_strings(tmp_path, registry):
    spec = default_spec("frame")
    spec.image_id = "city_000000_000019"
    json_path = write_coco_panoptic(tmp_path / "src", [spec])
    result_json = round_trip(json_path, tmp_path, registry)
    document = json.loads(result_json.read_text())
    assert document["images"][0]["id"] == "city_000000_000019"
    assert document["annotations"][0]["image_id"] == "city_000000_000019"


def test_hub_sample_has_void_at_index_zero_then_segments_in_json_order(tmp_path, registry):
    json_path = write_coco_panoptic(
        tmp_path / "src",
        [ImageSpec("a", segments=[(7, 1, 0, (0, 5, 0, 5)), (3, 3, 0, (5, 10, 0, 5))])],
    )
    dataset = registry.importer("coco-panoptic").open(json_path, {})
    sample = next(iter(dataset))
    assert [(s.index, s.label, s.is_void) for s in sample.segments] == [
        (0, "void", True),
        (1, "person", False),
        (2, "car", False),
    ]
    assert sample.mask.dtype == np.uint8
    assert sample.mask[0, 0] == 1 and sample.mask[7, 0] == 2 and sample.mask[20, 20] == 0


@pytest.mark.slow
def test_the_panoptic_json_is_streamed_not_loaded_whole(tmp_path, registry):
    import tracemalloc

    specs = [default_spec(f"i{k:04d}", k) for k in range(1500)]
    json_path = write_coco_panoptic(tmp_path / "src", specs, skip_png={s.name for s in specs})
    tracemalloc.start()
    json.loads(json_path.read_text())
    whole = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    dataset = registry.importer("coco-panoptic").open(json_path, {})
    count = sum(1 for _ in dataset.items)
    streamed = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 1500 and dataset.size == 1500
    assert streamed < whole / 2, (streamed, whole)


def many_images(root: Path, count: int, segments_each: int = 5) -> Path:
    """A panoptic JSON of ``count`` images of ``segments_each`` segments (and no PNG)."""
    segments = [
        {"id": 10 + k, "category_id": 1, "iscrowd": 0, "area": 4, "bbox": [0, 0, 2, 2]}
        for k in range(segments_each)
    ]
    document = {
        "images": [
            {"id": k, "file_name": f"i{k:06d}.jpg", "width": 40, "height": 30} for k in range(count)
        ],
        "annotations": [
            {"image_id": k, "file_name": f"i{k:06d}.png", "segments_info": segments}
            for k in range(count)
        ],
        "categories": CATEGORIES,
    }
    (root / "panoptic").mkdir(parents=True)
    path = root / "panoptic.json"
    path.write_text(json.dumps(document))
    return path


def traced_bytes() -> int:
    """What tracemalloc traces now, less pathlib's interning of names (which now and then
    regrows the interpreter's table of interned strings: no part of the importer)."""
    import pathlib
    import tracemalloc

    ignore = tracemalloc.Filter(False, pathlib.__file__)
    snapshot = tracemalloc.take_snapshot().filter_traces([ignore])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def listing_memory(root: Path, registry: Registry, count: int) -> tuple[int, int]:
    """Bytes the importer holds after scanning ``count`` images, and the most it holds while
    listing their references (sampled between references, each dropped as it comes, as the
    pipeline does)."""
    import gc
    import tracemalloc

    json_path = many_images(root, count)
    gc.collect()
    tracemalloc.start()
    try:
        before = traced_bytes()
        dataset = registry.importer("coco-panoptic").open(json_path, {})
        held = most = traced_bytes() - before
        listed = 0
        for _ in dataset.items:
            listed += 1
            if listed in (count // 2, count):
                most = max(most, traced_bytes() - before)
    finally:
        tracemalloc.stop()
    assert listed == count and dataset.size == count
    return held, most


@pytest.mark.slow
def test_the_importer_holds_a_few_bytes_per_image_not_the_images_table(tmp_path, registry):
    # An image record held as a dict costs ~400 bytes; the index costs ~30 (hash and span).
    # (Both files are larger than the block of image records the listing reads at a time.)
    small_held, small_most = listing_memory(tmp_path / "small", registry, 2000)
    large_held, large_most = listing_memory(tmp_path / "large", registry, 8000)
    assert (large_held - small_held) / 6000 < 100, (small_held, large_held)
    assert (large_most - small_most) / 6000 < 100, (small_most, large_most)


def test_a_reference_says_where_its_annotation_is_and_the_item_reads_it(tmp_path, registry):
    cells = [
        (100 + k, 1, 0, (k // 8 * 3, k // 8 * 3 + 3, k % 8 * 5, k % 8 * 5 + 5)) for k in range(64)
    ]
    json_path = write_coco_panoptic(tmp_path / "src", [ImageSpec("many", segments=cells)])
    annotation = json.loads(json_path.read_text())["annotations"][0]
    assert len(json.dumps(annotation)) > 4000
    dataset = registry.importer("coco-panoptic").open(json_path, {})
    (ref,) = list(dataset.items)
    assert len(pickle.dumps(ref)) < 600  # the annotation stays in the file until loaded
    assert dataset.loader is not None
    sample = dataset.loader(ref, dataset.context)
    assert [s.metadata["source_id"] for s in sample.segments if not s.is_void] == [
        info["id"] for info in annotation["segments_info"]
    ]


def test_images_are_found_by_id_whatever_the_order_and_a_repeated_id_counts_once(
    tmp_path, registry
):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec(n, k) for k, n in enumerate("abc")]
    )
    document = json.loads(json_path.read_text())
    document["images"].reverse()
    document["images"].append(dict(document["images"][0], file_name="shadow.jpg"))
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 0, report.errors
    lines = (tmp_path / "out" / "annotations.jsonl").read_text().splitlines()
    assert [json.loads(line)["reference_id"] for line in lines] == ["a", "b", "c"]


@pytest.mark.slow
def test_validate_streams_the_panoptic_json(tmp_path, registry):
    import tracemalloc

    json_path = many_images(tmp_path, 1000, segments_each=30)
    tracemalloc.start()
    try:
        json.loads(json_path.read_text())
        whole = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        checked, problems = validate_dataset(json_path, "coco-panoptic", registry=registry, jobs=1)
        streamed = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert checked == 1000
    assert {p["rule"] for p in problems} == {"png-missing"}  # the JSON itself is valid
    assert streamed < whole / 2, (streamed, whole)
