"""coco-rle importer and exporter: RLE/polygon masks, overlap rules, real COCO, LVIS, SA-1B."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    COCOAPI_RESULTS,
    DATUMARO_COCO,
    DATUMARO_SA1B,
    FASTER_COCO_EVAL,
    LVIS,
    PANOPTICAPI,
    REALDATA,
    decode_any,
    read_jsonl,
    read_panoptic,
    run_cli,
)
from PIL import Image
from pycocotools import mask as mask_utils

from segconvert import Registry, convert, validate_dataset

needs_realdata = pytest.mark.skipif(
    not (REALDATA / "cocoapi").is_dir(), reason="../shared/realdata absent"
)


def run(source: Path, out: Path, registry: Registry, source_format: str, target: str, **options):
    report = convert(
        source,
        out,
        from_format=source_format,
        to_format=target,
        options=options,
        registry=registry,
        jobs=1,
    )
    return report


def nucleus_masks(out: Path) -> dict[str, tuple[np.ndarray, list[dict]]]:
    return {
        line["reference_id"]: (
            np.asarray(Image.open(out / "masks" / f"{line['reference_id']}.png")),
            line["annotations"],
        )
        for line in read_jsonl(out / "annotations.jsonl")
    }


def test_panoptic_to_rle_gives_exactly_the_png_masks_and_the_panopticapi_pairs(tmp_path, registry):
    report = run(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "rle",
        registry,
        "coco-panoptic",
        "coco-rle",
    )
    assert report.exit_code == 0, report.errors
    ours = json.loads((tmp_path / "rle" / "instances.json").read_text())
    panoptic = read_panoptic(PANOPTICAPI / "panoptic_examples.json")
    images = {i["id"]: i for i in ours["images"]}
    decoded = []
    segments = [
        (stem, info)
        for stem, (_, annotation, _) in panoptic.items()
        for info in annotation["segments_info"]
    ]
    for annotation, (stem, info) in zip(ours["annotations"], segments, strict=True):
        image = images[annotation["image_id"]]
        assert Path(image["file_name"]).stem == stem
        mask = decode_any(annotation["segmentation"], image["height"], image["width"])
        assert np.array_equal(mask, panoptic[stem][2] == info["id"])
        assert isinstance(annotation["segmentation"]["counts"], str)
        decoded.append((mask, annotation["category_id"], annotation["iscrowd"]))
    assert len(decoded) == 50
    ids = [a["id"] for a in ours["annotations"]]
    assert len(set(ids)) == 50  # panoptic ids repeat across images; annotation ids may not
    reference_file = (
        REALDATA / "panopticapi" / "sample_data" / "panoptic_coco_detection_format.json"
    )
    if reference_file.is_file():
        reference = json.loads(reference_file.read_text())
        sizes = {i["id"]: (i["height"], i["width"]) for i in reference["images"]}
        for (mask, category, crowd), theirs in zip(decoded, reference["annotations"], strict=True):
            assert np.array_equal(
                mask, decode_any(theirs["segmentation"], *sizes[theirs["image_id"]])
            )
            assert (category, crowd) == (theirs["category_id"], theirs["iscrowd"])


def covering(annotations: list[dict], height: int, width: int) -> np.ndarray:
    return np.stack([decode_any(a["segmentation"], height, width) for a in annotations])


@pytest.mark.slow
@needs_realdata
@pytest.mark.parametrize("rule", ["smaller-on-top", "later-on-top", "score"])
def test_overlapping_results_flatten_by_rule_and_report_occlusion(tmp_path, registry, rule):
    out = tmp_path / "nucleus"
    report = run(
        COCOAPI_RESULTS,
        out,
        registry,
        "coco-rle",
        "nucleus",
        overlap=rule,
        categories=str(FASTER_COCO_EVAL),
    )
    assert report.exit_code == 0, report.errors[:3]
    results = json.loads(COCOAPI_RESULTS.read_text())
    by_image = defaultdict(list)
    for annotation in results:
        by_image[annotation["image_id"]].append(annotation)
    gt = json.loads(FASTER_COCO_EVAL.read_text())
    names = {i["id"]: Path(i["file_name"]).stem for i in gt["images"]}
    masks = nucleus_masks(out)
    notes = {
        n["item"]: n for n in read_jsonl(out / "segconvert-notes.jsonl") if n["rule"] == "occluded"
    }
    occluded_images = 0
    for image_id, image_annotations in by_image.items():
        mask, segments = masks[names[image_id]]
        height, width = mask.shape
        cover = covering(image_annotations, height, width)
        instance_of = {
            s["index"]: k
            for k, s in enumerate(s for s in segments if not s.get("metadata", {}).get("void"))
        }
        void = [s["index"] for s in segments if s.get("metadata", {}).get("void")]
        covered = cover.any(axis=0)
        if void:
            assert np.array_equal(mask == void[0], ~covered)
        assert covered.sum() == (~np.isin(mask, void)).sum()
        areas = cover.sum(axis=(1, 2))
        for index, k in instance_of.items():
            pixels = mask == index
            assert cover[k][pixels].all(), "a pixel went to an instance that did not cover it"
            if not pixels.any():
                continue
            others = cover[:, pixels]  # instances x pixels
            if rule == "smaller-on-top":
                smaller = (areas[:, None] < areas[k]) & others
                assert not smaller.any()
            elif rule == "score":
                scores = np.array([a["score"] for a in image_annotations])
                assert not ((scores[:, None] > scores[k]) & others).any()
            else:
                assert not others[k + 1 :].any()
        occluded = int(areas.sum() - covered.sum())
        if occluded:
            occluded_images += 1
            assert notes[names[image_id]]["occluded_pixels"] == occluded
        else:
            assert names[image_id] not in notes
    assert occluded_images == 72


@needs_realdata
def test_overlap_error_rule_fails_exactly_the_overlapping_images(tmp_path, registry):
    report = run(
        COCOAPI_RESULTS,
        tmp_path / "o",
        registry,
        "coco-rle",
        "nucleus",
        overlap="error",
        categories=str(FASTER_COCO_EVAL),
    )
    assert report.failed == 72 and report.converted == 28 and report.exit_code == 3
    assert {e["rule"] for e in report.errors} == {"overlap"}


@pytest.mark.slow
@needs_realdata
def test_real_coco_survives_nucleus_round_trip_whole_overlaps_and_crowds_included(
    tmp_path, registry
):
    run(FASTER_COCO_EVAL, tmp_path / "n", registry, "coco-rle", "nucleus")
    report = run(tmp_path / "n", tmp_path / "back", registry, "nucleus", "coco-rle")
    assert report.exit_code == 0, report.errors[:3]
    source = json.loads(FASTER_COCO_EVAL.read_text())
    back = json.loads((tmp_path / "back" / "instances.json").read_text())
    assert back["categories"] == source["categories"]
    sizes = {i["id"]: (i["height"], i["width"]) for i in source["images"]}
    returned = {a["id"]: a for a in back["annotations"]}
    assert sorted(returned) == sorted(a["id"] for a in source["annotations"])
    by_image = defaultdict(list)
    for annotation in source["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    overlapped = 0
    for image_id, image_annotations in by_image.items():
        cover = covering(image_annotations, *sizes[image_id])
        count = cover.sum(axis=0)
        for k, annotation in enumerate(image_annotations):
            result = returned[annotation["id"]]
            assert np.array_equal(decode_any(result["segmentation"], *sizes[image_id]), cover[k])
            for key in ("iscrowd", "category_id", "area", "bbox", "image_id"):
                assert result[key] == annotation[key]
            overlapped += bool((count[cover[k]] > 1).any())
    assert overlapped >= 100  # these instances were cut by the single index mask


@pytest.mark.slow
@needs_realdata
def test_lvis_converts_with_its_categories_and_empty_images(tmp_path, registry):
    report = run(LVIS, tmp_path / "n", registry, "coco-rle", "nucleus")
    assert report.converted == 100 and report.exit_code == 0, report.errors[:3]
    lines = read_jsonl(tmp_path / "n" / "annotations.jsonl")
    empty = [line for line in lines if [s["label"] for s in line["annotations"]] == ["void"]]
    assert len(empty) == 7
    back = run(tmp_path / "n", tmp_path / "back", registry, "nucleus", "coco-rle")
    assert back.exit_code == 0
    source = json.loads(LVIS.read_text())
    result = json.loads((tmp_path / "back" / "instances.json").read_text())
    assert result["categories"] == source["categories"]  # synset, frequency, ... kept
    assert result["images"] == source["images"]
    assert all(a["iscrowd"] == 0 for a in result["annotations"])


@needs_realdata
def test_datumaro_instances_assets_convert_with_empty_segmentations_reported(tmp_path, registry):
    train = run(
        DATUMARO_COCO / "instances_train.json", tmp_path / "t", registry, "coco-rle", "nucleus"
    )
    assert train.exit_code == 0
    assert [n["rule"] for n in train.notes] == ["empty-instance"]
    val = run(
        DATUMARO_COCO / "instances_val.json", tmp_path / "v", registry, "coco-rle", "coco-rle"
    )
    assert val.exit_code == 0, val.errors
    result = json.loads((tmp_path / "v" / "instances.json").read_text())
    crowd = next(a for a in result["annotations"] if a["iscrowd"])
    (occluded,) = [n for n in val.notes if n["rule"] == "occluded"]  # the polygon lies on top
    assert occluded["occluded_pixels"] == 2 and occluded["kept"]
    assert crowd["bbox"] == [0.0, 0.0, 1.0, 9.0]  # the record's own (off by one), as it was
    assert crowd["area"] == 20.0
    full = decode_any(crowd["segmentation"], 10, 5)  # the pixels under the polygon came back
    assert full.sum() == 20 and full[:, :2].all()
    assert next(a for a in result["annotations"] if not a["iscrowd"])["attributes"] == {
        "x": 1,
        "y": "hello",
    }


@needs_realdata
def test_sa1b_folder_converts_and_a_transposed_rle_size_fails_alone(tmp_path, registry):
    report = run(DATUMARO_SA1B, tmp_path / "n", registry, "coco-rle", "nucleus", label="mask")
    assert report.converted == 1 and report.exit_code == 3
    assert [(e["item"], e["rule"]) for e in report.errors] == [("b", "bad-segmentation")]
    assert "size" in report.errors[0]["message"]
    (line,) = read_jsonl(tmp_path / "n" / "annotations.jsonl")
    assert {s["label"] for s in line["annotations"]} == {"void", "mask"}
    assert line["annotations"][1]["metadata"]["predicted_iou"] == pytest.approx(0.2633798018925796)


def write_instances(path: Path, annotations: list[dict], size=(6, 8)) -> Path:
    document = {
        "images": [{"id": 1, "file_name": "img.jpg", "height": size[0], "width": size[1]}],
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "thing", "supercategory": "x"},
            {"id": 2, "name": "stuff", "supercategory": "x", "isthing": 0, "color": [1, 2, 3]},
        ],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("segmentation", "category", "rule", "text"),
    [
        ({"counts": [10, 5, 30], "size": [6, 8]}, 1, "bad-segmentation", "sum to 45"),
        ({"counts": [48], "size": [8, 6]}, 1, "bad-segmentation", "size"),
        ({"counts": "9", "size": [6, 8]}, 1, "bad-segmentation", "sum to 9"),
        ({"counts": "0o0o0o", "size": [6, 8]}, 1, "bad-segmentation", "ends inside"),
        ({"counts": "\u00ff", "size": [6, 8]}, 1, "bad-segmentation", "not valid"),
        ([[0, 0, 4, 0, 4, 4]], 9, "unknown-category", "category_id 9"),
        ("nonsense", 1, "bad-segmentation", "segmentation must be"),
    ],
)
def test_bad_rle_is_a_clear_item_error(tmp_path, registry, segmentation, category, rule, text):
    source = write_instances(
        tmp_path / "in.json",
        [{"id": 1, "image_id": 1, "category_id": category, "segmentation": segmentation}],
    )
    report = run(source, tmp_path / "o", registry, "coco-rle", "nucleus")
    assert report.exit_code == 1
    (error,) = report.errors
    assert error["rule"] == rule and text in error["message"] and error["item"] == "img"


def test_things_only_leaves_stuff_out_and_per_image_writes_sa1b_files(tmp_path, registry):
    source = write_instances(
        tmp_path / "in.json",
        [
            {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
            {
                "id": 8,
                "image_id": 1,
                "category_id": 2,
                "segmentation": {"counts": [24, 24], "size": [6, 8]},
            },
        ],
    )
    run(source, tmp_path / "things", registry, "coco-rle", "coco-rle", things_only=True)
    things = json.loads((tmp_path / "things" / "instances.json").read_text())
    assert [a["id"] for a in things["annotations"]] == [7]
    assert [c["name"] for c in things["categories"]] == ["thing"]
    run(source, tmp_path / "sa1b", registry, "coco-rle", "coco-rle", per_image=True)
    document = json.loads((tmp_path / "sa1b" / "img.json").read_text())
    assert [a["id"] for a in document["annotations"]] == [7, 8]
    assert document["image"]["image_id"] == 1
    again = run(tmp_path / "sa1b", tmp_path / "again", registry, "coco-rle", "nucleus")
    assert again.exit_code == 0


def test_score_rule_needs_scores(tmp_path, registry):
    source = write_instances(
        tmp_path / "in.json",
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}],
    )
    report = run(source, tmp_path / "o", registry, "coco-rle", "nucleus", overlap="score")
    assert [e["rule"] for e in report.errors] == ["overlap"]


def test_a_fully_hidden_instance_is_reported_by_id_and_kept(tmp_path, registry):
    source = write_instances(
        tmp_path / "in.json",
        [
            {"id": 11, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]},
            {"id": 12, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
        ],
    )
    report = run(source, tmp_path / "o", registry, "coco-rle", "nucleus", overlap="later-on-top")
    assert report.exit_code == 0
    hidden = [n for n in report.notes if n["rule"] == "hidden-instance"]
    assert hidden == [
        {"item": "img", "rule": "hidden-instance", "ids": [11], "message": hidden[0]["message"]}
    ]
    (line,) = read_jsonl(tmp_path / "o" / "annotations.jsonl")
    assert sorted(
        s["metadata"]["source_id"]
        for s in line["annotations"]
        if "source_id" in s.get("metadata", {})
    ) == [11, 12]


def test_exported_instances_validate_and_ids_are_unique(tmp_path, registry):
    run(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "rle",
        registry,
        "coco-panoptic",
        "coco-rle",
    )
    document = json.loads((tmp_path / "rle" / "instances.json").read_text())
    ids = [a["id"] for a in document["annotations"]]
    assert len(ids) == len(set(ids))
    from segconvert import schemas

    assert schemas.problems("coco-instances", document) == []


@pytest.mark.slow
@needs_realdata
def test_cli_converts_results_with_an_overlap_rule(tmp_path, no_third_party):
    result = run_cli(
        "convert",
        str(COCOAPI_RESULTS),
        str(tmp_path / "o"),
        "--from",
        "coco-rle",
        "--to",
        "nucleus",
        "--overlap",
        "score",
        "--categories",
        str(FASTER_COCO_EVAL),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["converted"] == 100
    notes = read_jsonl(tmp_path / "o" / "segconvert-notes.jsonl")
    assert len(notes) == summary["notes"]
    assert sum(n["rule"] == "occluded" for n in notes) == 72
    assert validate_dataset(tmp_path / "o", "nucleus", jobs=1)[1] == []


def scan_peak_memory(path: Path, count: int, images: int = 50):
    """Write an instances JSON of ``count`` annotations; scan it; (peak bytes, dataset, refs)."""
    import tracemalloc

    from segconvert.formats.coco_rle.importer import scan

    filler = "x" * 1000  # an extra key per record: what a full load would have to hold
    annotations = [
        {
            "id": k,
            "image_id": k % images,
            "category_id": 1,
            "segmentation": {"size": [100, 100], "counts": [k % 97, 1, 10_000 - k % 97 - 1]},
            "note": filler,
        }
        for k in range(count)
    ]
    records = [
        {"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in range(images)
    ]
    path.write_text(
        json.dumps(
            {"images": records, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]}
        )
    )
    del annotations
    tracemalloc.start()
    dataset = scan(path, {})
    refs = list(dataset.items)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, dataset, refs


@pytest.mark.slow
def test_scan_holds_byte_offsets_not_annotations(tmp_path):
    """The index costs two integers per annotation (16 B), never the annotation itself.

    A ratio of peaks would sit on a knife's edge (a 500 KB floor of read buffers plus
    16 B x 9,000 gives 1.28x), so pin the cost per extra annotation and the share of
    the file: holding the annotations would cost over 1,000 B each here."""
    from segconvert.formats.coco_rle.importer import load

    small, _, _ = scan_peak_memory(tmp_path / "small.json", 3000)
    large, dataset, refs = scan_peak_memory(tmp_path / "large.json", 12000)
    per_annotation = (large - small) / (12000 - 3000)
    assert per_annotation < 40, f"{per_annotation:.0f} B per annotation"
    assert large < (tmp_path / "large.json").stat().st_size / 10
    sample = load(refs[7], dataset.context)  # each image's annotations read back from its spans
    assert [s.metadata["source_id"] for s in sample.segments if not s.is_void] == list(
        range(7, 12000, 50)
    )


def test_the_streamed_instances_json_is_byte_for_byte_a_whole_dump(tmp_path, registry):
    """The aggregate is written item by item from a spool; its bytes are json.dump's."""
    run(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "rle",
        registry,
        "coco-panoptic",
        "coco-rle",
    )
    written = (tmp_path / "rle" / "instances.json").read_text()
    document = json.loads(written)
    assert written == json.dumps(document) + "\n"
    assert [image["id"] for image in document["images"]] == [142238, 439180]
    image_ids = {image["id"] for image in document["images"]}
    assert {a["image_id"] for a in document["annotations"]} == image_ids


