"""Typed descriptors that plugins return from their hooks.

A plugin does not do the work when its hook is called; it describes a format:
its name, the options it takes, and two small functions. The pipeline
(:mod:`segconvert.convert`) decides where those functions run -- in-process or in worker
processes -- so a plugin author gets parallelism for free by keeping the per-item
function (``load`` / ``write_item``) free of shared state.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from segconvert.detection import Confidence, Detection
from segconvert.errors import ItemError
from segconvert.model import DEFAULT_VOID_LABEL, Category, Dataset, ItemRef, Sample
from segconvert.schemas import Schema

OptionType = Literal["str", "path", "int", "flag", "choice"]
OPTION_TYPES: tuple[str, ...] = get_args(OptionType)
"""The option types the CLI knows how to parse."""


@dataclass(frozen=True)
class Option:
    """One option a format takes.

    ``name`` is kebab-case: it is ``--name`` on the command line and ``name_with_underscores``
    in the ``options`` mapping of the Python API.
    """

    name: str
    help: str
    type: OptionType = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    """Names of options that cannot be given together with this one (a usage error)."""

    @property
    def key(self) -> str:
        """The key of this option in an ``options`` mapping."""
        return self.name.replace("-", "_")


STRICT = Option(
    "strict",
    "Apply every check of `segconvert validate` while reading (stored areas and boxes, "
    "PNG ids = JSON ids, the emit profile of each document).",
    type="flag",
    default=False,
)
"""The declared validation strictness of an importer: an importer that can read strictly
lists this option; its ``scan`` then finds ``options["strict"]`` (``True`` under
``segconvert validate``). An importer that does not list it is never passed it."""


def _missing_modules(modules: Iterable[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class Importer:
    """Describes how to read one format into the hub.

    Attributes:
        name: kebab-case format name, e.g. ``"coco-panoptic"``.
        scan: ``scan(path, options) -> Dataset`` -- runs once, in the parent: reads what is
            dataset-wide (categories, the list of items) and returns a :class:`Dataset` whose
            ``items`` are cheap picklable references and whose ``context`` (picklable) is
            what ``load`` needs besides the reference.
        load: ``load(ref, context) -> Sample`` -- runs once per item, possibly in a worker:
            reads the item's files and returns a checked :class:`Sample`, or raises
            :class:`~segconvert.errors.ItemError`.
        description: one line for ``segconvert formats``.
        aliases: other accepted names.
        options: the options ``scan`` understands.
        detect: ``detect(path) -> Confidence | Detection | bool``: how sure this importer
            is that ``path`` is its format (see :mod:`segconvert.detection`; the most
            confident importer wins; ``True`` counts as ``LIKELY``).
        requires: importable module names this format needs beyond segconvert's own.
        check_documents: ``check_documents(path, options) -> Iterable[ItemError]``: schema
            checks of the format's aggregate documents, used by ``segconvert validate``.
        schemas: the JSON Schemas this format ships (files in its package's ``schemas/``
            folder); the registry registers them by name for the host.
    """

    name: str
    scan: Callable[[Path, Mapping[str, Any]], Dataset]
    load: Callable[[ItemRef, Any], Sample]
    description: str = ""
    aliases: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    detect: Callable[[Path], Confidence | Detection | bool] | None = None
    requires: tuple[str, ...] = ()
    check_documents: Callable[[Path, Mapping[str, Any]], Iterable[ItemError]] | None = None
    schemas: tuple[Schema, ...] = ()

    def open(self, path: Path, options: Mapping[str, Any]) -> Dataset:
        """Scan ``path`` and return its lazy :class:`Dataset`, wired to this importer's ``load``."""
        dataset = self.scan(path, options)
        dataset.loader = self.load
        return dataset

    def missing_requirements(self) -> list[str]:
        """The modules in ``requires`` that are not installed."""
        return _missing_modules(self.requires)

    @property
    def reads_strictly(self) -> bool:
        """Whether this importer declares validation strictness (lists :data:`STRICT`)."""
        return STRICT in self.options


@dataclass(frozen=True)
class ExportContext:
    """What an exporter's functions get besides the sample: picklable, sent to each worker once."""

    output: Path
    categories: tuple[Category, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    void_label: str = DEFAULT_VOID_LABEL


@dataclass(frozen=True)
class Exporter:
    """Describes how to write the hub out as one format.

    Attributes:
        name: kebab-case format name.
        write_item: ``write_item(sample, ctx) -> record`` -- runs once per item, possibly in a
            worker: writes the item's own files (atomically) and returns a small picklable,
            already validated record for the aggregate files, or raises
            :class:`~segconvert.errors.ItemError`.
        write_dataset: ``write_dataset(records, ctx) -> list[Path]`` -- runs once, in the
            parent, consuming the records of the items that succeeded, in input order; writes
            the aggregate files (validated, atomically) and returns the paths written.
        check_dataset: ``check_dataset(ctx)`` -- runs once in the parent, in the plan stage,
            before anything is written: validate everything dataset-level this exporter will
            write (taxonomy, category table, label table, option values) and raise a
            :class:`~segconvert.errors.SegconvertError` naming what is wrong, so a bad
            category never leaves partial output. Must not write.
        prepare: ``prepare(ctx)`` -- runs once in the parent before any item (make folders).
        max_segments: most segments one item may have (Nucleus: 256); the pipeline applies
            ``--on-overflow`` to items with more. ``None``: no limit.
        description, aliases, options, requires, schemas: as for :class:`Importer`.
        next_steps: ``next_steps(ctx) -> list[str]`` -- runs once after the dataset is
            written: what the user should do next (one line each), e.g. where to upload
            the masks; shown after the summary and in ``--json``'s ``next_steps``.
    """

    name: str
    write_item: Callable[[Sample, ExportContext], Any]
    write_dataset: Callable[[Iterable[Any], ExportContext], list[Path]]
    prepare: Callable[[ExportContext], None] | None = None
    check_dataset: Callable[[ExportContext], None] | None = None
    max_segments: int | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    requires: tuple[str, ...] = ()
    schemas: tuple[Schema, ...] = ()
    next_steps: Callable[[ExportContext], list[str]] | None = None

    def missing_requirements(self) -> list[str]:
        """The modules in ``requires`` that are not installed."""
        return _missing_modules(self.requires)
