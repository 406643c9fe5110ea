"""nucleus importer on real Nucleus data: unlisted mask values, mask_url outside the dataset,
images.jsonl never overriding what segconvert writes, hidden pixels surviving the SDK."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segconvert import Registry, convert

nucleus = pytest.importorskip("nucleus")

SDK_MASK_NAME = "000000000285.png"


def sdk_test_mask(folder: Path) -> Path:
    """An equivalent of the Nucleus SDK's test mask ``000000000285.png`` (not shipped with the
    installed SDK): a bear (1) on grass (2), index 0 present in the mask but in no Segment,
    which the SDK accepts."""
    folder.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((64, 48), dtype=np.uint8)
    mask[10:40, 8:30] = 1
    mask[40:, :] = 2
    path = folder / SDK_MASK_NAME
    Image.fromarray(mask, mode="L").save(path)
    return path


def sdk_line(mask_url: str) -> dict:
    return {
        "type": "mask",
        "mask_url": mask_url,
        "annotations": [{"label": "bear", "index": 1}, {"label": "grass", "index": 2}],
        "annotation_id": None,
        "reference_id": "000000000285",
    }


def write_dataset(root: Path, mask_url: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "annotations.jsonl").write_text(json.dumps(sdk_line(mask_url)) + "\n")
    return root


def run(source: Path, out: Path, registry: Registry, target: str, **options):
    return convert(
        source,
        out,
        from_format="nucleus",
        to_format=target,
        options=options,
        registry=registry,
        jobs=1,
    )


def test_the_sdk_test_line_is_accepted_by_the_sdk_itself(tmp_path):
    from nucleus.annotation import SegmentationAnnotation

    line = json.dumps(sdk_line(str(tmp_path / SDK_MASK_NAME)))
    assert SegmentationAnnotation.from_json(json.loads(line)).to_json() == line


def test_sdk_test_mask_converts_to_panoptic_with_index_0_void_and_a_note(tmp_path, registry):
    root = tmp_path / "dataset"
    mask = sdk_test_mask(root / "masks")
    write_dataset(root, str(mask))
    report = run(root, tmp_path / "panoptic", registry, "coco-panoptic")
    assert report.exit_code == 0, report.errors
    (note,) = [n for n in report.notes if n["rule"] == "unlisted-index"]
    assert note["values"] == [0] and note["pixels"] == int(
        (np.asarray(Image.open(mask)) == 0).sum()
    )
    document = json.loads((tmp_path / "panoptic" / "panoptic.json").read_text())
    (annotation,) = document["annotations"]
    rgb = np.asarray(Image.open(tmp_path / "panoptic" / "panoptic" / annotation["file_name"]))
    wide = rgb.astype(np.int64)
    ids = wide[..., 0] + 256 * wide[..., 1] + 65536 * wide[..., 2]
    source = np.asarray(Image.open(mask))
    assert np.array_equal(ids == 0, source == 0)  # index 0 became void (id 0)
    names = {c["id"]: c["name"] for c in document["categories"]}
    labels = {names[s["category_id"]] for s in annotation["segments_info"]}
    assert labels == {"bear", "grass"}


def test_strict_refuses_mask_values_without_a_segment(tmp_path, registry):
    root = tmp_path / "dataset"
    write_dataset(root, str(sdk_test_mask(root / "masks")))
    report = run(root, tmp_path / "out", registry, "coco-panoptic", strict=True)
    assert [e["rule"] for e in report.errors] == ["unlisted-index"]
    assert "[0]" in report.errors[0]["message"]


def test_an_absolute_mask_url_outside_the_dataset_says_so_and_suggests_mask_dir(tmp_path, registry):
    elsewhere = sdk_test_mask(tmp_path / "elsewhere" / "pngs")
    root = write_dataset(tmp_path / "dataset", str(elsewhere))
    report = run(root, tmp_path / "out", registry, "coco-panoptic")
    (error,) = report.errors
    assert error["rule"] == "mask-url"
    assert "outside the dataset folder" in error["message"] and "--mask-dir" in error["message"]
    assert "masks/000000000285.png" not in error["message"]  # no path the input never named
    fixed = run(root, tmp_path / "out2", registry, "coco-panoptic", mask_dir=str(elsewhere.parent))
    assert fixed.exit_code == 0, fixed.errors


def test_a_remote_mask_url_without_a_local_copy_says_so(tmp_path, registry):
    root = write_dataset(tmp_path / "dataset", f"s3://bucket/masks/{SDK_MASK_NAME}")
    report = run(root, tmp_path / "out", registry, "coco-panoptic")
    (error,) = report.errors
    assert error["rule"] == "mask-url" and "remote and has no local copy" in error["message"]
    sdk_test_mask(root / "masks")  # a local copy under the dataset is found by its tail
    assert run(root, tmp_path / "out2", registry, "coco-panoptic").exit_code == 0


def test_images_jsonl_cannot_override_the_png_name_or_segments_info(tmp_path, registry):
    root = tmp_path / "dataset"
    mask = sdk_test_mask(root / "masks")
    write_dataset(root, str(mask))
    hostile = {
        "reference_id": "000000000285",
        "file_name": "000000000285.jpg",
        "width": 48,
        "height": 64,
        "metadata": {
            "annotation": {"file_name": "../../../evil.png", "segments_info": [], "extra": 1}
        },
    }
    (root / "images.jsonl").write_text(json.dumps(hostile) + "\n")
    report = run(root, tmp_path / "out", registry, "coco-panoptic")
    assert report.exit_code == 0, report.errors
    (annotation,) = json.loads((tmp_path / "out" / "panoptic.json").read_text())["annotations"]
    assert annotation["file_name"] == "000000000285.png"
    assert len(annotation["segments_info"]) == 2 and annotation["extra"] == 1
    assert not (tmp_path / "evil.png").exists()


def test_hidden_pixels_travel_in_segment_metadata_the_sdk_reserialises(tmp_path, registry):
    from nucleus.annotation import SegmentationAnnotation
    from pycocotools import mask as mask_utils

    whole = np.ones((8, 8), dtype=np.uint8, order="F")
    part = np.zeros((8, 8), dtype=np.uint8, order="F")
    part[:4] = 1
    records = [
        {
            "id": k + 1,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "segmentation": {"size": [8, 8], "counts": mask_utils.encode(m)["counts"].decode()},
        }
        for k, m in enumerate((whole, part))
    ]
    source = tmp_path / "in.json"
    source.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}],
                "annotations": records,
                "categories": [{"id": 1, "name": "x"}],
            }
        )
    )
    convert(source, tmp_path / "n", from_format="coco-rle", to_format="nucleus", jobs=1)
    (line,) = (tmp_path / "n" / "annotations.jsonl").read_text().splitlines()
    assert SegmentationAnnotation.from_json(json.loads(line)).to_json() == line
    (big,) = [s for s in json.loads(line)["annotations"] if s["metadata"]["source_id"] == 1]
    hidden = mask_utils.decode({"size": [8, 8], "counts": big["metadata"]["hidden_rle"]})
    assert np.array_equal(hidden, part)  # exactly what the smaller instance covers