@needs_realdata
def test_a_streamed_results_list_is_byte_for_byte_a_whole_dump(tmp_path, registry):
    out = tmp_path / "rle"
    run(COCOAPI_RESULTS, out, registry, "coco-rle", "coco-rle", categories=FASTER_COCO_EVAL)
    written = (out / "results.json").read_text()
    detections = json.loads(written)
    assert written == json.dumps(detections) + "\n"
    assert len(detections) == len(json.loads(COCOAPI_RESULTS.read_text()))


def test_a_results_list_keeps_its_own_ids_integer_or_string_through_nucleus(tmp_path, registry):
    """A detection's id comes back as it was (a string one too, which the results schema
    allows), and one without an id gets none."""
    ground_truth = write_instances(tmp_path / "gt.json", [])
    results = []
    for row, ids in enumerate([{"id": 7}, {"id": "det-b"}, {}]):
        mask = np.zeros((6, 8), dtype=np.uint8, order="F")
        mask[2 * row : 2 * row + 2, 1:5] = 1
        rle = mask_utils.encode(mask)
        segmentation = {"size": rle["size"], "counts": rle["counts"].decode()}
        results.append(
            {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": segmentation, **ids}
        )
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    run(source, tmp_path / "nucleus", registry, "coco-rle", "nucleus", categories=ground_truth)
    run(tmp_path / "nucleus", tmp_path / "back", registry, "nucleus", "coco-rle")
    written = (tmp_path / "back" / "results.json").read_text()
    back = json.loads(written)
    assert written == json.dumps(back) + "\n"
    assert [d.get("id") for d in back] == [7, "det-b", None]
    assert [list(d)[:2] for d in back] == [["id", "image_id"]] * 2 + [["image_id", "category_id"]]
    assert [d["segmentation"] for d in back] == [d["segmentation"] for d in results]
