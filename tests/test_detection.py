"""Detection: confidence levels, streamed look-ups, candidate files and wrong-kind messages."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from helpers import PANOPTICAPI, ImageSpec, default_spec, write_coco_panoptic

import segconvert_semantic_png
from segconvert import (
    Confidence,
    Detection,
    Importer,
    UsageError,
    as_detection,
    build_registry,
    convert,
    hookimpl,
    json_first_item,
)
from segconvert.cli import main


def _never(*args: object) -> None:
    raise NotImplementedError


def _plugin(name: str, answer: object) -> object:
    class Plugin:
        @hookimpl
        def segconvert_importers(self) -> list[Importer]:
            return [Importer(name=name, scan=_never, load=_never, detect=lambda path: answer)]

    return Plugin()


def _registry(*plugins: tuple[str, object]):
    return build_registry(load_third_party=False, extra_plugins=plugins)


def write_instances(path: Path, images: int, *, filler: int = 0) -> Path:
    """A COCO instances JSON in COCO's key order: info, licenses, images, annotations,
    categories; ``filler`` pads each image record (to make ``images`` large)."""
    pad = "x" * filler
    with path.open("w") as handle:
        handle.write('{"info": {"description": "test"}, "licenses": [], "images": [')
        handle.write(
            ",".join(
                json.dumps(
                    {"id": i, "file_name": f"{i:012d}.jpg", "width": 4, "height": 3, "pad": pad}
                )
                for i in range(images)
            )
        )
        handle.write('], "annotations": [')
        handle.write(
            json.dumps(
                {
                    "id": 1,
                    "image_id": 0,
                    "category_id": 1,
                    "iscrowd": 0,
                    "segmentation": [[0, 0, 3, 0, 3, 2]],
                    "area": 3.0,
                    "bbox": [0, 0, 3, 2],
                }
            )
        )
        handle.write('], "categories": [{"id": 1, "name": "thing", "supercategory": "x"}]}')
    return path


def write_big_panoptic(path: Path, images: int, *, filler: int = 0) -> Path:
    """A COCO panoptic JSON in COCO's key order with a large ``images`` section."""
    pad = "x" * filler
    with path.open("w") as handle:
        handle.write('{"info": {}, "licenses": [], "images": [')
        handle.write(
            ",".join(
                json.dumps({"id": i, "file_name": f"{i}.jpg", "width": 4, "height": 3, "pad": pad})
                for i in range(images)
            )
        )
        handle.write('], "annotations": [{"image_id": 0, "file_name": "0.png", ')
        handle.write('"segments_info": []}], "categories": []}')
    return path


# ------------------------------------------------------------------ confidence levels


@pytest.mark.parametrize(
    ("answer", "level"),
    [
        (True, Confidence.LIKELY),
        (False, Confidence.NO),
        (None, Confidence.NO),
        (Confidence.MAYBE, Confidence.MAYBE),
        (3, Confidence.CERTAIN),
        (Detection(Confidence.CERTAIN, "x"), Confidence.CERTAIN),
    ],
)
def test_detector_answers_of_every_accepted_type_become_a_confidence(answer, level):
    assert as_detection(answer).confidence is level


def test_the_most_confident_importer_wins(tmp_path):
    registry = _registry(("a", _plugin("fmt-a", True)), ("b", _plugin("fmt-b", Confidence.MAYBE)))
    assert registry.detect(tmp_path).name == "fmt-a"


def test_a_bool_detector_still_detects_alone(tmp_path):
    assert _registry(("a", _plugin("fmt-a", True))).detect(tmp_path).name == "fmt-a"


def test_equally_confident_importers_are_ambiguous(tmp_path):
    registry = _registry(("a", _plugin("fmt-a", True)), ("b", _plugin("fmt-b", True)))
    with pytest.raises(UsageError, match="could be any of fmt-a, fmt-b"):
        registry.detect(tmp_path)


def test_a_detector_that_raises_or_answers_nonsense_says_no(tmp_path):
    def boom(path: Path) -> bool:
        raise OSError("unreadable")

    class Raising:
        @hookimpl
        def segconvert_importers(self) -> list[Importer]:
            return [Importer(name="boom", scan=_never, load=_never, detect=boom)]

    registry = _registry(("r", Raising()), ("n", _plugin("nonsense", "yes")))
    answers = {importer.name: d.confidence for importer, d in registry.detections(tmp_path)}
    assert answers["boom"] is Confidence.NO and answers["nonsense"] is Confidence.NO


def test_a_cityscapes_tree_stays_cityscapes_with_the_semantic_png_plugin(tmp_path):
    out = tmp_path / "cityscapes"
    convert(PANOPTICAPI / "panoptic_examples.json", out, to_format="cityscapes", jobs=1)
    assert (out / "labels.json").is_file()  # what semantic-png's detector looks for
    registry = _registry(("semantic_png", segconvert_semantic_png))
    answers = {importer.name: d.confidence for importer, d in registry.detections(out)}
    assert answers["semantic-png"] is Confidence.LIKELY  # a real contest
    assert registry.detect(out).name == "cityscapes"


# ------------------------------------------------------------------ streamed look-ups


def test_first_item_is_read_past_the_first_mebibyte(tmp_path):
    path = write_instances(tmp_path / "instances.json", 3000, filler=500)
    assert path.stat().st_size > 1 << 20
    assert json_first_item(path, "annotations.item")["segmentation"] == [[0, 0, 3, 0, 3, 2]]
    assert json_first_item(path, "item") is None  # an object has no top-level items


