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

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import schemas
from segconvert.descriptors import ExportContext, Exporter, Importer
from segconvert.errors import ItemError, SegconvertError
from segconvert.executors import run_items
from segconvert.hookspecs import hookimpl
from segconvert.items import ItemJob, ItemStatus
from segconvert.manager import BUILTIN_PLUGINS
from segconvert.model import Category, Dataset, MetaKey, RejectedItem, Sample, Segment
from segconvert.plan import plan_conversion
from segconvert.registry import Registry, build_registry
from segconvert.run import run_plan

PLUGIN_NAME = "plugin-under-test"


def registry_with(plugin: object, *, builtins: bool = True) -> Registry:
    """A registry holding ``plugin`` (and the built-in formats unless ``builtins=False``),
    never other installed plugins. A built-in format given as ``plugin`` is registered once,
    as the plugin under test."""
    is_builtin = getattr(plugin, "__name__", None) in BUILTIN_PLUGINS
    return build_registry(
        load_third_party=False,
        extra_plugins=[(PLUGIN_NAME, plugin)],
        builtins=builtins and not is_builtin,
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


WORKER_START_METHOD = "spawn"
"""How the kit starts worker processes: ``spawn``, the default on macOS and Windows (and on
Linux from Python 3.14), where everything sent to a worker must pickle."""


def check_picklable(value: Any, what: str) -> None:
    """``value`` survives pickling (a worker process receives it that way), else an
    ``AssertionError`` saying what to change."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception as exc:
        raise AssertionError(
            f"{what} does not pickle, so it cannot reach a worker process under the "
            f"{WORKER_START_METHOD!r} start method: {type(exc).__name__}: {exc}. Define "
            "functions at module level (no lambdas or closures) and keep contexts, references "
            "and records to plain data."
        ) from exc


def _keep_sample(sample: Sample, ctx: ExportContext) -> Sample:
    """A ``write_item`` that hands the sample back (to read a dataset through workers)."""
    return sample


def _read_in_workers(importer: Importer, folder: Path, options: dict[str, Any]) -> list[Sample]:
    """Every sample of ``folder`` as ``importer`` loads it in spawned worker processes."""
    dataset = importer.open(folder, options)
    assert dataset.loader is not None
    refs = list(dataset.items)
    check_picklable(importer.load, f"{importer.name}: the importer's load")
    check_picklable(dataset.context, f"{importer.name}: the Dataset.context scan returned")
    for ref in refs:
        check_picklable(ref, f"{importer.name}: the item reference {ref!r}")
    context = ExportContext(output=folder, categories=tuple(dataset.categories))
    job = ItemJob(dataset.loader, dataset.context, _keep_sample, context)
    samples = []
    for result in run_items(job, refs, 2, WORKER_START_METHOD):
        assert result.status is ItemStatus.OK, (
            f"{importer.name} failed to read back: {result.error}"
        )
        samples.append(result.record)
    return samples


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

    Both directions run as production does: per-item work in worker processes started with
    ``spawn``, so references, contexts, records and the per-item functions must pickle (each
    is checked first, with a message saying which one does not).

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
    plan = plan_conversion(
        source,
        out,
        from_format="segconvert-sample",
        to_format=format_name,
        registry=registry,
        mode=mode,
        options=options,
    )
    check_picklable(plan.exporter.write_item, f"{format_name}: the exporter's write_item")
    check_picklable(plan.context, f"{format_name}: the ExportContext (its options and metadata)")
    _, sample = sample_dataset()
    probe = dataclasses.replace(plan.context, output=tmp_path / "probe")  # not the run's output
    check_picklable(plan.exporter.write_item(plan.transform.apply(sample), probe),
                    f"{format_name}: the record write_item returned")  # fmt: skip
    written = run_plan(plan, jobs=2, start_method=WORKER_START_METHOD)
    assert written.exit_code == 0, f"export failed: {written.errors}"
    samples = _read_in_workers(registry.importer(format_name), out, dict(options or {}))
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
    importer = registry.importer(format_name)
    try:
        dataset = importer.open(bad_input, {})
    except SegconvertError:
        return []
    except Exception as exc:
        raise AssertionError(_unclean(format_name, "scan", bad_input, exc)) from exc
    errors: list[dict[str, Any]] = []
    assert dataset.loader is not None
    for ref in dataset.items:
        if isinstance(ref, RejectedItem):
            errors.append(ref.error.to_record())
            continue
        try:
            dataset.loader(ref, dataset.context).check()
        except SegconvertError as exc:
            record = exc.to_record() if isinstance(exc, ItemError) else {"message": str(exc)}
            assert record.get("message"), f"{format_name}: an error without a message ({ref!r})"
            errors.append(record)
        except Exception as exc:
            raise AssertionError(_unclean(format_name, f"load of {ref!r}", bad_input, exc)) from exc
    assert errors, f"{format_name} accepted {bad_input} without a single error"
    return errors


def _unclean(format_name: str, stage: str, bad_input: Path, exc: Exception) -> str:
    return (
        f"{format_name}: {stage} raised {type(exc).__name__}: {exc} on {bad_input}; raise "
        "InputError for an unreadable input, ItemError (or yield a RejectedItem) for one bad item"
    )


def check_documents(schema_name: str, documents: list[Any]) -> None:
    """Every document matches segconvert's schema ``schema_name`` (see ``schemas/``)."""
    for number, document in enumerate(documents):
        found = schemas.problems(schema_name, document)
        assert not found, f"document {number}: {found[:3]}"


def check_nucleus_output(folder: Path) -> None:
    """A Nucleus output folder is valid: every line, taxonomy and mask (``segconvert validate``)."""
    from segconvert.validate import validate_dataset

    lines = [json.loads(line) for line in (folder / "annotations.jsonl").read_text().splitlines()]
    check_documents("nucleus-annotation", lines)
    checked, problems = validate_dataset(folder, "nucleus", jobs=1)
    assert not problems, problems[:5]
