"""Cityscapes ignored classes: pixels made void are counted per frame and pointed at once."""

from __future__ import annotations

import pytest
from helpers import MMSEG_GTFINE, read_jsonl, synthetic_instance_ids, write_gtfine_frame

from segconvert import convert
from segconvert.cli import main


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "cityscapes"
    write_gtfine_frame(root, "val", "aachen", "aachen_000000_000019", synthetic_instance_ids())
    write_gtfine_frame(root, "val", "aachen", "aachen_000001_000019", synthetic_instance_ids(1))
    return root / "gtFine"


def test_each_frame_notes_the_ignored_pixels_made_void(tree, tmp_path):
    report = convert(tree, tmp_path / "out", from_format="cityscapes", to_format="nucleus", jobs=1)
    assert report.exit_code == 0
    notes = read_jsonl(tmp_path / "out" / "segconvert-notes.jsonl")
    assert [n["item"] for n in notes] == ["aachen_000000_000019", "aachen_000001_000019"]
    for note in notes:
        assert note["rule"] == "ignored-class-void"
        # out of roi: rows 10-13 (240 px); caravan 29000: 10 x 10; unlabeled is void anyway
        assert note["classes"] == {"caravan": 100, "out of roi": 240}
        assert note["pixels"] == 340
        assert "340 pixels" in note["message"]


def test_keep_ignored_leaves_no_note(tree, tmp_path):
    report = convert(
        tree,
        tmp_path / "out",
        from_format="cityscapes",
        to_format="nucleus",
        options={"keep_ignored": True},
        jobs=1,
    )
    assert report.exit_code == 0 and report.notes == []


def test_the_summary_has_one_line_pointing_at_keep_ignored(tree, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--no-plugins", "convert", str(tree), str(tmp_path / "o"), "--to", "nucleus"])
    assert caught.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("--keep-ignored" in line for line in lines) == 1
    (group,) = [line for line in lines if "[ignored-class-void]" in line]
    assert "x2" in group and "340 pixels" in group


@pytest.mark.skipif(not MMSEG_GTFINE.is_dir(), reason=f"{MMSEG_GTFINE} absent")
def test_the_real_frame_notes_its_ignored_pixels(tmp_path):
    report = convert(
        MMSEG_GTFINE, tmp_path / "out", from_format="cityscapes", to_format="nucleus", jobs=1
    )
    (note,) = report.notes
    assert note["rule"] == "ignored-class-void" and note["pixels"] > 0
    assert note["pixels"] == sum(note["classes"].values())


def test_listing_the_frames_is_reported_as_scan_activity(tree):
    from segconvert.activity import listening_to_activity
    from segconvert.formats.cityscapes.importer import find_frames

    seen: list[tuple[object, ...]] = []
    with listening_to_activity(lambda *report: seen.append(report)):
        frames = find_frames(tree)
    assert len(frames) == 2
    assert seen and seen[0] == ("listing", 1, None, "files")
