"""Conformance helpers for plugin authors, to call from their own pytest suite.

    from segconvert import testing
    import segconvert_myformat

    def test_descriptors():
        testing.check_plugin(segconvert_myformat)

    def test_round_trip(tmp_path):
        testing.check_round_trip(segconvert_myformat, "my-format", tmp_path)

    def test_bad_input(tmp_path):
        (tmp_path / "broken").mkdir()
        testing.check_rejects(segconvert_myformat, "my-format", tmp_path / "broken")

Every helper raises ``AssertionError`` with a readable message when something is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import schemas
from segconvert.convert import convert
from segconvert.descriptors import Exporter, Importer
from segconvert.errors import SegconvertError
from segconvert.hookspecs import hookimpl
from segconvert.model import Category, Dataset, MetaKey, Sample, Segment
from segconvert.registry import Registry, build_registry

PLUGIN_NAME = "plugin-under-test"


def registry_with(plugin: object, *, builtins: bool = True) -> Registry:
    """A registry holding ``plugin`` (and the built-in formats unless ``builtins=False``),
    never other installed plugins."""
    return build_registry(
        load_third_party=False, extra_plugins=[(PLUGIN_NAME, plugin)], builtins=builtins
    )


def check_plugin(plugin: object) -> list[Importer | Exporter]:
    """The plugin's descriptors are accepted by the registry (kebab-case names, right types,
    no clash with a built-in); returns them."""
    registry = registry_with(plugin)
    problems = [p for p in registry.problems if PLUGIN_NAME in p]
    assert not problems, "the registry refused descriptors:\n" + "\n".join(problems)
    mine = [e.descriptor for e in registry.entries() if e.provider.name == PLUGIN_NAME]
    assert mine, "the plugin provides no importer or exporter (are the hooks decorated?)"
    for descriptor in mine:
        assert descriptor.description, f"{descriptor.name}: give it a one-line description"
        assert not descriptor.missing_requirements(), (
            f"{descriptor.name}: requirements not installed: {descriptor.missing_requirements()}"
        )
    return mine


def sample_dataset() -> tuple[list[Category], Sample]:
    """A small hub sample with void, stuff, two instances of one thing and a crowd."""
    categories = [
        Category(1, "person", "human", True, (220, 20, 60)),
        Category(2, "road", "flat", False, (128, 64, 128)),
        Category(3, "car", "vehicle", True, (0, 0, 142)),
    ]
    mask = np.zeros((12, 16), dtype=np.uint8)
    mask[6:, :] = 1  # road
    mask[2:6, 1:5] = 2  # person
    mask[2:6, 6:9] = 3  # person
    mask[7:11, 10:15] = 4  # car crowd
    segments = [
        Segment("void", 0, {MetaKey.VOID: True}),
        Segment("road", 1, {MetaKey.CATEGORY_ID: 2, MetaKey.ISCROWD: 0, MetaKey.SOURCE_ID: 2}),
        Segment("person", 2, {MetaKey.CATEGORY_ID: 1, MetaKey.ISCROWD: 0, MetaKey.SOURCE_ID: 1001}),
        Segment("person", 3, {MetaKey.CATEGORY_ID: 1, MetaKey.ISCROWD: 0, MetaKey.SOURCE_ID: 1002}),
        Segment("car", 4, {MetaKey.CATEGORY_ID: 3, MetaKey.ISCROWD: 1, MetaKey.SOURCE_ID: 3}),
    ]
    return categories, Sample("sample_000001", 16, 12, mask, segments, file_name="sample.jpg")


class _SamplePlugin:
    """Feeds :func:`sample_dataset` into the pipeline as the ``segconvert-sample`` format."""

    @hookimpl
    def segconvert_importers(self) -> list[Importer]:
        return [
            Importer(
                name="segconvert-sample",
                scan=_scan_sample,
                load=_load_sample,
                description="the conformance sample",
            )
        ]


def _scan_sample(path: Path, options: Any) -> Dataset:
    categories, _ = sample_dataset()
    return Dataset(categories=categories, items=["sample_000001"], size=1)


def _load_sample(ref: Any, context: Any) -> Sample:
    return sample_dataset()[1]


def partition(mask: np.ndarray) -> set[frozenset[int]]:
    """The mask as a set of pixel groups, whatever the index values."""
    flat = mask.ravel()
    return {frozenset(np.flatnonzero(flat == v).tolist()) for v in np.unique(flat)}


def check_round_trip(
    plugin: object,
    format_name: str,
    tmp_path: Path,
    *,
    mode: str = "panoptic",
    options: dict[str, Any] | None = None,
) -> Sample:
    """Write the conformance sample with the plugin's exporter, read it back with its importer,
    and check the pixels still group the same way under the same labels. Returns the sample read.

    Use ``mode="semantic"`` for formats that store one region per class.
    """
    registry = build_registry(
        load_third_party=False,
        extra_plugins=[(PLUGIN_NAME, plugin), ("sample", _SamplePlugin())],
        builtins=False,
    )
    out = tmp_path / "written"
    source = tmp_path / "sample"  # the sample plugin reads nothing; the output is not inside it
    source.mkdir(exist_ok=True)
    written = convert(
        source,
        out,
        from_format="segconvert-sample",
        to_format=format_name,
        registry=registry,
        jobs=1,
        mode=mode,
        options=options,
    )
    assert written.exit_code == 0, f"export failed: {written.errors}"
    dataset = registry.importer(format_name).open(out, dict(options or {}))
    samples = list(dataset)
    assert len(samples) == 1, f"expected 1 item back, got {len(samples)}"
    (back,) = samples
    back.check()
    _, original = sample_dataset()
    original = _consolidated(original, mode)
    assert (back.height, back.width) == (original.height, original.width), "image size changed"
    assert partition(back.mask) == partition(original.mask), "pixels are grouped differently"
    for index, segment in {s.index: s for s in original.segments}.items():
        pixel = tuple(np.argwhere(original.mask == index)[0])
        returned = next(s for s in back.segments if s.index == back.mask[pixel])
        assert returned.is_void == segment.is_void, f"void changed at {pixel}"
        if not segment.is_void:
            assert returned.label == segment.label, (
                f"{segment.label!r} came back {returned.label!r}"
            )
    return back


def _consolidated(sample: Sample, mode: str) -> Sample:
    from segconvert.transforms import consolidate

    if mode == "panoptic":
        return sample
    return consolidate(sample, mode, frozenset({1, 3}), "void")


def check_rejects(plugin: object, format_name: str, bad_input: Path) -> list[dict[str, Any]]:
    """Reading ``bad_input`` must fail cleanly: a :class:`SegconvertError` for the whole input,
    or per-item errors with a rule and a message -- never another exception. Returns the
    per-item errors (empty when the input was refused as a whole)."""
    registry = registry_with(plugin)
    try:
        dataset = registry.importer(format_name).open(bad_input, {})
    except SegconvertError:
        return []
    errors = []
    assert dataset.loader is not None
    for ref in dataset.items:
        try:
            dataset.loader(ref, dataset.context).check()
        except SegconvertError as exc:
            record = exc.to_record() if hasattr(exc, "to_record") else {"message": str(exc)}
            assert record.get("message"), "an error without a message"
            errors.append(record)
    assert errors, f"{format_name} accepted {bad_input} without a single error"
    return errors


def check_documents(schema_name: str, documents: list[Any]) -> None:
    """Every document matches segconvert's schema ``schema_name`` (see ``schemas/``)."""
    for number, document in enumerate(documents):
        found = schemas.problems(schema_name, document)
        assert not found, f"document {number}: {found[:3]}"


def check_nucleus_output(folder: Path) -> None:
    """A Nucleus output folder is valid: every line, taxonomy and mask (``segconvert validate``)."""
    from segconvert.validate import validate_dataset

    lines = [json.loads(line) for line in (folder / "annotations.jsonl").read_text().splitlines()]
    check_documents(schemas.NUCLEUS_ANNOTATION, lines)
    checked, problems = validate_dataset(folder, "nucleus", jobs=1)
    assert not problems, problems[:5]
