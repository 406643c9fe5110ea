"""The schemas themselves: valid 2020-12, shipped, and agreeing with the reference examples."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from segconvert import ValidationError, schemas

SDK_EXAMPLE = {
    "type": "mask",
    "mask_url": "s3://bucket/masks/img_1.png",
    "annotations": [
        {"label": "road", "index": 1},
        {"label": "car", "index": 2, "metadata": {"iscrowd": 0, "area": 123.5}},
        {"label": "background", "index": 0},
    ],
    "annotation_id": "img_1_mask",
    "reference_id": "img_1",
}


@pytest.mark.parametrize("name", schemas.schema_names())
def test_every_schema_is_valid_draft_2020_12(name):
    schema = schemas.load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_document_type_written_has_a_schema():
    assert {
        "nucleus-annotation",
        "nucleus-item",
        "segconvert-taxonomy",
        "segconvert-image",
        "coco-panoptic",
        "segconvert-error",
    } <= set(schemas.schema_names())


def test_the_sdk_documented_example_is_valid():
    schemas.validate(schemas.NUCLEUS_ANNOTATION, SDK_EXAMPLE)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "segmentation"},
        {"mask_url": "m.PNG"},
        {"reference_id": ""},
        {"annotations": [{"label": "a", "index": 256}]},
        {"extra": 1},
    ],
)
def test_the_emit_profile_refuses_what_nucleus_would_not_take(change):
    with pytest.raises(ValidationError) as caught:
        schemas.validate(schemas.NUCLEUS_ANNOTATION, {**SDK_EXAMPLE, **change}, item="img_1")
    assert caught.value.rule == "schema" and caught.value.item == "img_1"


def test_the_read_profile_accepts_export_rows():
    row = {**SDK_EXAMPLE, "type": "segmentation", "dataset_item_id": "di_1"}
    del row["annotation_id"]
    assert schemas.problems(schemas.NUCLEUS_ANNOTATION_INPUT, row) == []


def test_an_installed_package_reads_its_own_schemas():
    from pathlib import Path

    import segconvert

    package = Path(segconvert.__file__).parent
    if (package.parent / "schemas").is_dir() and not (package / "schemas").is_dir():
        pytest.skip("running from a source checkout (editable install)")
    assert schemas.schema_dir() == package / "schemas"
