"""``segconvert validate``: detects the format, takes its options, reports every problem."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import PANOPTICAPI, TRANSFORMERS, default_spec, write_coco_panoptic
from PIL import Image

from segconvert import UsageError, convert, validate_dataset
from segconvert.cli import main


def _nucleus(tmp_path, count: int = 2):
    if count == 2:
        source = PANOPTICAPI / "panoptic_examples.json"
    else:
        specs = [default_spec(f"img{i}", seed=i) for i in range(count)]
        source = write_coco_panoptic(tmp_path / "src", specs)
    out = tmp_path / "nucleus"
    assert convert(source, out, to_format="nucleus", jobs=1).exit_code == 0
    return out


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(["--no-plugins", *args])
    captured = capsys.readouterr()
    return int(caught.value.code or 0), captured.out, captured.err


def test_validate_detects_the_format(tmp_path, capsys):
    out = _nucleus(tmp_path)
    code, stdout, stderr = _cli(capsys, "validate", str(out))
    assert code == 0, stdout + stderr
    assert "2 item(s) checked: valid" in stderr + stdout


def test_a_pixel_without_a_segment_names_the_mask_file(tmp_path, capsys):
    out = _nucleus(tmp_path)
    mask_path = sorted((out / "masks").glob("*.png"))[0]
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[0, 0] = 250  # no Segment has index 250
    Image.fromarray(mask).save(mask_path)
    code, stdout, _ = _cli(capsys, "validate", str(out))
    assert code == 1
    (line,) = [x for x in stdout.splitlines() if "unlisted-index" in x]
    assert str(mask_path) in line and mask_path.stem in line and "250" in line


def test_three_bad_json_lines_are_all_reported(tmp_path):
    out = _nucleus(tmp_path, count=6)
    annotations = out / "annotations.jsonl"
    lines = annotations.read_text().splitlines()
    for number in (1, 3, 5):  # 0-based: lines 2, 4 and 6 of the file
        lines[number] = lines[number][: len(lines[number]) // 2]
    annotations.write_text("\n".join(lines) + "\n")
    checked, problems = validate_dataset(out, jobs=1)
    bad = [p for p in problems if p["rule"] == "bad-json"]
    assert [p["item"] for p in bad] == ["line-2", "line-4", "line-6"]
    assert all(p["file"] == str(annotations) for p in bad)
    for p, n in zip(bad, (2, 4, 6), strict=True):  # file:line:column: message
        assert re.match(rf"{re.escape(str(annotations))}:{n}:\d+: ", p["message"]), p["message"]
    assert checked == 6 and len(problems) == 3  # the three good lines were checked and pass


def test_bad_lines_of_a_sidecar_are_all_reported_and_the_items_still_checked(tmp_path):
    out = _nucleus(tmp_path, count=4)
    images = out / "images.jsonl"
    lines = images.read_text().splitlines()
    lines[0] = "{not json"
    lines[2] = "[1, 2"
    images.write_text("\n".join(lines) + "\n")
    _, problems = validate_dataset(out, jobs=1)
    assert [p["rule"] for p in problems if p["file"] == str(images)].count("bad-json") == 2


def test_the_bare_segments_info_sample_validates_with_the_format_options(tmp_path, capsys):
    code, stdout, stderr = _cli(
        capsys,
        "validate",
        str(TRANSFORMERS / "coco_panoptic_annotations.txt"),
        "--png-dir",
        str(TRANSFORMERS / "coco_panoptic"),
        "--categories",
        str(PANOPTICAPI / "panoptic_coco_categories.json"),
    )
    assert code == 0, stdout + stderr
    assert "1 item(s) checked: valid" in stdout


def test_an_option_the_importer_does_not_take_is_refused(tmp_path):
    out = _nucleus(tmp_path)
    with pytest.raises(UsageError, match="--png-dir"):
        validate_dataset(out, options={"png_dir": "x"}, jobs=1)


def test_validate_of_the_wrong_kind_says_what_it_is(tmp_path):
    out = _nucleus(tmp_path)
    with pytest.raises(UsageError, match="use --from nucleus"):
        validate_dataset(out, "coco-panoptic", jobs=1)


def test_validate_json_lines_output_is_one_object_per_problem(tmp_path, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b")])
    document = json.loads(json_path.read_text())
    for annotation in document["annotations"]:
        annotation["segments_info"][0]["area"] = 1
    json_path.write_text(json.dumps(document))
    code, stdout, _ = _cli(capsys, "validate", str(json_path), "--json")
    assert code == 1
    problems = [json.loads(line) for line in stdout.splitlines()]
    assert [(p["item"], p["rule"]) for p in problems] == [
        ("a", "area-mismatch"),
        ("b", "area-mismatch"),
    ]
