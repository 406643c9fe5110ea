"""The written contract: reference protocol, metadata keys, declared strictness, hook checks."""

from __future__ import annotations

import re

from helpers import REPO
from plugin_factory import importer_plugin, raising_scan

from segconvert import (
    STRICT,
    Dataset,
    ImageKey,
    ItemReference,
    build_registry,
    hookimpl,
    validate_dataset,
)
from segconvert.model import reference_file, reference_id


def _recording_importer(name: str, *options):
    seen: list[dict] = []

    def scan(path, opts):
        seen.append(dict(opts))
        return Dataset([], items=[])

    return importer_plugin(name, scan, *options), seen


def test_validate_passes_strict_only_to_an_importer_that_declares_it(tmp_path):
    lax, lax_seen = _recording_importer("lax-format")
    strict, strict_seen = _recording_importer("strict-format", STRICT)
    registry = build_registry(
        load_third_party=False, extra_plugins=[("lax", lax), ("strict", strict)]
    )
    validate_dataset(tmp_path, "lax-format", registry=registry, jobs=1)
    validate_dataset(tmp_path, "strict-format", registry=registry, jobs=1)
    assert lax_seen == [{}]
    assert strict_seen == [{"strict": True}]
    assert registry.importer("strict-format").reads_strictly
    assert not registry.importer("lax-format").reads_strictly


def test_the_builtin_importers_that_check_strictly_declare_it(registry):
    declared = {r.descriptor.name for r in registry.importers() if r.descriptor.reads_strictly}
    assert declared == {"cityscapes", "coco-panoptic", "nucleus"}


def test_a_misspelled_hook_is_reported_with_the_right_name():
    class Typo:
        @hookimpl
        def segconvert_importer(self):
            return []

    registry = build_registry(load_third_party=False, extra_plugins=[("typo", Typo())])
    assert registry.problems == [
        "plugin 'typo' implements 'segconvert_importer', which is not a segconvert hook, so it "
        "is never called; did you mean 'segconvert_importers'?"
    ]


def test_a_hook_function_without_the_marker_is_reported():
    class Unmarked:
        def segconvert_exporters(self):
            return []

    registry = build_registry(load_third_party=False, extra_plugins=[("bare", Unmarked())])
    assert registry.problems == [
        "plugin 'bare': segconvert_exporters is not marked with @hookimpl, so it is never called"
    ]


def test_the_builtins_raise_no_hook_problems(registry):
    assert registry.problems == []


def test_references_are_read_only_through_the_protocol():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Ref:
        reference_id: str
        file: str

    assert isinstance(Ref("a", "a.png"), ItemReference)
    assert (reference_id(Ref("a", "f")), reference_file(Ref("a", "f"))) == ("a", "f")
    assert (reference_id("plain-string"), reference_file("plain-string")) == (None, None)


def test_formats_spell_no_image_level_metadata_key_themselves():
    keys = [v for k, v in vars(ImageKey).items() if k.isupper() and isinstance(v, str)]
    pattern = re.compile(r"metadata(?:\.get\(|\[)\"(" + "|".join(keys) + r")\"")
    offenders = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in sorted((REPO / "segconvert").rglob("*.py"))
        for match in pattern.finditer(path.read_text())
    ]
    assert offenders == []


def test_validate_reports_a_crashing_scan_as_one_line_naming_the_plugin(tmp_path):
    crashing = importer_plugin("crashing", raising_scan(ZeroDivisionError("division by zero")))
    registry = build_registry(load_third_party=False, extra_plugins=[("crash", crashing)])
    checked, problems = validate_dataset(tmp_path, "crashing", registry=registry, jobs=1)
    assert (checked, [p["rule"] for p in problems]) == (0, ["unreadable"])
    assert problems[0]["message"] == (
        "plugin 'crash' failed in scan of format 'crashing': ZeroDivisionError: division by zero"
    )
