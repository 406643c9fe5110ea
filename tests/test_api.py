"""The reading and writing API: ``segconvert.open`` with str / PathLike / file:// URL, bad items
collected, ``segconvert.write``; and every example in docs/api.md runs (spawn start method)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import PANOPTICAPI, REPO, default_spec, write_coco_panoptic

import segconvert
from segconvert import Category, ItemError, MetaKey, Sample, Segment, UsageError

SAMPLE_PATH = "fixtures/coco-panoptic/panopticapi/panoptic_examples.json"
API_DOC = REPO / "docs" / "api.md"


def test_open_with_a_str_iterates_the_samples(monkeypatch):
    monkeypatch.chdir(REPO)
    dataset = segconvert.open(SAMPLE_PATH)
    samples = list(dataset)
    assert [s.reference_id for s in samples] == ["000000142238", "000000439180"]
    assert dataset.format == "coco-panoptic" and dataset.errors == []
    first = samples[0]
    assert first.mask.shape == (427, 640) and first.mask.dtype == np.uint8
    assert len(first.segments) == 19 and len(dataset.categories) == 133
    assert {s.category_id for s in first.segments if not s.is_void} <= {
        c.id for c in dataset.categories
    }


def test_open_accepts_a_path_and_a_file_url():
    by_path = [s.reference_id for s in segconvert.open(PANOPTICAPI / "panoptic_examples.json")]
    url = (PANOPTICAPI / "panoptic_examples.json").as_uri()
    assert [s.reference_id for s in segconvert.open(url)] == by_path


def test_a_dataset_with_one_bad_item_yields_the_good_ones_and_reports_the_bad_one(tmp_path):
    specs = [default_spec("a"), default_spec("b"), default_spec("c")]
    json_path = write_coco_panoptic(tmp_path, specs)
    (tmp_path / "panoptic_val" / "b.png").write_bytes(b"\x89PNG broken")
    dataset = segconvert.open(str(json_path))
    assert [s.reference_id for s in dataset] == ["a", "c"]
    assert [(e.item, e.rule) for e in dataset.errors] == [("b", "png-unreadable")]
    with pytest.raises(ItemError, match="b"):
        list(segconvert.open(json_path, errors="raise"))


def test_open_takes_the_importer_options_and_refuses_unknown_ones():
    transformers = REPO / "fixtures" / "coco-panoptic" / "transformers"
    dataset = segconvert.open(
        transformers / "coco_panoptic_annotations.txt",
        "coco-panoptic",
        png_dir=transformers / "coco_panoptic",
        categories=PANOPTICAPI / "panoptic_coco_categories.json",
    )
    assert [len(s.segments) for s in dataset] == [7]
    with pytest.raises(UsageError, match="--no-such-option"):
        segconvert.open(PANOPTICAPI / "panoptic_examples.json", no_such_option=1)


def test_open_names_a_missing_source_in_one_line():
    with pytest.raises(UsageError, match="does not exist"):
        segconvert.open("no/such/panoptic.json")
    with pytest.raises(UsageError, match="s3://"):
        segconvert.open("s3://bucket/panoptic.json")


def test_open_subsets_and_get():
    dataset = segconvert.open(PANOPTICAPI / "panoptic_examples.json", limit=1)
    assert list(dataset.reference_ids()) == ["000000142238"]
    full = segconvert.open(PANOPTICAPI / "panoptic_examples.json")
    assert full.get("000000439180").height == 360
    with pytest.raises(ItemError, match="item-not-found|not in"):
        full.get("nope")


def test_write_reports_a_bad_sample_and_writes_the_others(tmp_path):
    categories = [Category(1, "thing"), {"id": 2, "name": "stuff", "isthing": 0}]
    good = Sample(
        "good",
        2,
        1,
        np.array([[0, 1]], dtype=np.uint8),
        [Segment("void", 0, {MetaKey.VOID: True}), Segment("thing", 1, {MetaKey.CATEGORY_ID: 1})],
    )
    bad = Sample(
        "bad", 2, 1, np.array([[0, 5]], dtype=np.uint8), [Segment("void", 0, {MetaKey.VOID: True})]
    )
    report = segconvert.write(
        [good, bad, "junk"], tmp_path / "out", format="nucleus", categories=categories
    )
    assert report.converted == 1 and report.exit_code == 3
    assert [(e["item"], e["rule"]) for e in report.errors] == [
        ("bad", "unlisted-index"),
        ("#2", "not-a-sample"),
    ]
    assert [s.reference_id for s in segconvert.open(tmp_path / "out")] == ["good"]


def api_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API_DOC.read_text(), flags=re.S)


def test_the_api_page_has_examples():
    assert len(api_examples()) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("number", range(len(api_examples())))
def test_every_api_doc_example_runs(tmp_path, number):
    script = tmp_path / f"example_{number}.py"
    script.write_text(api_examples()[number])
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_a_dataset_can_be_iterated_twice(tmp_path):
    json_path = write_coco_panoptic(tmp_path, [default_spec("a"), default_spec("b")])
    dataset = segconvert.open(json_path)
    assert [s.reference_id for s in dataset] == [s.reference_id for s in dataset] == ["a", "b"]
