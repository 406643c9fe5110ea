"""The pipeline: same output for any --jobs, per-item isolation, the error report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import default_spec, read_jsonl, write_coco_panoptic

from segconvert import (
    ERROR_REPORT_NAME,
    Dataset,
    ExportContext,
    Exporter,
    Importer,
    ItemError,
    OutputError,
    Sample,
    Segment,
    build_registry,
    convert,
    hookimpl,
    schemas,
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("target", ["nucleus", "coco-panoptic"])
def test_output_is_byte_identical_for_any_number_of_jobs(tmp_path, registry, target):
    specs = [default_spec(f"img{k:02d}", k) for k in range(23)]
    json_path = write_coco_panoptic(tmp_path / "src", specs)
    options = {"relative_mask_urls": True} if target == "nucleus" else {}
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        report = convert(
            json_path,
            out,
            from_format="coco-panoptic",
            to_format=target,
            options=options,
            registry=registry,
            jobs=jobs,
        )
        assert report.converted == 23
        outputs.append(tree_bytes(out))
    assert outputs[0] == outputs[1]


def test_duplicate_reference_ids_keep_the_first_and_report_the_rest(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b")])
    document = json.loads(json_path.read_text())
    document["images"][1]["file_name"] = "a.jpg"
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path,
        tmp_path / "o",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=2,
    )
    assert report.converted == 1
    assert [(e["item"], e["rule"]) for e in report.errors] == [("a", "duplicate-reference-id")]


def test_error_report_lines_match_their_schema(tmp_path, registry):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("a"), default_spec("b")], skip_png={"b"}
    )
    report = convert(
        json_path,
        tmp_path / "o",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.error_report == tmp_path / "o" / ERROR_REPORT_NAME
    for record in read_jsonl(report.error_report):
        assert schemas.problems(schemas.ERROR_REPORT, record) == []
        assert record["file"].endswith("b.png")


def test_a_later_clean_run_removes_the_stale_error_report(tmp_path, registry):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("a"), default_spec("b")], skip_png={"b"}
    )
    convert(
        json_path,
        tmp_path / "o",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    good = write_coco_panoptic(tmp_path / "src2", [default_spec("a")])
    report = convert(
        good,
        tmp_path / "o",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
        overwrite=True,
    )
    assert report.exit_code == 0 and not (tmp_path / "o" / ERROR_REPORT_NAME).exists()


def test_output_inside_nothing_else_refuses_the_source_folder(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    with pytest.raises(OutputError, match="source folder"):
        convert(
            json_path,
            tmp_path / "src",
            from_format="coco-panoptic",
            to_format="nucleus",
            registry=registry,
            overwrite=True,
        )


# A toy format whose items misbehave in different ways, to pin the pipeline's isolation.


def toy_scan(path: Path, options: dict) -> Dataset:
    return Dataset(categories=[], items=["ok", "item-error", "crash", "ok2"])


def toy_load(ref: str, context: object) -> Sample:
    import numpy as np

    if ref == "item-error":
        raise ItemError("declared failure", rule="toy-rule", item=ref)
    if ref == "crash":
        raise ZeroDivisionError("an unexpected bug")
    return Sample(ref, 2, 2, np.zeros((2, 2), np.uint8), [Segment("background", 0)])


def toy_write_item(sample: Sample, ctx: ExportContext) -> str:
    return sample.reference_id


def toy_write_dataset(records, ctx: ExportContext) -> list[Path]:
    path = ctx.output / "records.json"
    path.write_text(json.dumps(list(records)))
    return [path]


class ToyPlugin:
    @hookimpl
    def segconvert_importers(self):
        return [Importer(name="toy", scan=toy_scan, load=toy_load)]

    @hookimpl
    def segconvert_exporters(self):
        return [Exporter(name="toy", write_item=toy_write_item, write_dataset=toy_write_dataset)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_failing_or_crashing_item_never_stops_the_others(tmp_path, jobs):
    registry = build_registry(load_third_party=False, extra_plugins=[("toy", ToyPlugin())])
    (tmp_path / "src").mkdir()
    report = convert(
        tmp_path / "src",
        tmp_path / "o",
        from_format="toy",
        to_format="toy",
        registry=registry,
        jobs=jobs,
    )
    assert json.loads((tmp_path / "o" / "records.json").read_text()) == ["ok", "ok2"]
    assert [e["rule"] for e in report.errors] == ["toy-rule", "internal-error"]
    assert "ZeroDivisionError" in report.errors[1]["message"]
    assert report.exit_code == 3
