"""nucleus exporter and importer: SDK-exact lines, masks, URL prefixes, the other input shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import PANOPTICAPI, default_spec, grid_spec, read_jsonl, run_cli, write_coco_panoptic
from PIL import Image

from segconvert import Registry, convert, validate_dataset

nucleus = pytest.importorskip("nucleus")


def to_nucleus(source: Path, out: Path, registry: Registry, **options: object) -> None:
    report = convert(
        source,
        out,
        from_format="coco-panoptic",
        to_format="nucleus",
        options=options,
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 0, report.errors


@pytest.fixture
def sample_out(tmp_path: Path, registry: Registry) -> Path:
    out = tmp_path / "nucleus"
    to_nucleus(PANOPTICAPI / "panoptic_examples.json", out, registry)
    return out


def test_every_line_reserialises_byte_identically_through_scale_nucleus(sample_out):
    from nucleus.annotation import SegmentationAnnotation

    lines = (sample_out / "annotations.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert SegmentationAnnotation.from_json(json.loads(line)).to_json() == line


def test_lines_have_the_sdk_key_order_and_segment_shape(sample_out):
    for record in read_jsonl(sample_out / "annotations.jsonl"):
        assert list(record) == ["type", "mask_url", "annotations", "annotation_id", "reference_id"]
        assert record["type"] == "mask"
        for segment in record["annotations"]:
            assert list(segment)[:2] == ["label", "index"]


def test_masks_are_mode_l_image_sized_and_every_value_has_one_segment(sample_out):
    images = {
        i["file_name"].removesuffix(".jpg"): i
        for i in json.loads((PANOPTICAPI / "panoptic_examples.json").read_text())["images"]
    }
    for record in read_jsonl(sample_out / "annotations.jsonl"):
        image = Image.open(record["mask_url"])
        assert image.mode == "L" and image.format == "PNG"
        info = images[record["reference_id"]]
        assert image.size == (info["width"], info["height"])
        indices = [s["index"] for s in record["annotations"]]
        assert len(indices) == len(set(indices))
        assert set(np.unique(np.asarray(image)).tolist()) == set(indices)


def test_void_pixels_get_a_segment_marked_void(sample_out):
    record = read_jsonl(sample_out / "annotations.jsonl")[0]
    void = [s for s in record["annotations"] if s.get("metadata", {}).get("void")]
    assert void == [{"label": "void", "index": 0, "metadata": {"void": True}}]
    mask = np.asarray(Image.open(record["mask_url"]))
    assert (mask == 0).sum() == 2712  # the sample's void pixel count


def test_local_mask_urls_are_paths_the_sdk_upload_can_open(sample_out):
    from nucleus.annotation import SegmentationAnnotation

    for line in (sample_out / "annotations.jsonl").read_text().splitlines():
        annotation = SegmentationAnnotation.from_json(json.loads(line))
        assert annotation.has_local_files_to_upload()  # raises if the file is missing
        assert annotation.mask_url.endswith(".png")


@pytest.mark.parametrize(
    "prefix", ["s3://bucket/data", "gs://bucket/data/", "https://cdn.example/x"]
)
def test_mask_url_prefix_makes_urls_remote_while_files_stay_local(tmp_path, registry, prefix):
    from nucleus.annotation import SegmentationAnnotation

    out = tmp_path / "out"
    to_nucleus(PANOPTICAPI / "panoptic_examples.json", out, registry, mask_url_prefix=prefix)
    for record in read_jsonl(out / "annotations.jsonl"):
        assert record["mask_url"] == f"{prefix.rstrip('/')}/masks/{record['reference_id']}.png"
        assert not SegmentationAnnotation.from_json(record).has_local_files_to_upload()
        assert (out / "masks" / f"{record['reference_id']}.png").is_file()
    # ... and the way back still finds the local files.
    back = convert(
        out,
        tmp_path / "back",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert back.converted == 2 and back.exit_code == 0


def test_a_local_prefix_is_a_usage_error(tmp_path, registry):
    from segconvert import UsageError

    with pytest.raises(UsageError, match="mask-url-prefix"):
        to_nucleus(
            PANOPTICAPI / "panoptic_examples.json",
            tmp_path / "o",
            registry,
            mask_url_prefix="/data/masks",
        )


def test_image_url_prefix_writes_sdk_dataset_items(tmp_path, registry):
    from nucleus import DatasetItem

    out = tmp_path / "out"
    to_nucleus(
        PANOPTICAPI / "panoptic_examples.json",
        out,
        registry,
        image_url_prefix="s3://bucket/val2017",
    )
    lines = (out / "items.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        record = json.loads(line)
        assert record["image_url"] == f"s3://bucket/val2017/{record['reference_id']}.jpg"
        item = DatasetItem(
            image_location=record["image_url"],
            reference_id=record["reference_id"],
            metadata=record["metadata"],
            width=record["width"],
            height=record["height"],
        )
        assert item.to_json() == line


def test_without_image_url_prefix_no_items_file_is_written(sample_out):
    assert not (sample_out / "items.jsonl").exists()


def test_taxonomy_keeps_categories_and_dataset_metadata(sample_out):
    taxonomy = json.loads((sample_out / "taxonomy.json").read_text())
    source = json.loads((PANOPTICAPI / "panoptic_examples.json").read_text())
    assert len(taxonomy["categories"]) == 133
    assert taxonomy["metadata"]["info"] == source["info"]
    person = taxonomy["categories"][0]
    assert person == {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "isthing": True,
        "color": [220, 20, 60],
        "metadata": {},
    }


def test_importer_reads_a_plain_json_list_of_the_same_objects(sample_out, tmp_path, registry):
    records = read_jsonl(sample_out / "annotations.jsonl")
    listing = sample_out / "annotations.json"
    listing.write_text(json.dumps(records))
    dataset = registry.importer("nucleus").open(listing, {})
    samples = list(dataset)
    assert [s.reference_id for s in samples] == [r["reference_id"] for r in records]


def test_importer_reads_nucleus_export_rows(sample_out, registry):
    records = read_jsonl(sample_out / "annotations.jsonl")
    rows = sample_out / "export.json"
    exported = []
    for record in records:
        segmentation = dict(record, type="segmentation", dataset_item_id="di_1")
        exported.append(
            segmentation
            if len(exported) == 0
            else {
                "item": {"reference_id": record["reference_id"], "image_url": "s3://x.jpg"},
                "segmentation": {k: v for k, v in segmentation.items() if k != "reference_id"},
            }
        )
    rows.write_text(json.dumps(exported))
    samples = list(registry.importer("nucleus").open(rows, {}))
    assert [s.reference_id for s in samples] == [r["reference_id"] for r in records]
    assert all(len(s.segments) > 10 for s in samples)


def test_foreign_nucleus_data_without_taxonomy_gets_categories_from_labels(tmp_path, registry):
    root = tmp_path / "foreign"
    (root / "masks").mkdir(parents=True)
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[:, 3:] = 1
    mask[0, 0] = 2
    Image.fromarray(mask).save(root / "masks" / "img.png")
    line = {
        "type": "mask",
        "mask_url": "s3://bucket/masks/img.png",
        "annotations": [
            {"label": "road", "index": 0},
            {"label": "car", "index": 1},
            {"label": "car", "index": 2},
        ],
        "annotation_id": None,
        "reference_id": "img",
    }
    (root / "annotations.jsonl").write_text(json.dumps(line) + "\n")
    report = convert(
        root,
        tmp_path / "coco",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 0, report.errors
    document = json.loads((tmp_path / "coco" / "panoptic.json").read_text())
    assert [(c["name"], c["isthing"]) for c in document["categories"]] == [("road", 0), ("car", 1)]
    assert len(document["annotations"][0]["segments_info"]) == 3


def test_a_300_segment_image_and_a_missing_png_fail_alone_through_the_cli(tmp_path, no_third_party):
    specs = [
        default_spec("good1"),
        grid_spec("crowded", 300),
        default_spec("nopng", 2),
        default_spec("good2", 3),
    ]
    json_path = write_coco_panoptic(tmp_path / "src", specs, skip_png={"nopng"})
    out = tmp_path / "out"
    result = run_cli("coco-to-nucleus", str(json_path), str(out))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    report_path = out / "segconvert-errors.jsonl"
    assert str(report_path) in result.stderr
    errors = {e["item"]: e for e in read_jsonl(report_path)}
    assert set(errors) == {"crowded", "nopng"}
    assert (
        errors["crowded"]["rule"] == "too-many-segments" and "300" in errors["crowded"]["message"]
    )
    assert errors["nopng"]["rule"] == "png-missing"
    assert [r["reference_id"] for r in read_jsonl(out / "annotations.jsonl")] == ["good1", "good2"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["good1.png", "good2.png"]
    checked = run_cli("validate", str(out), "--format", "nucleus")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 item(s) checked: valid" in checked.stdout + checked.stderr


def test_validate_names_file_item_and_rule_for_a_bad_nucleus_dataset(sample_out, registry):
    records = read_jsonl(sample_out / "annotations.jsonl")
    records[0]["annotations"] = records[0]["annotations"][:-1]  # one pixel value loses its segment
    records[1]["annotations"].append(dict(records[1]["annotations"][1]))  # duplicate index
    (sample_out / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    checked, problems = validate_dataset(sample_out, "nucleus", registry=registry, jobs=1)
    assert checked == 2
    assert sorted((p["item"], p["rule"]) for p in problems) == [
        ("000000142238", "unlisted-index"),
        ("000000439180", "duplicate-index"),
    ]


def test_mask_whose_size_differs_from_its_image_is_an_item_error(sample_out, registry):
    path = sample_out / "masks" / "000000142238.png"
    Image.fromarray(np.asarray(Image.open(path))[:-1]).save(path)
    checked, problems = validate_dataset(sample_out, "nucleus", registry=registry, jobs=1)
    assert [(p["item"], p["rule"]) for p in problems] == [("000000142238", "mask-size")]


def test_mask_url_pointing_outside_the_dataset_is_refused(sample_out, tmp_path, registry):
    records = read_jsonl(sample_out / "annotations.jsonl")
    records[0]["mask_url"] = "../../../etc/passwd.png"
    (sample_out / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    report = convert(
        sample_out,
        tmp_path / "back",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert [(e["item"], e["rule"]) for e in report.errors] == [("000000142238", "unsafe-path")]


def test_a_mask_url_is_the_resolved_path_of_the_mask_even_when_the_folder_is_swapped(
    tmp_path, registry, monkeypatch
):
    """A local mask_url is the mask's real path (the output reached through a symlink and a
    relative name); a folder replaced between two runs in one process is resolved afresh."""
    monkeypatch.chdir(tmp_path)
    for name in ("first", "second"):
        real = tmp_path / name
        real.mkdir()
        (tmp_path / "link").unlink(missing_ok=True)
        (tmp_path / "link").symlink_to(real)
        to_nucleus(PANOPTICAPI / "panoptic_examples.json", Path("link/out"), registry)
        for record in read_jsonl(real / "out" / "annotations.jsonl"):
            expected = real.resolve() / "out" / "masks" / f"{record['reference_id']}.png"
            assert record["mask_url"] == str(expected) and expected.is_file()
