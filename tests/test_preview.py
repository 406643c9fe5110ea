"""``segconvert preview``: a PNG per item whose legend lists every segment present and whose
pixels carry the taxonomy's category colours; blended over the photo; a contact sheet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import CATEGORIES, PANOPTICAPI, default_spec, write_coco_panoptic
from PIL import Image

from segconvert.cli import main
from segconvert.preview import BOUNDARY_COLOR, LEGEND_KEY, VOID_COLOR, preview_dataset

SAMPLE = PANOPTICAPI / "panoptic_examples.json"


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-plugins", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def direct_ids(annotation):
    rgb = np.asarray(
        Image.open(PANOPTICAPI / "panoptic_examples" / annotation["file_name"]), dtype=np.uint32
    )
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def category_colours():
    document = json.loads((PANOPTICAPI / "panoptic_examples.json").read_text())
    return document, {c["id"]: tuple(c["color"]) for c in document["categories"]}


@pytest.mark.parametrize("boundaries", [True, False])
def test_preview_of_the_panopticapi_sample_lists_every_segment_and_paints_taxonomy_colours(
    capsys, tmp_path, boundaries
):
    args = ["preview", str(SAMPLE), "-o", str(tmp_path), "-j", "1"]
    code, out, _ = run(capsys, *args, *([] if boundaries else ["--no-boundaries"]))
    assert code == 0
    document, colours = category_colours()
    for annotation in document["annotations"]:
        reference_id = annotation["file_name"][: -len(".png")]
        picture = Image.open(tmp_path / f"{reference_id}.png")
        legend = json.loads(picture.text[LEGEND_KEY])
        ids = direct_ids(annotation)
        # the legend: one row per segment present, void included, with its pixel count
        expected = sorted(
            (info["category_id"], int((ids == info["id"]).sum()))
            for info in annotation["segments_info"]
        )
        assert sorted((r["category_id"], r["pixels"]) for r in legend if not r["void"]) == expected
        assert [r["pixels"] for r in legend if r["void"]] == [int((ids == 0).sum())]
        pixels = np.asarray(picture.convert("RGB"))
        height, width = ids.shape
        drawn = pixels[:height, :width]
        # each legend swatch is drawn in its row's colour
        for row in legend:
            x, y, _, _ = row["swatch"]
            assert tuple(pixels[y + 2, x + 2]) == tuple(row["color"])
        # every non-void pixel carries its category's taxonomy colour (or an instance boundary)
        expected_rgb = np.zeros((height, width, 3), dtype=np.uint8)
        for info in annotation["segments_info"]:
            expected_rgb[ids == info["id"]] = colours[info["category_id"]]
        expected_rgb[ids == 0] = VOID_COLOR
        wrong = np.any(drawn != expected_rgb, axis=-1)
        if boundaries:
            assert np.all(drawn[wrong] == BOUNDARY_COLOR)
            assert 0 < wrong.sum() < 0.1 * ids.size
        else:
            assert not wrong.any()


def test_instances_of_a_class_without_taxonomy_colours_get_distinct_stable_shades(tmp_path):
    categories = [{k: v for k, v in c.items() if k != "color"} for c in CATEGORIES]
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")], categories=categories)
    out = tmp_path / "out"
    preview_dataset(json_path, out, jobs=1)
    legend = json.loads(Image.open(out / "a.png").text[LEGEND_KEY])
    people = [r for r in legend if r["label"] == "person" and not r["crowd"]]
    assert [r["instance"] for r in people] == [1, 2]
    assert people[0]["color"] != people[1]["color"]
    again = tmp_path / "again"
    preview_dataset(json_path, again, jobs=1)
    assert json.loads(Image.open(again / "a.png").text[LEGEND_KEY]) == legend


def test_preview_blends_over_the_photo_and_void_shows_the_photo(tmp_path):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = np.full((30, 40, 3), 200, dtype=np.uint8)
    Image.fromarray(photo).save(photos / "a.jpg", quality=100)
    out = tmp_path / "out"
    report = preview_dataset(json_path, out, images=photos, boundaries=False, jobs=1)
    assert report.exit_code == 0
    drawn = np.asarray(Image.open(out / "a.png").convert("RGB"))[:30, :40].astype(int)
    read_photo = np.asarray(Image.open(photos / "a.jpg").convert("RGB")).astype(int)
    sky = (70, 130, 180)  # rows 0-10 are sky: half photo, half colour
    assert np.abs(drawn[5, 5] - (read_photo[5, 5] + np.array(sky)) / 2).max() <= 1
    assert np.array_equal(drawn[10, 0], read_photo[10, 0])  # row 10 is void


def test_item_renders_only_the_named_items_and_names_a_missing_one(capsys, tmp_path):
    args = ["preview", str(SAMPLE), "-o", str(tmp_path), "-j", "1"]
    code, _, err = run(capsys, *args, "--item", "000000439180", "--item", "nope")
    assert code == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000439180.png"]
    assert "nope: [item-not-found]" in err


def test_grid_writes_one_contact_sheet_of_the_first_n_items(capsys, tmp_path):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec(f"i{k}", k) for k in range(5)])
    sheet = tmp_path / "sheet.png"
    code, out, _ = run(
        capsys, "preview", str(json_path), "-o", str(sheet), "--grid", "3", "-j", "1"
    )
    assert code == 0 and "3 item(s) rendered" in out
    legend = json.loads(Image.open(sheet).text[LEGEND_KEY])
    assert {row["label"] for row in legend} == {"void", "person", "car", "sky"}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["sheet.png"]


def test_a_cityscapes_frame_finds_its_photo_under_a_leftimg8bit_root(tmp_path):
    from helpers import synthetic_instance_ids, write_gtfine_frame

    frame = "aachen_000000_000019"
    write_gtfine_frame(tmp_path / "cs", "val", "aachen", frame, synthetic_instance_ids())
    photos = tmp_path / "leftImg8bit"
    (photos / "val" / "aachen").mkdir(parents=True)
    Image.fromarray(np.full((40, 60, 3), 90, dtype=np.uint8)).save(
        photos / "val" / "aachen" / f"{frame}_leftImg8bit.png"
    )
    report = preview_dataset(tmp_path / "cs", tmp_path / "out", images=photos, jobs=1)
    assert report.exit_code == 0
    drawn = np.asarray(Image.open(tmp_path / "out" / f"{frame}.png").convert("RGB"))
    assert tuple(drawn[2, 55]) == (90, 90, 90)  # unlabeled (void) shows the photo
