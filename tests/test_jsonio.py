"""The one JSON reader: limits, strictness and ``file:line:column`` errors, whole or streamed."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segconvert import InputError, json_lines, json_sections, json_stream, jsonio, read_json


def write(tmp_path: Path, data: bytes, name: str = "doc.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": [1,\n  NaN]}', "doc.json:2:3: NaN is not valid JSON"),
        (b'{"a": Infinity}', "doc.json:1:7: Infinity is not valid JSON"),
        (b'{"s": "NaN", "a": -Infinity}', "doc.json:1:19: -Infinity is not valid JSON"),
        (b'{"a": 1,\n "b": {"c": 1, "c": 2}}', "doc.json:2:7: duplicate key 'c' in an object"),
        (b'{"a":\n  "caf\xc3\xa9 \xff"}', "doc.json:2:9: invalid UTF-8 (byte 0xff)"),
        (b'{"a": 1,}', "doc.json:1:9: Expecting property name enclosed in double quotes"),
        (b"[" * 101 + b"]" * 101, "doc.json:1:101: nesting deeper than 100 levels"),
        (b"", "doc.json:1:1: Expecting value"),
    ],
)
def test_a_bad_document_is_refused_with_file_line_and_column(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(InputError) as caught:
        read_json(path)
    assert str(caught.value) == f"{tmp_path}/{message}"
    assert caught.value.file == str(path)


def test_valid_json_reads_as_the_standard_library_reads_it(tmp_path):
    document = {"a": [1, 2.5, {"b": 'x"[[', "c": None}], "d": "\\", "e": "é", "f": [[[]]]}
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps(document).encode())
    assert read_json(path) == document
    nested = [[[[[[[[[[0]]]]]]]]]] * 3
    assert read_json(write(tmp_path, json.dumps(nested).encode(), "n.json")) == nested


def test_deep_nesting_is_refused_cheaply_in_time_and_memory(tmp_path):
    path = write(tmp_path, b"[" * 500_000 + b"]" * 500_000)  # 1 MB, ~quadratic in ijson
    tracemalloc.start()
    for reader in (
        read_json,
        lambda p: list(json_stream(p, "item")),
        lambda p: json_sections(p, ["a"]),
    ):
        with pytest.raises(InputError, match="nesting deeper than 100 levels"):
            reader(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 << 20


def test_a_document_past_the_size_limit_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, b"[" + b"1," * 1000 + b"1]")
    with pytest.raises(InputError, match="larger than the limit of 100 bytes"):
        jsonio.load_json(path, max_bytes=100)
    assert len(jsonio.load_json(path, max_bytes=10_000)) == 1001


def test_streamed_readers_apply_the_same_rules(tmp_path):
    good = {"images": [{"id": 1}], "annotations": [{"image_id": 1}, {"image_id": 2}]}
    path = write(tmp_path, json.dumps(good).encode())
    assert list(json_stream(path, "annotations.item")) == good["annotations"]
    assert json_sections(path, ["images", "info"]) == {"images": [{"id": 1}]}
    duplicate = write(tmp_path, b'{"annotations": [\n {"image_id": 1, "image_id": 2}]}', "d.json")
    with pytest.raises(InputError, match=r"d\.json:2:2: duplicate key 'image_id'"):
        list(json_stream(duplicate, "annotations.item"))
    not_a_number = write(tmp_path, b'{"images": [NaN]}', "n.json")
    with pytest.raises(InputError, match=r"n\.json:1:13: NaN is not valid JSON"):
        json_sections(not_a_number, ["images"])
    bad_bytes = write(tmp_path, b'{"images": ["\xfe"]}', "u.json")
    with pytest.raises(InputError, match=r"u\.json:1:14: invalid UTF-8"):
        json_sections(bad_bytes, ["images"])


def test_json_lines_name_the_line_of_every_fault(tmp_path):
    path = write(tmp_path, b'{"a": 1}\n\n{"a": 2}\n', "x.jsonl")
    assert list(json_lines(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    for body, message in [
        (b'{"a": 1}\n{"a": \xff}\n', "x.jsonl:2:7: invalid UTF-8 (byte 0xff)"),
        (b'{"a": 1}\n{"a": 1, "a": 1}\n', "x.jsonl:2:1: duplicate key 'a' in an object"),
        (b'{"a": 1}\n{"a": NaN}\n', "x.jsonl:2:7: NaN is not valid JSON"),
        (b'{"a": 1}\n' + b"[" * 200 + b"\n", "x.jsonl:2:101: nesting deeper than 100 levels"),
        (b'{"a": 1}\n{"a" 1}\n', "x.jsonl:2:6: Expecting ':' delimiter"),
    ]:
        path.write_bytes(body)
        (first, good), (second, fault) = json_lines(path)
        assert (first, good) == (1, {"a": 1}) and second == 2
        assert isinstance(fault, InputError)
        assert str(fault) == f"{tmp_path}/{message}"


def test_a_fifo_or_device_is_never_read_without_end(tmp_path):
    # refused before a byte is read: the reader opens through the storage layer
    with pytest.raises(InputError, match="not a regular file"):
        jsonio.load_json(Path("/dev/zero"), max_bytes=1 << 20)


def test_an_oversized_document_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * 600_000 + b"0]")
    with pytest.raises(InputError, match="larger than the limit"):
        jsonio.load_json(big, max_bytes=1 << 20)


def reference_depth(data: bytes) -> int:
    """Deepest nesting, by a plain character loop (the scan must agree)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"' or char == "\n":
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


