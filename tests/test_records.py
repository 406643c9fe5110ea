"""segconvert.records: exporter records as journal JSON, encoded by the worker that made them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from executor_jobs import make_job, orders

from segconvert.executors import ProcessPool
from segconvert.records import RecordCodec, codec_for, ref_digest


@dataclass(frozen=True)
class Lines:
    """A record of strings, like the Nucleus exporter's."""

    annotation_line: str
    item_line: str | None


@dataclass(frozen=True)
class Encoded:
    """A record whose large field is a list of JSON texts, like the coco-rle exporter's."""

    image: dict
    ids: list
    bodies: list


@dataclass(frozen=True)
class Measured:
    """A record with a float, whose JSON must be checked to come back equal."""

    area: float


def test_a_record_of_strings_comes_back_equal_without_a_second_parse():
    codec = RecordCodec(__name__)
    record = Lines('{"a": "\\u00e9 \\ud800"}', None)  # escapes and a lone surrogate
    text = codec.encode(record)
    assert text is not None
    assert codec.decode(json.loads(text)) == record


def test_a_record_that_json_cannot_hold_is_not_stored():
    codec = RecordCodec(__name__)
    assert codec.encode(Measured(math.nan)) is None
    assert codec.encode(Measured(0.5)) is not None
    assert codec.encode({"set": {1, 2}}) is None


def test_a_record_is_encoded_field_by_field_as_json_dumps_writes_it_whole():
    codec = RecordCodec(__name__)
    record = Encoded({"id": None, "width": 2.5}, [7, None, "b"], ['{"a": "\\\\"}', "{}"])
    text = codec.encode(record)
    whole = {"dataclass": "Encoded", "fields": {"image": record.image, "ids": record.ids}}
    whole["fields"]["bodies"] = record.bodies
    assert text == json.dumps(whole)
    assert codec.decode(json.loads(text)) == record


def test_a_field_that_would_not_come_back_equal_keeps_the_record_out():
    codec = RecordCodec(__name__)
    assert codec.encode(Encoded({"size": (2, 3)}, [], [])) is None  # a tuple comes back a list
    assert codec.encode(Encoded({}, [(1, 2)], [])) is None
    assert codec.encode(Encoded({1: "x"}, [], [])) is None  # the key comes back a string


def test_a_dataclass_of_another_module_is_not_stored():
    assert RecordCodec("json").encode(Lines("x", None)) is None


def test_workers_send_the_journal_text_and_digest_with_each_result():
    refs = orders("ok-0", "ok-1", "raise-2")
    results = list(ProcessPool(2).map(make_job(), refs))
    codec = codec_for(make_job().write_item.__module__)
    for ref, result in zip(refs[:2], results, strict=False):
        assert result.record_json == codec.encode(result.record)
        assert result.ref_digest == ref_digest(ref)
    assert results[2].record_json is None and results[2].ref_digest is None


def test_the_codec_of_a_module_is_built_once_per_process():
    assert codec_for(__name__) is codec_for(__name__)


def test_a_reference_digests_the_same_after_travelling_to_a_worker(tmp_path):
    import pickle

    from helpers import default_spec, write_coco_panoptic

    from segconvert import convert
    from segconvert.plan import plan_conversion

    panoptic = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    convert(panoptic, tmp_path / "nucleus", to_format="nucleus", jobs=1)
    convert(tmp_path / "nucleus", tmp_path / "rle", from_format="nucleus", to_format="coco-rle")
    sources = [
        (panoptic, "coco-panoptic"),
        (tmp_path / "nucleus", "nucleus"),
        (tmp_path / "rle" / "instances.json", "coco-rle"),
    ]
    for source, name in sources:
        plan = plan_conversion(source, tmp_path / f"plan-{name}", to_format="nucleus")
        refs = list(plan.dataset.items)
        assert refs, name
        for ref in refs:
            travelled = pickle.loads(pickle.dumps(ref, protocol=pickle.HIGHEST_PROTOCOL))
            assert ref_digest(travelled) == ref_digest(ref), name
        assert len({ref_digest(ref) for ref in refs}) == len(refs), name
