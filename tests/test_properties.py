"""Property-based round trips: random masks, ids and categories through every lossless pair."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from helpers import ids_to_rgb, read_panoptic, write_gtfine_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from segconvert import build_registry, convert
from segconvert.formats.cityscapes.labels import OFFICIAL

REGISTRY = build_registry(load_third_party=False)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def panoptic_images(draw):
    """(id map, segments_info, categories) with random 24-bit ids and a random taxonomy."""
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    category_ids = draw(st.lists(st.integers(0, 5000), min_size=1, max_size=6, unique=True))
    categories = [
        {
            "id": c,
            "name": f"class {c}",
            "supercategory": draw(st.sampled_from(["", "x"])),
            "isthing": draw(st.integers(0, 1)),
            "color": draw(st.lists(st.integers(0, 255), min_size=3, max_size=3)),
        }
        for c in category_ids
    ]
    ids = draw(st.lists(st.integers(1, (1 << 24) - 1), min_size=1, max_size=10, unique=True))
    choice = draw(arrays(np.int64, (height, width), elements=st.integers(0, len(ids))))
    table = np.array([0, *ids], dtype=np.uint32)
    id_map = table[choice]
    present = [i for i in ids if (id_map == i).any()]
    infos = []
    for segment_id in present:
        ys, xs = np.nonzero(id_map == segment_id)
        infos.append(
            {
                "id": segment_id,
                "category_id": draw(st.sampled_from(category_ids)),
                "iscrowd": draw(st.integers(0, 1)),
                "area": int(len(ys)),
                "bbox": [
                    int(xs.min()),
                    int(ys.min()),
                    int(xs.max() - xs.min() + 1),
                    int(ys.max() - ys.min() + 1),
                ],
            }
        )
    return id_map, infos, categories


def write_panoptic(root: Path, id_map, infos, categories) -> Path:
    (root / "p").mkdir(parents=True)
    Image.fromarray(ids_to_rgb(id_map)).save(root / "p" / "img.png")
    height, width = id_map.shape
    document = {
        "images": [{"id": 1, "file_name": "img.jpg", "width": width, "height": height}],
        "annotations": [{"image_id": 1, "file_name": "img.png", "segments_info": infos}],
        "categories": categories,
    }
    (root / "p.json").write_text(json.dumps(document))
    return root / "p.json"


def chain(source: Path, root: Path, formats: list[str]) -> Path:
    current = source
    for step, (src, dst) in enumerate(zip(formats, formats[1:], strict=False)):
        out = root / f"step{step}"
        report = convert(current, out, from_format=src, to_format=dst, registry=REGISTRY, jobs=1)
        assert report.exit_code == 0, report.errors
        current = out
    return current


@SETTINGS
@given(
    panoptic_images(),
    st.sampled_from(
        [
            ["coco-panoptic", "nucleus", "coco-panoptic"],
            ["coco-panoptic", "coco-rle", "coco-panoptic"],
        ]
    ),
)
def test_coco_panoptic_round_trips_exactly(image, formats):
    id_map, infos, categories = image
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = write_panoptic(root, id_map, infos, categories)
        result = chain(source, root, formats)
        ((_, annotation, ids),) = read_panoptic(result / "panoptic.json").values()
        assert np.array_equal(ids, id_map)
        assert annotation["segments_info"] == infos
        assert json.loads((result / "panoptic.json").read_text())["categories"] == categories


LABELS = [label for label in OFFICIAL.labels if label.id >= 0]


@st.composite
def cityscapes_frames(draw):
    height, width = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    values = []
    for label in draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=6)):
        if label.hasInstances and draw(st.booleans()):
            values.append(label.id * 1000 + draw(st.integers(0, 999)))
        else:
            values.append(label.id)
    values = sorted(set(values))
    choice = draw(arrays(np.int64, (height, width), elements=st.integers(0, len(values) - 1)))
    return np.array(values, dtype=np.uint16)[choice]


@SETTINGS
@given(cityscapes_frames())
def test_cityscapes_round_trips_exactly_with_keep_ignored(frame):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_gtfine_frame(root / "cs", "val", "c", "c_000000_000001", frame)
        convert(
            root / "cs",
            root / "n",
            from_format="cityscapes",
            to_format="nucleus",
            options={"keep_ignored": True},
            registry=REGISTRY,
            jobs=1,
        )
        report = convert(
            root / "n",
            root / "b",
            from_format="nucleus",
            to_format="cityscapes",
            registry=REGISTRY,
            jobs=1,
        )
        assert report.exit_code == 0, report.errors
        (path,) = (root / "b").rglob("*_instanceIds.png")
        assert np.array_equal(np.asarray(Image.open(path)), frame)


@SETTINGS
@given(panoptic_images())
def test_non_overlapping_coco_rle_round_trips_through_nucleus(image):
    from pycocotools import mask as mask_utils

    id_map, infos, categories = image
    height, width = id_map.shape
    annotations = []
    for number, info in enumerate(infos):
        rle = mask_utils.encode(np.asfortranarray((id_map == info["id"]).astype(np.uint8)))
        annotations.append(
            {
                "id": 10_000 + number,
                "image_id": 7,
                "category_id": info["category_id"],
                "iscrowd": info["iscrowd"],
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
            }
        )
    document = {
        "images": [{"id": 7, "file_name": "x.jpg", "height": height, "width": width}],
        "annotations": annotations,
        "categories": [{k: c[k] for k in ("id", "name", "supercategory")} for c in categories],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in.json").write_text(json.dumps(document))
        result = chain(root / "in.json", root, ["coco-rle", "nucleus", "coco-rle"])
        back = json.loads((result / "instances.json").read_text())
        assert back["categories"] == document["categories"]
        got = {a["id"]: a for a in back["annotations"]}
        assert sorted(got) == [a["id"] for a in annotations]
        for annotation in annotations:
            returned = got[annotation["id"]]
            assert returned["segmentation"]["counts"] == annotation["segmentation"]["counts"]
            assert (returned["category_id"], returned["iscrowd"]) == (
                annotation["category_id"],
                annotation["iscrowd"],
            )
