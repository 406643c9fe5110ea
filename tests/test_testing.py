"""segconvert.testing, applied to the built-in formats (and to a broken plugin)."""

from __future__ import annotations

import importlib

import pytest

from segconvert import Importer, hookimpl, testing


@pytest.mark.parametrize(
    ("module", "name", "mode"),
    [
        ("segconvert.formats.nucleus", "nucleus", "panoptic"),
        ("segconvert.formats.coco_panoptic", "coco-panoptic", "panoptic"),
        ("segconvert.formats.coco_rle", "coco-rle", "panoptic"),
        ("segconvert.formats.cityscapes", "cityscapes", "panoptic"),
        ("segconvert.formats.cityscapes", "cityscapes", "semantic"),
    ],
)
def test_builtin_formats_pass_the_conformance_kit(tmp_path, module, name, mode):
    plugin = importlib.import_module(module)
    registry = testing.registry_with(plugin, builtins=False)
    assert {e.descriptor.name for e in registry.entries()} == {name}
    testing.check_round_trip(plugin, name, tmp_path, mode=mode)


def test_check_plugin_reports_a_clash_with_a_builtin():
    class Clash:
        @hookimpl
        def segconvert_importers(self):
            return [
                Importer(
                    name="nucleus", scan=lambda p, o: None, load=lambda r, c: None, description="x"
                )
            ]

    with pytest.raises(AssertionError, match="refused"):
        testing.check_plugin(Clash())


def test_check_rejects_catches_an_importer_that_crashes(tmp_path):
    class Crashing:
        @hookimpl
        def segconvert_importers(self):
            def scan(path, options):
                raise KeyError("boom")

            return [Importer(name="crashy", scan=scan, load=lambda r, c: None, description="x")]

    with pytest.raises(KeyError):
        testing.check_rejects(Crashing(), "crashy", tmp_path)
