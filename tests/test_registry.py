"""The plugin host: built-ins registered like plugins, entry points, conflicts, broken plugins."""

from __future__ import annotations

import pytest
from plugin_factory import BROKEN_PLUGIN, GOOD_PLUGIN, install_fake_plugin

from segconvert import Exporter, Importer, UnknownFormatError, build_registry, hookimpl
from segconvert.manager import BUILTIN_PLUGINS


def _noop(*args):
    raise NotImplementedError


class ClashingPlugin:
    """Claims the built-in name coco-panoptic."""

    @hookimpl
    def segconvert_importers(self):
        return [Importer(name="coco-panoptic", scan=_noop, load=_noop)]


class SloppyPlugin:
    """Returns one bad name, one wrong type and one good descriptor."""

    @hookimpl
    def segconvert_exporters(self):
        return [
            Exporter(name="Bad_Name", write_item=_noop, write_dataset=_noop),
            "not a descriptor",
            Exporter(name="fine-format", write_item=_noop, write_dataset=_noop),
        ]


class RaisingPlugin:
    @hookimpl
    def segconvert_importers(self):
        raise ValueError("cannot list")


def test_builtins_provide_both_directions_of_every_format(registry):
    names = ["cityscapes", "coco-panoptic", "coco-rle", "nucleus"]
    assert [r.descriptor.name for r in registry.importers()] == names
    assert [r.descriptor.name for r in registry.exporters()] == names
    assert {r.provider.name for r in registry.entries()} == set(BUILTIN_PLUGINS)
    assert all(r.provider.builtin for r in registry.entries())


def test_a_clashing_name_is_refused_naming_both_providers_and_the_builtin_keeps_working():
    registry = build_registry(load_third_party=False, extra_plugins=[("clasher", ClashingPlugin())])
    assert len(registry.problems) == 1
    problem = registry.problems[0]
    assert "'clasher'" in problem and "'segconvert.formats.coco_panoptic'" in problem
    assert "coco-panoptic" in problem
    assert registry.importer_provider("coco-panoptic").name == "segconvert.formats.coco_panoptic"


def test_invalid_descriptors_are_refused_and_valid_ones_kept():
    registry = build_registry(load_third_party=False, extra_plugins=[("sloppy", SloppyPlugin())])
    assert registry.exporter("fine-format").name == "fine-format"
    assert any("Bad_Name" in p for p in registry.problems)
    assert any("expected Exporter" in p for p in registry.problems)


def test_a_hook_that_raises_is_reported_not_fatal():
    registry = build_registry(load_third_party=False, extra_plugins=[("raiser", RaisingPlugin())])
    assert any("raiser" in p and "cannot list" in p for p in registry.problems)
    assert registry.importer("nucleus").name == "nucleus"


def test_unknown_format_suggests_the_closest_name(registry):
    with pytest.raises(UnknownFormatError, match="did you mean 'coco-panoptic'"):
        registry.importer("coco-panoptik")


def test_aliases_resolve_to_the_format(registry):
    assert registry.importer("coco_panoptic").name == "coco-panoptic"


def test_entry_point_plugins_are_loaded_with_their_distribution(tmp_path, monkeypatch):
    install_fake_plugin(
        tmp_path,
        "segconvert-fake",
        "segconvert_fake",
        GOOD_PLUGIN.format(name="fake-format"),
        "2.5",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry(load_third_party=True)
    info = registry.importer_provider("fake-format")
    assert (info.name, info.distribution, info.version) == (
        "segconvert_fake",
        "segconvert-fake",
        "2.5",
    )


def test_third_party_plugins_can_be_switched_off(tmp_path, monkeypatch):
    install_fake_plugin(
        tmp_path, "segconvert-fake", "segconvert_fake", GOOD_PLUGIN.format(name="fake-format")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SEGCONVERT_DISABLE_PLUGINS", "1")
    with pytest.raises(UnknownFormatError):
        build_registry().importer("fake-format")


def test_a_plugin_that_fails_to_import_is_recorded_and_skipped(tmp_path, monkeypatch):
    install_fake_plugin(tmp_path, "segconvert-broken", "segconvert_broken", BROKEN_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry(load_third_party=True)
    (failure,) = [f for f in registry.failures if f.name == "segconvert_broken"]
    assert failure.distribution == "segconvert-broken"
    assert "broken on purpose" in failure.error
    assert registry.importer("nucleus").name == "nucleus"
