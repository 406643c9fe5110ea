"""Reading and writing datasets from Python: :func:`open` and :func:`write`.

``segconvert.open(source)`` reads any dataset a format plugin understands into the hub and
iterates its :class:`~segconvert.model.Sample` s one at a time (nothing holds every mask).
An item that cannot be read does not stop the iteration: it is recorded in
:attr:`OpenDataset.errors` and the next one follows (or, with ``errors="raise"``, its
:class:`~segconvert.errors.ItemError` is raised).

``segconvert.write(samples, output, format=...)`` writes samples a script built itself through
the same exporters, checks and reports as a conversion.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from segconvert.coco import categories_from_coco
from segconvert.descriptors import ExportContext, Importer
from segconvert.errors import ItemError, UsageError
from segconvert.executors import run_items
from segconvert.items import ItemJob, ItemStatus, unique_references
from segconvert.model import Category, Dataset, ItemRef, RejectedItem, Sample, reference_id
from segconvert.ownership import check_output
from segconvert.plan import format_options, plan_dataset
from segconvert.registry import Registry, build_registry
from segconvert.run import ConversionReport, run_plan
from segconvert.subset import Subset

Source = str | os.PathLike[str]
"""Where a dataset is: a local path (``str`` or ``PathLike``) or a ``file://`` URL."""
ErrorPolicy = Literal["collect", "raise"]


def source_path(source: Source) -> Path:
    """The local path of ``source`` (a path, a ``str`` or a ``file://`` URL).

    Other URL schemes are refused with a usage error until the storage layer reads them.
    """
    text = os.fspath(source)
    if not isinstance(text, str):
        raise UsageError(f"source must be a path or a URL, not {type(source).__name__}")
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    scheme, separator, _ = text.partition("://")
    if separator and scheme.isalnum():
        raise UsageError(f"cannot read {text}: {scheme}:// sources are not supported here")
    return Path(text)


