"""A corpus of malformed inputs, through the CLI: the bad items are named, the good ones
converted and valid, nothing written outside the output folder, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from helpers import default_spec, read_jsonl, run_cli, run_cli_subprocess, write_coco_panoptic
from hostile import CASES, break_dataset
from PIL import Image


def snapshot(root: Path, exclude: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if exclude not in p.parents and p != exclude}


def test_every_malformed_coco_item_is_reported_and_the_good_ones_converted(
    tmp_path, no_third_party
):
    names = list(CASES)
    specs = [
        default_spec("good0"),
        *(default_spec(n, k) for k, n in enumerate(names, 1)),
        default_spec("good1", 99),
    ]
    json_path = write_coco_panoptic(tmp_path / "data" / "src", specs)
    break_dataset(json_path, names)
    out = tmp_path / "data" / "out"
    before = snapshot(tmp_path, out)
    for jobs in ("1", "2"):
        # a real process: a crash on hostile input must not take the test run with it
        result = run_cli_subprocess(
            "coco-to-nucleus", str(json_path), str(out), "--jobs", jobs, "--overwrite"
        )
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        errors = {e["item"]: e for e in read_jsonl(out / "segconvert-errors.jsonl")}
        expected = {
            name: rule for name, (_, rule) in CASES.items() if name != "duplicate_reference"
        }
        expected["good0"] = "duplicate-reference-id"  # the second 'good0' is the one refused
        assert {item: e["rule"] for item, e in errors.items()} == expected
        for item, error in errors.items():
            assert error["message"], item
        converted = [line["reference_id"] for line in read_jsonl(out / "annotations.jsonl")]
        assert converted == ["good0", "good1"]
        assert snapshot(tmp_path, out) == before, "a file was written outside the output folder"
    check = run_cli("validate", str(out), "--format", "nucleus")
    assert check.returncode == 0, check.stdout + check.stderr


def test_malformed_nucleus_items_are_reported_by_name(tmp_path, no_third_party):
    json_path = write_coco_panoptic(
        tmp_path / "src",
        [
            default_spec(n, k)
            for k, n in enumerate(["ok", "deep", "rgb", "gone", "nolabel", "wide"])
        ],
    )
    nucleus = tmp_path / "n"
    assert (
        run_cli("coco-to-nucleus", str(json_path), str(nucleus), "--relative-mask-urls").returncode
        == 0
    )
    masks = nucleus / "masks"
    Image.fromarray(np.asarray(Image.open(masks / "deep.png")).astype(np.uint16)).save(
        masks / "deep.png"
    )
    Image.open(masks / "rgb.png").convert("RGB").save(masks / "rgb.png")
    (masks / "gone.png").unlink()
    Image.fromarray(np.asarray(Image.open(masks / "wide.png"))[:, :-2]).save(masks / "wide.png")
    lines = read_jsonl(nucleus / "annotations.jsonl")
    lines[4]["annotations"] = lines[4]["annotations"][:-1]
    lines.append({"type": "mask", "annotations": [], "reference_id": "no-url"})
    (nucleus / "annotations.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_cli("nucleus-to-coco", str(nucleus), str(tmp_path / "c"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    errors = {e["item"]: e["rule"] for e in read_jsonl(tmp_path / "c" / "segconvert-errors.jsonl")}
    assert errors == {
        "deep": "png-mode",
        "rgb": "png-mode",
        "gone": "png-missing",
        "wide": "mask-size",
        "no-url": "schema",
    }
    # A mask value with no Segment is void with a note (the SDK accepts such data); --strict
    # refuses it.
    notes = read_jsonl(tmp_path / "c" / "segconvert-notes.jsonl")
    assert [n["item"] for n in notes if n["rule"] == "unlisted-index"] == ["nolabel"]
    strict = run_cli("nucleus-to-coco", str(nucleus), str(tmp_path / "s"), "--strict")
    strict_errors = read_jsonl(tmp_path / "s" / "segconvert-errors.jsonl")
    assert {e["item"]: e["rule"] for e in strict_errors}["nolabel"] == "unlisted-index"
    assert strict.returncode == 3


def test_invalid_json_lines_name_the_line(tmp_path, no_third_party):
    root = tmp_path / "n"
    root.mkdir()
    (root / "annotations.jsonl").write_text('{"type": "mask"}\n{"type": \n')
    result = run_cli("nucleus-to-coco", str(root), str(tmp_path / "c"))
    assert result.returncode == 1
    assert "annotations.jsonl:2:10: Expecting value" in result.stderr
    assert "Traceback" not in result.stderr


def test_truncated_coco_json_names_line_and_column(tmp_path, no_third_party):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    text = json_path.read_text()
    json_path.write_text(text[: len(text) // 2])
    result = run_cli("coco-to-nucleus", str(json_path), str(tmp_path / "o"))
    assert result.returncode == 1 and f"{json_path}:1:" in result.stderr
    assert "Traceback" not in result.stderr