def test_first_item_of_malformed_json_is_none(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,, "annotations": []}')
    assert json_first_item(path, "annotations.item") is None


def test_instances_json_with_coco_key_order_is_detected_past_the_first_mebibyte(tmp_path, registry):
    path = write_instances(tmp_path / "instances_val2017.json", 3000, filler=500)
    assert registry.detect(path).name == "coco-rle"


def test_panoptic_json_with_coco_key_order_is_detected_past_the_first_mebibyte(tmp_path, registry):
    path = write_big_panoptic(tmp_path / "panoptic_val2017.json", 3000, filler=500)
    assert registry.detect(path).name == "coco-panoptic"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("writer", "expected"), [(write_instances, "coco-rle"), (write_big_panoptic, "coco-panoptic")]
)
def test_a_200_mb_coco_json_is_detected_in_seconds(tmp_path, registry, writer, expected):
    path = writer(tmp_path / "big.json", 210_000, filler=900)
    assert path.stat().st_size > 200_000_000
    started = time.monotonic()
    assert registry.detect(path).name == expected
    assert time.monotonic() - started < 20


# ------------------------------------------------------------------ messages


def test_a_folder_with_two_panoptic_jsons_names_both(tmp_path, registry):
    annotations = tmp_path / "annotations"
    write_coco_panoptic(annotations, [default_spec("a")], name="panoptic_train2017")
    write_coco_panoptic(annotations, [default_spec("b")], name="panoptic_val2017")
    write_instances(annotations / "instances_val2017.json", 2)
    with pytest.raises(UsageError) as caught:
        registry.detect(annotations)
    message = str(caught.value)
    assert "panoptic_train2017.json" in message and "panoptic_val2017.json" in message
    assert "instances_val2017.json" not in message


def test_a_folder_with_one_panoptic_json_among_others_is_detected(tmp_path, registry):
    write_coco_panoptic(tmp_path, [default_spec("a")], name="panoptic_val2017")
    write_instances(tmp_path / "instances_val2017.json", 2)
    assert registry.detect(tmp_path).name == "coco-panoptic"


def test_an_instances_json_given_to_coco_to_nucleus_says_use_coco_rle(
    tmp_path, capsys, no_third_party
):
    path = write_instances(tmp_path / "instances_val2017.json", 2)
    with pytest.raises(SystemExit) as caught:
        main(["coco-to-nucleus", str(path), str(tmp_path / "out")])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "is a COCO instances JSON" in err and "use --from coco-rle" in err
    assert not (tmp_path / "out").exists()


def test_a_panoptic_json_given_as_coco_rle_says_use_coco_panoptic(tmp_path, registry):
    path = write_coco_panoptic(tmp_path, [ImageSpec("a")], name="panoptic_val")
    with pytest.raises(UsageError, match="is a COCO panoptic JSON.*use --from coco-panoptic"):
        convert(
            path, tmp_path / "out", from_format="coco-rle", to_format="nucleus", registry=registry
        )


def test_to_coco_writes_what_nucleus_to_coco_writes(tmp_path, registry):
    nucleus = tmp_path / "nucleus"
    convert(PANOPTICAPI / "panoptic_examples.json", nucleus, to_format="nucleus", jobs=1)
    by_alias = convert(nucleus, tmp_path / "a", to_format="coco", jobs=1, registry=registry)
    main_code = None
    try:
        main(["nucleus-to-coco", str(nucleus), str(tmp_path / "b"), "-q", "-j", "1"])
    except SystemExit as exit:
        main_code = exit.code
    assert by_alias.to_format == "coco-panoptic" and main_code == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in (tmp_path / "b").iterdir()
    )
    assert (tmp_path / "a" / "panoptic.json").read_bytes() == (
        tmp_path / "b" / "panoptic.json"
    ).read_bytes()


def test_a_bare_segments_info_list_is_only_a_maybe(tmp_path, registry):
    bare = tmp_path / "segments_info.json"
    shutil.copy(PANOPTICAPI.parent / "transformers" / "coco_panoptic_annotations.txt", bare)
    answers = {i.name: d.confidence for i, d in registry.detections(bare)}
    assert answers["coco-panoptic"] is Confidence.MAYBE
    assert registry.detect(bare).name == "coco-panoptic"


def test_a_folder_of_instances_jsons_names_them_and_not_the_others(tmp_path, registry):
    write_instances(tmp_path / "instances_train2017.json", 2)
    write_instances(tmp_path / "instances_val2017.json", 2)
    (tmp_path / "captions_val2017.json").write_text('{"images": [], "annotations": []}')
    with pytest.raises(UsageError) as caught:
        registry.detect(tmp_path)
    message = str(caught.value)
    assert "instances_train2017.json, instances_val2017.json" in message
    assert "captions" not in message and "pass the one to convert" in message


def test_a_coco_annotations_folder_with_panoptic_and_instances_names_the_panoptic_ones(
    tmp_path, registry
):
    write_coco_panoptic(tmp_path, [default_spec("a")], name="panoptic_train2017")
    write_coco_panoptic(tmp_path, [default_spec("b")], name="panoptic_val2017")
    write_instances(tmp_path / "instances_val2017.json", 2)
    with pytest.raises(UsageError, match="several coco-panoptic datasets"):
        registry.detect(tmp_path)
