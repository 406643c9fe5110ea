"""segconvert.jsonstream: one streamed pass gives every element and a span that reads it back."""

from __future__ import annotations

import json

import pytest

import segconvert.jsonstream as jsonstream
from segconvert import InputError
from segconvert.jsonstream import ARRAY_START, read_spans, stream_top_level


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(jsonstream, "CHUNK", 64)  # values straddle many buffer refills


def document():
    return {
        "info": {"description": "é ü 中"},
        "images": [{"id": i, "file_name": f"ü{i}.jpg"} for i in range(4)],
        "annotations": [
            {"id": i, "image_id": i % 4, "name": "ø" * (i % 7), "big": 12345678901234}
            for i in range(500)
        ],
        "categories": [{"id": 1, "name": "x"}],
    }


@pytest.mark.parametrize("indent", [None, 2])
def test_elements_and_spans_round_trip_with_multibyte_text(tmp_path, small_chunks, indent):
    path = tmp_path / "doc.json"
    source = document()
    path.write_text(json.dumps(source, ensure_ascii=False, indent=indent), encoding="utf-8")
    events = list(stream_top_level(path, ("annotations", "images")))
    starts = [e.key for e in events if e.value is ARRAY_START]
    assert starts == ["images", "annotations"]
    annotations = [e for e in events if e.key == "annotations" and e.value is not ARRAY_START]
    assert [e.value for e in annotations] == source["annotations"]
    picked = annotations[::37]
    assert read_spans(path, [e.span for e in picked]) == [e.value for e in picked]
    values = {e.key: e.value for e in events if e.span is None and e.value is not ARRAY_START}
    assert values == {"info": source["info"], "categories": source["categories"]}


def test_a_top_level_list_streams_its_elements(tmp_path, small_chunks):
    path = tmp_path / "results.json"
    rows = document()["annotations"][:50]
    path.write_text(json.dumps(rows))
    events = [e for e in stream_top_level(path) if e.value is not ARRAY_START]
    assert [e.key for e in events] == [None] * 50
    assert read_spans(path, [events[7].span]) == [rows[7]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": [1, 2', r"bad.json:1:12: expected one of ',\]'"),
        ('{\n  "a": [1,\n  2, "é" x]}', r"bad.json:3:10: expected one of ',\]', found 'x'"),
        ('{"a" 1}', "expected one of ':'"),
        ("[1,]", "Expecting value"),
        ('{"a": 1} x', "extra data"),
        ("", "end of the file"),
        (b'{"a": "\xff"}', "not UTF-8"),
    ],
)
def test_broken_json_is_one_input_error_naming_line_and_column(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError, match=message):
        list(stream_top_level(path, ("a",)))


def test_streamed_schema_problems_name_the_element_and_match_the_whole_document_check(tmp_path):
    from segconvert import schemas
    from segconvert.formats.coco_panoptic.shipped_schemas import COCO_PANOPTIC
    from segconvert.jsonstream import streamed_schema_problems

    document = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}, {"id": 2}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": "nope"}],
        "categories": "not a list",
    }
    path = tmp_path / "panoptic.json"
    path.write_text(json.dumps(document))
    arrays = {"images": "image", "annotations": "annotation"}
    streamed = list(streamed_schema_problems(COCO_PANOPTIC, path, arrays))
    assert sorted(streamed) == sorted(schemas.problems(COCO_PANOPTIC, document))
    assert any(p.startswith("$.images[1]") for p in streamed)
    assert any(p.startswith("$.annotations[0].segments_info") for p in streamed)
