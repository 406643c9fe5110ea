"""Atomic writes, safe paths from untrusted JSON, readable JSON errors."""

from __future__ import annotations

import json

import pytest

from segconvert import (
    InputError,
    ItemError,
    JsonText,
    atomic_open,
    encode_json,
    json_native,
    read_json,
    safe_join,
)


@pytest.mark.parametrize(
    "name", ["../x.png", "a/../../x.png", "/etc/passwd", "C:/x.png", "..\\x.png"]
)
def test_names_that_leave_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ItemError) as caught:
        safe_join(tmp_path, name, item="i")
    assert caught.value.rule == "unsafe-path"


def test_symlinks_leading_out_are_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(ItemError, match="symlink"):
        safe_join(tmp_path / "root", "link/secret.png")


def test_names_inside_the_folder_are_joined(tmp_path):
    assert safe_join(tmp_path, "sub/a.png") == tmp_path / "sub" / "a.png"


def test_atomic_open_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": }\n')
    with pytest.raises(InputError, match=r"bad\.json:3:8: Expecting value"):
        read_json(path)


def test_json_native_casts_numpy_and_refuses_nan():
    import numpy as np

    assert json_native({"a": np.int64(3), "b": np.array([1, 2])}) == {"a": 3, "b": [1, 2]}
    with pytest.raises(ValueError):
        json_native({"x": float("nan")})


def test_encode_json_writes_what_json_dumps_writes_of_the_native_value():
    import numpy as np

    plain = {"counts": 'a\\b"', "bbox": [1.5, 2], "nested": {"k": [None, True]}}
    assert encode_json(plain) == json.dumps(plain)
    assert isinstance(encode_json(plain), JsonText)
    numeric = {"a": np.int64(3), "b": np.array([1.25, 2.0]), "c": (np.float32(0.1), np.bool_(1))}
    assert encode_json(numeric) == json.dumps(json_native(numeric))
    with pytest.raises(ValueError, match="not valid JSON"):  # json_native's message
        encode_json({"x": [np.float64("nan")]})


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_output_file_follows_the_umask(tmp_path, umask, expected):
    import os
    import stat

    from helpers import PANOPTICAPI

    from segconvert import convert

    previous = os.umask(umask)
    try:
        out = tmp_path / "out"
        report = convert(PANOPTICAPI / "panoptic_examples.json", out, to_format="nucleus", jobs=1)
    finally:
        os.umask(previous)
        assert report.exit_code == 0
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) >= 4
    assert {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in written} == {
        p.relative_to(out).as_posix(): expected for p in written
    }