TOKENS = ["[", "]", "{", "}", "1", ",", ":", "\n", '"a"', r'"\\"', r'"\""', '"[{"']
TOKENS += [r'"]\"}"', '"x\n']  # an escaped quote before brackets; a string a newline ends


@settings(max_examples=150, deadline=None)
@given(
    # backslashes only inside strings, as in any JSON a parser would accept
    st.lists(st.sampled_from(TOKENS), max_size=60),
    st.integers(min_value=1, max_value=9),
)
def test_the_vectorised_depth_scan_agrees_with_a_plain_loop(pieces, block):
    data = "".join(pieces).encode()
    deepest = reference_depth(data)
    for limit in {max(0, deepest - 1), deepest}:
        if deepest > limit:
            with pytest.raises(InputError):
                jsonio.check_depth(io.BytesIO(data), "x", limit=limit, block_size=block)
        else:
            jsonio.check_depth(io.BytesIO(data), "x", limit=limit, block_size=block)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([t for t in TOKENS if "\n" not in t]), max_size=80))
def test_a_whole_text_is_refused_exactly_when_it_nests_too_deep(pieces):
    """check_depth on bytes (every parse does this) answers as the plain loop: its quick test
    lets through only what is shallow enough, and the scan decides the rest."""
    data = "".join(pieces).encode()
    deepest = reference_depth(data)
    for limit in {max(0, deepest - 1), deepest, 1}:
        if deepest > limit:
            with pytest.raises(InputError):
                jsonio.check_depth(data, "x", limit=limit)
        else:
            jsonio.check_depth(data, "x", limit=limit)


@pytest.mark.parametrize(
    "text",
    [
        '["' + "[" * 300 + '"]',  # brackets in a string do not nest
        '["\\\\", ' + '"\\"[[[[", ' * 40 + "1]",  # quotes escaped and not
        '["\\"' + "[" * 300 + '"]',
        '[{"a": [' + '"\\"x", ' * 100 + "1]}]",  # more escaped quotes than it checks alone
    ],
)
def test_brackets_inside_strings_never_count_as_nesting(text):
    assert json.loads(text) is not None
    jsonio.check_depth(text.encode(), "x", limit=3)
    deep = "[" * 5 + text + "]" * 5
    with pytest.raises(InputError, match="nesting deeper than 3"):
        jsonio.check_depth(deep.encode(), "x", limit=3)
