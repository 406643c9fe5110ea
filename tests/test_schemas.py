"""The schemas themselves: valid 2020-12, shipped, and agreeing with the reference examples."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from segconvert import ValidationError, build_registry, schemas

BUILTINS = build_registry(load_third_party=False)  # registers the schemas the formats ship

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
    assert schemas.resolve(name).path().is_file()
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
    schemas.validate("nucleus-annotation", SDK_EXAMPLE)


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
        schemas.validate("nucleus-annotation", {**SDK_EXAMPLE, **change}, item="img_1")
    assert caught.value.rule == "schema" and caught.value.item == "img_1"


def test_the_read_profile_accepts_export_rows():
    row = {**SDK_EXAMPLE, "type": "segmentation", "dataset_item_id": "di_1"}
    del row["annotation_id"]
    assert schemas.problems("nucleus-annotation-input", row) == []


def test_every_format_ships_its_schemas_in_its_own_folder():
    from pathlib import Path

    import segconvert

    package = Path(segconvert.__file__).parent
    assert schemas.schema_dir() == package / "schemas"
    for entry in BUILTINS.entries():
        folder = Path(__import__(entry.provider.name, fromlist=["_"]).__file__).parent
        for schema in entry.descriptor.schemas:
            assert schema.path() == folder / "schemas" / f"{schema.name}.schema.json"
            assert schema.path().is_file(), schema
    host = {p.name for p in (package / "schemas").glob("*.schema.json")}
    assert host == {
        "segconvert-error.schema.json",
        "segconvert-formats.schema.json",
        "segconvert-plugins.schema.json",
        "label-map.schema.json",
        "segconvert-info.schema.json",
        "segconvert-diff.schema.json",
    }


def test_a_schema_is_found_by_name_once_registered_and_a_clash_is_refused(tmp_path):
    assert schemas.resolve("coco-panoptic").package == "segconvert.formats.coco_panoptic"
    clash = schemas.Schema("coco-panoptic", "segconvert_other")
    assert schemas.register([clash]) == [
        "schema 'coco-panoptic' of segconvert_other refused: "
        "segconvert.formats.coco_panoptic already ships a schema with that name"
    ]
    assert schemas.resolve("coco-panoptic").package == "segconvert.formats.coco_panoptic"
    with pytest.raises(KeyError, match="no schema named 'nope'"):
        schemas.resolve("nope")


def test_a_schema_object_pickles_and_finds_its_file_anywhere():
    import pickle

    schema = pickle.loads(pickle.dumps(schemas.resolve("sa1b-image")))
    assert schemas.load_schema(schema)["$schema"].endswith("2020-12/schema")


def _mutations(document):
    """The document, and variants with one value replaced by something of another type."""
    yield document
    if isinstance(document, dict):
        for key in list(document):
            for replacement in (None, "x", -1, 300, [], {}, 1.5, True):
                yield {**document, key: replacement}
            yield {k: v for k, v in document.items() if k != key}
            for inner in list(_mutations(document[key]))[1:6]:
                yield {**document, key: inner}
        yield {**document, "unexpected": 1}
    elif isinstance(document, list) and document:
        for inner in list(_mutations(document[0]))[1:]:
            yield [inner, *document[1:]]


GOOD_DOCUMENTS = {
    ("nucleus-annotation", None): SDK_EXAMPLE,
    ("nucleus-item", None): {
        "metadata": {},
        "reference_id": "r",
        "width": 2,
        "height": 3,
        "image_url": "s3://b/r.jpg",
    },
    ("segconvert-taxonomy", None): {
        "format": "segconvert-taxonomy",
        "version": 1,
        "void_label": "void",
        "metadata": {},
        "categories": [
            {
                "id": 1,
                "name": "a",
                "supercategory": "",
                "isthing": True,
                "color": [1, 2, 3],
                "metadata": {},
            }
        ],
    },
    ("segconvert-image", None): {
        "reference_id": "r",
        "file_name": None,
        "width": 1,
        "height": 1,
        "metadata": {},
    },
    ("coco-panoptic", "annotation"): {
        "image_id": 1,
        "file_name": "a.png",
        "segments_info": [
            {"id": 5, "category_id": 1, "iscrowd": 0, "area": 3, "bbox": [0, 0, 1, 3]}
        ],
    },
    ("coco-panoptic", "image"): {"id": "x", "file_name": "a.jpg", "width": 4, "height": 4},
    ("coco-panoptic", None): {
        "images": [],
        "annotations": [],
        "categories": [
            {"id": 1, "name": "a", "supercategory": "", "isthing": 1, "color": [0, 0, 0]}
        ],
    },
    ("segconvert-error", None): {"item": "a", "file": None, "rule": "r", "message": "m"},
}


@pytest.mark.parametrize(("name", "definition"), list(GOOD_DOCUMENTS))
def test_the_fast_validator_agrees_with_jsonschema(name, definition):
    variants = list(_mutations(GOOD_DOCUMENTS[(name, definition)]))
    assert schemas.validator(name, definition).is_valid(variants[0])
    disagreements = []
    for variant in variants:
        reference = schemas.validator(name, definition).is_valid(variant)
        try:
            schemas.fast_validator(name, definition)(variant)
            fast = True
        except Exception:
            fast = False
        if fast != reference:
            disagreements.append(variant)
    assert disagreements == []
    assert len(variants) > 20
