"""segconvert.testing, applied to the built-in formats (and to a broken plugin)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from helpers import PANOPTICAPI

from segconvert import Dataset, Importer, convert, hookimpl, testing
from segconvert.manager import BUILTIN_PLUGINS


def _builtin_formats() -> list[tuple[str, str]]:
    """``(module, format name)`` of every built-in, from the one registration list."""
    found = []
    for module in BUILTIN_PLUGINS:
        registry = testing.registry_with(importlib.import_module(module), builtins=False)
        found.extend(
            (module, name) for name in sorted({e.descriptor.name for e in registry.entries()})
        )
    return found


@pytest.mark.slow  # spawned worker processes: about 4 s each
@pytest.mark.parametrize("mode", ["panoptic", "semantic"])
@pytest.mark.parametrize(("module", "name"), _builtin_formats())
def test_builtin_formats_pass_the_conformance_kit(tmp_path, module, name, mode):
    plugin = importlib.import_module(module)
    testing.check_plugin(plugin)
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

    with pytest.raises(AssertionError) as caught:
        testing.check_rejects(Crashing(), "crashy", tmp_path)
    assert str(caught.value) == (
        f"crashy: scan raised KeyError: 'boom' on {tmp_path}; raise InputError for an unreadable "
        "input, ItemError (or yield a RejectedItem) for one bad item"
    )


def test_check_rejects_names_a_load_that_raises_something_else(tmp_path):
    class LoadCrashes:
        @hookimpl
        def segconvert_importers(self):
            return [
                Importer(
                    name="load-crashes",
                    scan=lambda p, o: Dataset([], items=["x"]),
                    load=_load_raising,
                    description="x",
                )
            ]

    with pytest.raises(AssertionError, match=r"load-crashes: load of 'x' raised IndexError: no"):
        testing.check_rejects(LoadCrashes(), "load-crashes", tmp_path)


def _load_raising(ref, context):
    raise IndexError("no")


def _closure_plugin():
    """A working format whose ``load`` is a closure: fine in-process, broken under spawn."""
    nucleus = importlib.import_module("segconvert.formats.nucleus")
    (importer,) = nucleus.segconvert_importers()
    (exporter,) = nucleus.segconvert_exporters()
    original_load = importer.load

    def load(ref, context):
        return original_load(ref, context)

    class ClosurePlugin:
        @hookimpl
        def segconvert_importers(self):
            return [dataclasses.replace(importer, name="closure-format", load=load, aliases=())]

        @hookimpl
        def segconvert_exporters(self):
            return [dataclasses.replace(exporter, name="closure-format", aliases=())]

    return ClosurePlugin()


def test_check_round_trip_fails_readably_on_a_plugin_whose_load_is_a_closure(tmp_path):
    with pytest.raises(AssertionError) as caught:
        testing.check_round_trip(_closure_plugin(), "closure-format", tmp_path)
    message = str(caught.value)
    assert message.startswith(
        "closure-format: the importer's load does not pickle, so it cannot reach a worker "
        "process under the 'spawn' start method: "
    )
    assert "Define functions at module level (no lambdas or closures)" in message


def test_the_closure_plugin_itself_converts_in_process(tmp_path):
    registry = testing.registry_with(_closure_plugin())
    written = convert(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "n",
        to_format="closure-format",
        registry=registry,
        jobs=1,
    )
    back = convert(
        tmp_path / "n",
        tmp_path / "c",
        from_format="closure-format",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert (written.converted, back.converted) == (2, 2)


@pytest.mark.parametrize("value", [lambda: None, (x for x in [])], ids=["lambda", "generator"])
def test_check_picklable_names_what_does_not_pickle(value):
    with pytest.raises(AssertionError, match="the thing does not pickle"):
        testing.check_picklable(value, "the thing")
