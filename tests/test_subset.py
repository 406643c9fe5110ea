"""``--limit``, ``--items`` and ``--dry-run`` on the conversion commands (segconvert.subset)."""

from __future__ import annotations

import json

import pytest
from helpers import default_spec, read_jsonl, write_coco_panoptic

from segconvert import RejectedItem, Subset, UsageError, convert
from segconvert.cli import main
from segconvert.subset import read_item_list


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-plugins", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def source(tmp_path):
    return write_coco_panoptic(tmp_path / "src", [default_spec(f"i{k}", k) for k in range(6)])


def written_masks(out):
    return sorted(p.stem for p in (out / "masks").iterdir())


@pytest.mark.parametrize("command", [["coco-to-nucleus"], ["convert", "--to", "nucleus"]])
def test_limit_one_writes_one_item(capsys, tmp_path, source, command):
    out = tmp_path / "out"
    code, stdout, _ = run(
        capsys, *command[:1], str(source), str(out), *command[1:], "--limit", "1", "-j", "1"
    )
    assert code == 0 and "1 converted" in stdout
    assert written_masks(out) == ["i0"]
    assert len(read_jsonl(out / "annotations.jsonl")) == 1


def test_items_writes_exactly_the_listed_ones(capsys, tmp_path, source):
    listing = tmp_path / "items.txt"
    listing.write_text("i4\n\n  i1  \ni4\n")
    out = tmp_path / "out"
    code, _, _ = run(
        capsys, "coco-to-nucleus", str(source), str(out), "--items", str(listing), "-j", "2"
    )
    assert code == 0
    assert written_masks(out) == ["i1", "i4"]
    assert [r["reference_id"] for r in read_jsonl(out / "annotations.jsonl")] == ["i1", "i4"]


def test_a_listed_item_the_source_lacks_is_a_failed_item(capsys, tmp_path, source):
    listing = tmp_path / "items.txt"
    listing.write_text("i2\nmissing\n")
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "coco-to-nucleus", str(source), str(out), "--items", str(listing), "-j", "1"
    )
    assert code == 3 and "failed [item-not-found] x1, e.g. missing: " in err
    assert written_masks(out) == ["i2"]
    assert [(e["item"], e["rule"]) for e in read_jsonl(out / "segconvert-errors.jsonl")] == [
        ("missing", "item-not-found")
    ]


def test_dry_run_leaves_the_output_folder_absent_and_lists_what_would_be_written(
    capsys, tmp_path, source
):
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "coco-to-nucleus", str(source), str(out), "--dry-run")
    assert code == 0 and not out.exists()
    assert "6 item(s) would be written" in stdout and "would write i5" in stdout
    code, stdout, _ = run(
        capsys, "coco-to-nucleus", str(source), str(out), "--dry-run", "--json", "--limit", "2"
    )
    summary = json.loads(stdout)
    assert summary["dry_run"] and summary["planned"] == ["i0", "i1"] and not out.exists()


def test_dry_run_still_runs_the_dataset_level_checks(capsys, tmp_path, source):
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"rename": {"no such class": "x"}}))
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "coco-to-nucleus", str(source), str(out), "--dry-run", "--label-map", str(label_map)
    )
    assert code == 2 and "no such class" in err and not out.exists()


def test_dry_run_reports_items_known_bad_while_listing(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b")])
    document = json.loads(json_path.read_text())
    document["images"][1]["file_name"] = "a.jpg"  # a duplicate reference id
    json_path.write_text(json.dumps(document))
    report = convert(
        json_path, tmp_path / "out", to_format="nucleus", registry=registry, dry_run=True
    )
    assert report.planned == ["a"] and report.failed == 1 and report.exit_code == 3
    assert report.errors[0]["rule"] == "duplicate-reference-id"
    assert not (tmp_path / "out").exists()


def test_subset_stops_reading_the_listing_once_the_limit_is_reached():
    listed = []

    def refs():
        for k in range(1000):
            listed.append(k)
            yield RejectedItem.__new__(RejectedItem)  # any ref; unread by a limit-only subset

    assert len(list(Subset(limit=3).select(refs()))) == 3
    assert len(listed) <= 4


def test_subset_keeps_source_order_and_applies_the_limit_to_the_listed_items():
    class Ref:
        def __init__(self, reference_id):
            self.reference_id = reference_id

    refs = [Ref(name) for name in "abcdef"]
    chosen = Subset.of(limit=2, items=["e", "b", "d"]).select(refs)
    assert [r.reference_id for r in chosen] == ["b", "d"]


def test_item_list_errors_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        read_item_list(tmp_path / "absent.txt")
    with pytest.raises(UsageError, match="is a folder"):
        read_item_list(tmp_path)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00x")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_item_list(tmp_path / "bad.txt")
    with pytest.raises(UsageError):
        Subset(limit=-1)


def test_an_items_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "items.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        read_item_list(fifo)