@dataclass
class OpenDataset:
    """A dataset opened for reading: its categories, metadata and a stream of samples.

    Iterating yields every good :class:`Sample` (checked against the hub's invariants) in
    source order; each bad item is appended to :attr:`errors` as the
    :class:`~segconvert.errors.ItemError` that stopped it (``errors="raise"``: raised instead).
    Iterate again to read the dataset again; :attr:`errors` then starts afresh.
    """

    format: str
    """The importer that read it, e.g. ``"coco-panoptic"``."""
    source: Path
    dataset: Dataset
    subset: Subset = field(default_factory=Subset)
    on_error: ErrorPolicy = "collect"
    errors: list[ItemError] = field(default_factory=list)
    """The items of the last iteration that could not be read."""
    reopen: Callable[[], Dataset] | None = field(default=None, repr=False)
    """Scans the source again: an importer's listing may be a one-pass stream."""
    _listed: bool = field(default=False, repr=False)

    @property
    def categories(self) -> list[Category]:
        """The dataset's taxonomy."""
        return self.dataset.categories

    @property
    def metadata(self) -> dict[str, Any]:
        """Dataset-level facts from the source (e.g. COCO ``info`` and ``licenses``)."""
        return self.dataset.metadata

    @property
    def size(self) -> int | None:
        """How many items the source lists, when known without reading them (else ``None``)."""
        return self.dataset.size if self.subset.is_everything else None

    def references(self) -> Iterator[ItemRef]:
        """The item references, subset applied and repeated reference ids rejected.

        Each call lists the source afresh (a second pass scans it again)."""
        if self._listed and self.reopen is not None:
            self.dataset = self.reopen()
        self._listed = True
        return unique_references(self.subset.select(self.dataset.items))

    def reference_ids(self) -> Iterator[str]:
        """The reference id of every item, without loading any."""
        for ref in self.references():
            ref_id = reference_id(ref)
            if ref_id is not None:
                yield ref_id

    def load(self, ref: ItemRef) -> Sample:
        """One checked sample from its reference; raises :class:`ItemError` when it is bad."""
        try:
            sample = self.dataset.load(ref)
            sample.check()
        except ItemError:
            raise
        except Exception as exc:  # a plugin's bug in one item must not hide the others
            raise ItemError(
                f"internal error: {type(exc).__name__}: {exc}",
                rule="internal-error",
                item=reference_id(ref),
            ) from exc
        return sample

    def __iter__(self) -> Iterator[Sample]:
        self.errors = []
        for ref in self.references():
            try:
                sample = self.load(ref)
            except ItemError as error:
                if self.on_error == "raise":
                    raise
                self.errors.append(error)
                continue
            yield sample

    def map_items(
        self,
        work: Callable[[Sample, ExportContext], Any],
        *,
        jobs: int | None = None,
        output: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """``(status, result)`` of ``work(sample, context)`` for every item, in order, with
        ``jobs`` worker processes (``None``: every core): ``("ok", value)`` or
        ``("error", error record)``. ``work`` and ``options`` must pickle when ``jobs > 1``."""
        assert self.dataset.loader is not None
        context = ExportContext(
            output=output or self.source,
            categories=tuple(self.categories),
            options=dict(options or {}),
            metadata=self.metadata,
        )
        job = ItemJob(self.dataset.loader, self.dataset.context, work, context)
        for result in run_items(job, self.references(), jobs):
            if result.status is ItemStatus.OK:
                yield ItemStatus.OK.value, result.record
            else:
                yield ItemStatus.ERROR.value, result.error

    def get(self, wanted: str) -> Sample:
        """The sample whose reference id is ``wanted``; :class:`ItemError` if absent or bad."""
        for ref in self.references():
            if reference_id(ref) == wanted:
                return self.load(ref)
        raise ItemError(
            f"item {wanted!r} is not in {self.source}", rule="item-not-found", item=wanted
        )


def open(
    source: Source,
    format: str | None = None,
    *,
    limit: int | None = None,
    items: str | os.PathLike[str] | Collection[str] | None = None,
    errors: ErrorPolicy = "collect",
    registry: Registry | None = None,
    **options: Any,
) -> OpenDataset:
    """Open the dataset at ``source`` for reading.

    Args:
        source: a file or folder (``str``, ``PathLike`` or ``file://`` URL).
        format: importer name; detected from ``source`` when omitted.
        limit: read only the first ``limit`` items.
        items: read only these reference ids (a collection, or a file with one per line).
        errors: ``"collect"`` (default): bad items go to :attr:`OpenDataset.errors` and
            iteration goes on; ``"raise"``: the first bad item's error is raised.
        registry: the formats to use; by default built-ins plus installed plugins.
        **options: the importer's options, e.g. ``png_dir=...`` (see ``segconvert formats``).

    Raises:
        SegconvertError: when the dataset as a whole cannot be read (unknown format,
            missing file, malformed JSON); per-item problems never raise here.

    >>> dataset = open("fixtures/coco-panoptic/panopticapi/panoptic_examples.json")
    ... # doctest: +SKIP
    >>> [sample.reference_id for sample in dataset]  # doctest: +SKIP
    ['000000142238', '000000439180']
    """
    if errors not in ("collect", "raise"):
        raise UsageError(f"errors must be 'collect' or 'raise', not {errors!r}")
    path = source_path(source)
    if not path.exists():
        raise UsageError(f"source {path} does not exist")
    registry = registry or build_registry()
    importer: Importer = registry.importer(format) if format else registry.detect(path)
    missing = importer.missing_requirements()
    if missing:
        raise UsageError(f"format {importer.name!r} needs {', '.join(missing)} installed")
    subset = Subset.of(limit, items)
    values = format_options(importer, options)
    return OpenDataset(
        importer.name,
        path,
        importer.open(path, values),
        subset,
        errors,
        reopen=lambda: importer.open(path, values),
    )


IN_MEMORY = "<samples>"
"""The source a report names for samples given to :func:`write`."""


def _sample_itself(sample: Sample, context: Any) -> Sample:
    """The loader of samples built in memory: the reference is the sample."""
    if not isinstance(sample, Sample):
        raise ItemError(
            f"expected a segconvert.Sample, got {type(sample).__name__}", rule="not-a-sample"
        )
    return sample


def _no_scan(path: Path, options: Mapping[str, Any]) -> Dataset:
    raise UsageError("samples given to segconvert.write cannot be scanned from a path")


SAMPLES_IMPORTER = Importer(
    name="samples",
    scan=_no_scan,
    load=_sample_itself,
    description="samples built in memory, given to segconvert.write",
)
"""The importer a report names for samples given to :func:`write` (it is not registered)."""


def _as_category(category: Category | Mapping[str, Any]) -> Category:
    if isinstance(category, Category):
        return category
    return categories_from_coco([dict(category)], "categories")[0]


def write(
    samples: Iterable[Sample],
    output: Source,
    *,
    format: str,
    categories: Iterable[Category | Mapping[str, Any]],
    options: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    jobs: int = 1,
    mode: str = "panoptic",
    void_label: str | None = None,
    on_overflow: str = "error",
    registry: Registry | None = None,
) -> ConversionReport:
    """Write ``samples`` into the folder ``output`` as ``format``.

    Every sample is checked and written as in a conversion: a bad one is reported in
    ``report.errors`` (and ``OUT/segconvert-errors.jsonl``), the others are written.

    Args:
        samples: the samples, e.g. a generator (consumed once, one at a time).
        output: the folder to write; must be empty unless ``overwrite``.
        format: exporter name, e.g. ``"nucleus"``, ``"coco-panoptic"``, ``"cityscapes"``.
        categories: the taxonomy: :class:`Category` objects or COCO category dicts.
        options: the exporter's options (``{"json_name": "val"}``).
        metadata: dataset-level facts for the exporter (e.g. COCO ``info``, ``licenses``).
        overwrite: write into a non-empty output folder.
        jobs: worker processes (default 1: in-process; more pickles samples to workers, so
            call it under ``if __name__ == "__main__":``).
        mode, void_label, on_overflow: as for :func:`segconvert.convert`.
        registry: the formats to use; by default built-ins plus installed plugins.

    Returns:
        The :class:`~segconvert.convert.ConversionReport`; ``exit_code`` 0 when every sample
        was written.
    """
    output_path = source_path(output)
    registry = registry or build_registry()
    exporter = registry.exporter(format)
    missing = exporter.missing_requirements()
    if missing:
        raise UsageError(f"format {exporter.name!r} needs {', '.join(missing)} installed")
    export_options = format_options(exporter, options)
    check_output(output_path, None, overwrite)
    dataset = Dataset(
        categories=[_as_category(c) for c in categories],
        items=_checked_samples(samples),
        loader=_sample_itself,
        metadata=dict(metadata or {}),
    )
    plan = plan_dataset(
        dataset,
        Path(IN_MEMORY),
        output_path,
        importer=SAMPLES_IMPORTER,
        exporter=exporter,
        importer_provider="segconvert.write",
        exporter_provider=registry.describe_exporter_provider(exporter.name),
        import_options={},
        export_options=export_options,
        mode=mode,
        on_overflow=on_overflow,
        void_label=void_label,
        overwrite=overwrite,
    )
    return run_plan(plan, jobs=jobs)


def _checked_samples(samples: Iterable[Sample]) -> Iterator[Sample | RejectedItem]:
    """Each sample, or a rejection for anything that is not one (named by its position)."""
    if isinstance(samples, Sample):
        raise UsageError("samples must be an iterable of Sample, not one Sample")
    for position, sample in enumerate(samples):
        if isinstance(sample, Sample):
            yield sample
        else:
            yield RejectedItem(
                ItemError(
                    f"item {position} is a {type(sample).__name__}, not a segconvert.Sample",
                    rule="not-a-sample",
                    item=f"#{position}",
                )
            )
