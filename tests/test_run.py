"""The run stage: the host drives the records, plugin faults are named, results are typed."""

from __future__ import annotations

import pickle

import pytest
from helpers import default_spec, write_coco_panoptic

from segconvert import Exporter, PluginError, build_registry, convert, hookimpl
from segconvert.items import ItemResult, ItemStatus


class _Exporters:
    """Exporters with a broken ``write_dataset``: one ignores its records, one raises."""

    @hookimpl
    def segconvert_exporters(self):
        def write_item(sample, ctx):
            return sample.reference_id

        def ignore_records(records, ctx):
            return []

        def read_one(records, ctx):
            next(iter(records))
            return []

        def explode(records, ctx):
            list(records)
            raise KeyError("taxonomy")

        return [
            Exporter(name="ignoring", write_item=write_item, write_dataset=ignore_records),
            Exporter(name="reads-one", write_item=write_item, write_dataset=read_one),
            Exporter(name="exploding", write_item=write_item, write_dataset=explode),
        ]


@pytest.fixture
def source(tmp_path):
    return write_coco_panoptic(tmp_path / "src", [default_spec(f"i{k}") for k in range(5)])


@pytest.fixture(scope="module")
def broken_registry():
    return build_registry(load_third_party=False, extra_plugins=[("broken-out", _Exporters())])


@pytest.mark.parametrize("exporter", ["ignoring", "reads-one"])
def test_an_exporter_that_does_not_read_its_records_fails_the_run(
    tmp_path, source, broken_registry, exporter
):
    with pytest.raises(PluginError, match="returned without reading all its records") as caught:
        convert(source, tmp_path / "out", to_format=exporter, registry=broken_registry, jobs=1)
    assert str(caught.value).startswith(
        f"plugin 'broken-out': write_dataset of format {exporter!r}"
    )


def test_an_exception_in_write_dataset_names_the_plugin_and_the_format(
    tmp_path, source, broken_registry
):
    with pytest.raises(PluginError) as caught:
        convert(source, tmp_path / "out", to_format="exploding", registry=broken_registry, jobs=1)
    assert str(caught.value) == (
        "plugin 'broken-out' failed in write_dataset of format 'exploding': KeyError: 'taxonomy'"
    )


def test_item_results_are_typed_and_survive_pickling():
    result = ItemResult.ok({"line": 1}, [{"item": "a", "rule": "r", "message": "m"}])
    back = pickle.loads(pickle.dumps(result))
    assert back == result and back.status is ItemStatus.OK
    failed = ItemResult.failed({"item": "a", "file": None, "rule": "x", "message": "y"})
    assert failed.status is ItemStatus.ERROR and failed.record is None


def test_the_report_counts_converted_failed_and_skipped_items(tmp_path, registry):
    from helpers import grid_spec

    specs = [default_spec("a"), default_spec("b"), grid_spec("crowded", 300)]
    json_path = write_coco_panoptic(tmp_path / "src", specs, skip_png={"b"})
    report = convert(
        json_path,
        tmp_path / "out",
        to_format="nucleus",
        registry=registry,
        jobs=1,
        on_overflow="skip",
    )
    assert (report.converted, report.failed, report.skipped) == (1, 1, 1)
    assert [e["item"] for e in report.errors] == ["b"]
    assert [n["rule"] for n in report.notes] == ["overflow-skipped"]
