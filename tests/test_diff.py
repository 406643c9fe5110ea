"""``segconvert diff``: round trips through every format are identical; a changed pixel, a
relabelled segment and a missing item are each named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import PANOPTICAPI, default_spec, write_coco_panoptic
from PIL import Image

from segconvert import Sample, Segment, convert
from segconvert.cli import main
from segconvert.diff import compare_samples, diff_datasets

SAMPLE = PANOPTICAPI / "panoptic_examples.json"
OTHER_FORMATS = ["nucleus", "cityscapes", "coco-rle"]


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-plugins", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def records(out):
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory, registry):
    """The panopticapi sample in every other format, and back to COCO panoptic from each."""
    root = tmp_path_factory.mktemp("trips")
    made = {}
    for target in OTHER_FORMATS:
        there = root / target
        convert(SAMPLE, there, to_format=target, registry=registry, jobs=1)
        back = root / f"back-{target}"
        convert(
            there, back, from_format=target, to_format="coco-panoptic", registry=registry, jobs=1
        )
        made[target] = (there, back / "panoptic.json")
    return made


@pytest.mark.parametrize("target", OTHER_FORMATS)
def test_a_round_trip_through_every_other_format_is_identical(capsys, round_trips, target):
    _, back = round_trips[target]
    code, out, _ = run(capsys, "diff", str(SAMPLE), str(back), "--json")
    summary = records(out)[-1]
    assert code == 0, out
    assert summary["identical_datasets"] and summary["compared"] == 2
    assert summary["identical"] == 2 and summary["pixels_changed"] == 0


@pytest.mark.parametrize("target", OTHER_FORMATS)
def test_the_sample_and_its_conversion_in_another_format_are_identical(capsys, round_trips, target):
    there, _ = round_trips[target]
    code, out, _ = run(capsys, "diff", str(SAMPLE), str(there), "--from-b", target)
    assert code == 0, out
    assert out.startswith("identical: 2 item(s) compared")


def test_one_changed_pixel_of_one_mask_exits_one_naming_the_item_and_one_pixel(
    capsys, round_trips, tmp_path
):
    nucleus = tmp_path / "nucleus"
    shutil.copytree(round_trips["nucleus"][0], nucleus)
    mask_path = nucleus / "masks" / "000000142238.png"
    mask = np.asarray(Image.open(mask_path)).copy()
    values = np.unique(mask)
    y, x = 200, 300
    mask[y, x] = next(v for v in values if v != mask[y, x])
    Image.fromarray(mask).save(mask_path)
    code, out, _ = run(capsys, "diff", str(SAMPLE), str(nucleus), "--from-b", "nucleus")
    assert code == 1
    assert "000000142238: 1 pixel(s) changed" in out
    assert "000000439180" not in out
    code, out, _ = run(capsys, "diff", str(SAMPLE), str(nucleus), "--from-b", "nucleus", "--json")
    changed = [r for r in records(out) if r["type"] == "item"]
    assert [(r["item"], r["pixels_changed"]) for r in changed] == [("000000142238", 1)]
    assert records(out)[-1]["pixels_changed"] == 1 and code == 1


def test_a_relabelled_segment_is_named_as_a_label_change(capsys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(PANOPTICAPI, copy)
    document = json.loads((copy / "panoptic_examples.json").read_text())
    segment = next(s for s in document["annotations"][1]["segments_info"] if s["category_id"] == 19)
    segment["category_id"] = 1  # a horse becomes a person
    (copy / "panoptic_examples.json").write_text(json.dumps(document))
    code, out, _ = run(capsys, "diff", str(SAMPLE), str(copy / "panoptic_examples.json"))
    assert code == 1
    line = next(line for line in out.splitlines() if "label changed" in line)
    assert line.startswith("000000439180: label changed: 'horse' (category_id 19")
    assert "-> 'person' (category_id 1" in line
    assert f"{segment['area']} px" in line


def test_items_missing_on_either_side_are_named(capsys, tmp_path, registry):
    a = write_coco_panoptic(tmp_path / "a", [default_spec("x"), default_spec("y")])
    b = write_coco_panoptic(tmp_path / "b", [default_spec("y"), default_spec("z")])
    code, out, _ = run(capsys, "diff", str(a), str(b), "--json")
    found = {(r["item"], r["only_in"]) for r in records(out) if r["type"] == "missing"}
    assert code == 1 and found == {("x", "a"), ("z", "b")}
    summary = records(out)[-1]
    assert summary["compared"] == 1 and summary["identical"] == 1


def test_an_unreadable_item_makes_the_datasets_different(capsys, tmp_path):
    a = write_coco_panoptic(tmp_path / "a", [default_spec("x"), default_spec("y")])
    b = write_coco_panoptic(tmp_path / "b", [default_spec("x"), default_spec("y")], skip_png={"y"})
    code, out, _ = run(capsys, "diff", str(a), str(b))
    assert code == 1 and "y: unreadable in B: [png-missing]" in out


def sample(mask, segments):
    array = np.array(mask, dtype=np.uint8)
    return Sample("s", array.shape[1], array.shape[0], array, segments)


def test_segments_are_matched_by_pixels_not_by_index():
    a = sample(
        [[0, 1], [2, 2]],
        [
            Segment("void", 0, {"void": True}),
            Segment("cat", 1, {"category_id": 5}),
            Segment("dog", 2, {"category_id": 6}),
        ],
    )
    b = sample(
        [[2, 0], [1, 1]],
        [
            Segment("void", 2, {"void": True}),
            Segment("cat", 0, {"category_id": 5}),
            Segment("dog", 1, {"category_id": 6}),
        ],
    )
    assert compare_samples(a, b).identical


def test_a_crowd_flag_and_an_empty_segment_are_compared():
    a = sample(
        [[1, 1]],
        [
            Segment("cat", 1, {"category_id": 5, "iscrowd": 0}),
            Segment("ghost", 2, {"category_id": 5}),
        ],
    )
    b = sample([[1, 1]], [Segment("cat", 1, {"category_id": 5, "iscrowd": 1})])
    result = compare_samples(a, b)
    assert result.label_changes[0]["fields"] == ["iscrowd"]
    assert [s["label"] for s in result.only_in_a] == ["ghost"]
    assert not result.identical


def test_renumbered_instance_ids_count_only_with_strict_ids():
    a = sample([[1]], [Segment("cat", 1, {"category_id": 5, "source_id": 26001})])
    b = sample([[1]], [Segment("cat", 1, {"category_id": 5, "source_id": 900})])
    assert compare_samples(a, b).identical
    strict = compare_samples(a, b, strict_ids=True)
    assert not strict.identical and strict.id_changes == [{"label": "cat", "a": 26001, "b": 900}]


@pytest.mark.parametrize("target", ["nucleus", "coco-panoptic", "coco-rle"])
def test_a_cityscapes_tree_and_its_round_trip_through_another_format_are_identical(
    tmp_path, registry, target
):
    from helpers import synthetic_instance_ids, write_gtfine_frame

    root = tmp_path / "cs"
    for seed in range(2):
        frame = f"aachen_000000_00001{seed}"
        write_gtfine_frame(root, "val", "aachen", frame, synthetic_instance_ids(seed))
    there, back = tmp_path / target, tmp_path / "back"
    convert(root, there, from_format="cityscapes", to_format=target, registry=registry, jobs=1)
    convert(there, back, from_format=target, to_format="cityscapes", registry=registry, jobs=1)
    for other, kind in ((there, target), (back, "cityscapes")):
        summary = list(diff_datasets(root, other, from_a="cityscapes", from_b=kind))[-1]
        assert summary["identical_datasets"] and summary["compared"] == 2, summary


def test_diff_records_are_checked_against_their_schema():
    from segconvert import schemas

    summary = {"type": "summary", "compared": 1, "identical_datasets": True}
    assert schemas.problems(schemas.DIFF_RECORD, summary)  # counts missing
    missing = {"type": "missing", "item": "x", "only_in": "a"}
    assert schemas.problems(schemas.DIFF_RECORD, missing) == []
    assert schemas.problems(schemas.DIFF_RECORD, {**missing, "only_in": "c"})


class Ref:
    def __init__(self, reference_id):
        self.reference_id = reference_id


def test_references_pair_by_id_in_any_order_and_report_the_unmatched():
    from segconvert.diff import pair_references

    a = [Ref(x) for x in "abcd"]
    b = [Ref(x) for x in "dcbe"]
    events = list(pair_references(a, b))
    pairs = {(e[1].reference_id, e[2].reference_id) for e in events if e[0] == "pair"}
    assert pairs == {("b", "b"), ("c", "c"), ("d", "d")}
    assert [e[1:] for e in events if e[0] == "only"] == [("a", "a"), ("b", "e")]


def test_a_subset_of_a_stops_reading_b_once_everything_is_matched():
    from segconvert.diff import pair_references

    read = []

    def b_refs():
        for k in range(10_000):
            read.append(k)
            yield Ref(f"i{k}")

    events = list(pair_references([Ref("i0"), Ref("i1")], b_refs(), report_only_in_b=False))
    assert [e[0] for e in events] == ["pair", "pair"]
    assert len(read) <= 3
