"""The plan stage: every dataset-level check happens before anything is written."""

from __future__ import annotations

import json

import pytest
from helpers import default_spec, write_coco_panoptic
from plugin_factory import importer_plugin, raising_scan

from segconvert import Category, Dataset, InputError, PluginError, build_registry, convert
from segconvert.plan import plan_conversion
from segconvert.transforms import Mode, OverflowPolicy

TARGETS = ["nucleus", "coco-panoptic", "cityscapes", "coco-rle"]


def _with_category_colour(tmp_path, colour):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b")])
    document = json.loads(json_path.read_text())
    document["categories"][0]["color"] = colour
    json_path.write_text(json.dumps(document))
    return json_path


@pytest.mark.parametrize("target", TARGETS)
def test_a_category_colour_of_300_is_refused_before_any_output_exists(tmp_path, registry, target):
    json_path = _with_category_colour(tmp_path, [300, 0, 0])
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"category 'person': colour \[300, 0, 0\]"):
        convert(json_path, out, from_format="coco-panoptic", to_format=target, registry=registry)
    assert not out.exists()


def _twin_categories(path, options):
    return Dataset([Category(1, "cat"), Category(1, "twin")], items=[])


def test_a_repeated_category_id_from_any_importer_is_refused_in_the_plan_stage(tmp_path):
    twins = importer_plugin("twins", _twin_categories)
    registry = build_registry(load_third_party=False, extra_plugins=[("twins", twins)])
    (tmp_path / "src").mkdir()
    with pytest.raises(InputError, match="category 'twin': id 1 is used by an earlier category"):
        plan_conversion(
            tmp_path / "src", tmp_path / "out", from_format="twins", to_format="nucleus",
            registry=registry,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_the_plan_holds_enums_for_mode_and_overflow_given_as_strings(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    plan = plan_conversion(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        mode="semantic",
        on_overflow="skip",
    )
    assert plan.transform.mode is Mode.SEMANTIC
    assert plan.transform.on_overflow is OverflowPolicy.SKIP
    assert plan.params["mode"] == "semantic"
    assert not (tmp_path / "out").exists()


def test_an_unknown_mode_is_a_usage_error_naming_the_modes(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    with pytest.raises(Exception, match="mode must be one of panoptic, instance, semantic"):
        plan_conversion(
            json_path, tmp_path / "out", to_format="nucleus", registry=registry, mode="pixels"
        )


def test_an_exception_in_scan_is_a_plugin_error_naming_plugin_and_format(tmp_path):
    tripping = importer_plugin("tripping", raising_scan(ValueError("the scanner tripped")))
    registry = build_registry(load_third_party=False, extra_plugins=[("tripper", tripping)])
    (tmp_path / "src").mkdir()
    with pytest.raises(PluginError) as caught:
        convert(tmp_path / "src", tmp_path / "out", from_format="tripping", to_format="nucleus",
                registry=registry)  # fmt: skip
    message = str(caught.value)
    assert message == (
        "plugin 'tripper' failed in scan of format 'tripping': ValueError: the scanner tripped"
    )
    assert isinstance(caught.value.__cause__, ValueError)
    assert not (tmp_path / "out").exists()


def test_a_bad_colour_in_a_nucleus_taxonomy_sidecar_is_refused_before_any_output(
    tmp_path, registry
):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    nucleus = tmp_path / "nucleus"
    convert(json_path, nucleus, to_format="nucleus", registry=registry, jobs=1)
    taxonomy = json.loads((nucleus / "taxonomy.json").read_text())
    taxonomy["categories"][0]["color"] = [0, 300, 0]
    (nucleus / "taxonomy.json").write_text(json.dumps(taxonomy))
    out = tmp_path / "back"
    with pytest.raises(InputError, match=r"300"):
        convert(nucleus, out, from_format="nucleus", to_format="coco-panoptic", registry=registry)
    assert not out.exists()


def test_a_label_map_naming_an_unknown_category_is_refused_before_any_output(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"rename": {"nonexistent": "x"}}))
    out = tmp_path / "out"
    with pytest.raises(Exception, match="nonexistent"):
        convert(json_path, out, to_format="nucleus", registry=registry, label_map=label_map)
    assert not out.exists()
