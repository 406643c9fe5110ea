"""The example plugin, checked with segconvert's conformance kit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segconvert_semantic_png
from segconvert import testing


def write_dataset(root: Path, palette: bool = False) -> Path:
    """background/cat/dog labels and one 6x8 mask: background, dog, one ignored pixel."""
    (root / "masks").mkdir(parents=True)
    (root / "labels.json").write_text(json.dumps({"classes": ["background", "cat", "dog"]}))
    values = np.zeros((6, 8), np.uint8)
    values[:, 4:] = 2
    values[0, 0] = 255
    if palette:  # VOC style: a palette PNG whose stored indices are the classes
        image = Image.frombytes("P", (8, 6), values.tobytes())
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
    else:
        image = Image.fromarray(values)
    image.save(root / "masks" / "a.png")
    return root


def test_descriptors_are_accepted():
    names = {d.name for d in testing.check_plugin(segconvert_semantic_png)}
    assert names == {"semantic-png"}


@pytest.mark.slow
def test_a_sample_round_trips_semantically(tmp_path):
    back = testing.check_round_trip(
        segconvert_semantic_png, "semantic-png", tmp_path, mode="semantic"
    )
    assert {s.label for s in back.segments} == {"void", "road", "person", "car"}


@pytest.mark.parametrize("palette", [False, True])
def test_reading_a_dataset(tmp_path, palette):
    registry = testing.registry_with(segconvert_semantic_png)
    dataset = registry.importer("semantic-png").open(write_dataset(tmp_path / "d", palette), {})
    (sample,) = list(dataset)
    assert [(s.label, s.index) for s in sample.segments] == [
        ("void", 0),
        ("background", 1),
        ("dog", 2),
    ]


def test_bad_input_is_rejected_cleanly(tmp_path):
    (tmp_path / "empty").mkdir()
    assert testing.check_rejects(segconvert_semantic_png, "semantic-png", tmp_path / "empty") == []
    root = write_dataset(tmp_path / "d")
    Image.fromarray(np.full((3, 3), 9, np.uint8)).save(root / "masks" / "bad.png")
    (root / "masks" / "broken.png").write_bytes(b"not a png")
    errors = testing.check_rejects(segconvert_semantic_png, "semantic-png", root)
    assert sorted(e["rule"] for e in errors) == ["png-unreadable", "unknown-category"]
