"""The plan stage: everything decided and checked before the first item is touched.

:func:`plan_conversion` resolves the formats, splits and checks the options, scans the source
(categories and the lazy list of items), applies the label map, builds the transform and the
export context, and runs every dataset-level check -- the hub's category checks and the
exporter's own ``check_dataset`` -- so a bad category colour or taxonomy is refused before any
output exists. It writes nothing; :mod:`segconvert.run` does the rest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segconvert import storage
from segconvert.blame import blame
from segconvert.descriptors import ExportContext, Exporter, Importer, Option
from segconvert.errors import UsageError
from segconvert.journal import has_journal
from segconvert.model import Dataset, check_categories
from segconvert.ownership import check_output
from segconvert.registry import Registry, build_registry
from segconvert.subset import Subset
from segconvert.transforms import (
    LabelMap,
    Mode,
    OverflowPolicy,
    Transform,
    parse_mode,
    parse_overflow_policy,
)


@dataclass(frozen=True)
class ConversionPlan:
    """A conversion fully decided and checked; :func:`segconvert.run.run_plan` carries it out."""

    source: Path
    output: Path
    importer: Importer
    exporter: Exporter
    importer_provider: str
    """How messages name the plugin behind the importer."""
    exporter_provider: str
    """How messages name the plugin behind the exporter."""
    dataset: Dataset
    context: ExportContext
    transform: Transform
    import_options: Mapping[str, Any]
    resume: bool
    params: Mapping[str, Any]
    """What identifies this conversion for ``--resume`` (source, formats, options, transform)."""
    subset: Subset = Subset()
    """Which items to convert (``--limit``, ``--items``); everything by default."""
    overwrite: bool = False
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    """fsspec options for URL sources and outputs (``--storage-option``)."""


def split_options(
    importer: Importer,
    exporter: Exporter,
    options: Mapping[str, Any] | None,
    registry: Registry | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one options mapping into the importer's and the exporter's, defaults filled in.

    Keys may be given kebab- or snake-case. A key neither format takes is a usage error
    naming the formats (of ``registry``) that do take it.
    """
    given = {k.replace("-", "_"): v for k, v in (options or {}).items() if v is not None}
    known_import = {o.key: o for o in importer.options}
    known_export = {o.key: o for o in exporter.options}
    unknown = sorted(set(given) - set(known_import) - set(known_export))
    if unknown:
        name = unknown[0].replace("_", "-")
        takers = registry.takers(name) if registry is not None else []
        where = (
            "; it is an option of " + ", ".join(f"{t.format} ({t.side.value})" for t in takers)
            if takers
            else ""
        )
        raise UsageError(
            f"--{name} is not an option of {importer.name} (import) or "
            f"{exporter.name} (export){where}"
        )
    check_exclusions([*importer.options, *exporter.options], given)
    return _with_defaults(known_import, given), _with_defaults(known_export, given)


def check_exclusions(options: Iterable[Option], given: Mapping[str, Any]) -> None:
    """Refuse two given options that exclude each other (``Option.excludes``)."""
    for option in options:
        if given.get(option.key) in (None, False):
            continue
        for other in option.excludes:
            if given.get(other.replace("-", "_")) not in (None, False):
                raise UsageError(f"--{option.name} and --{other} cannot be used together")


def format_options(
    descriptor: Importer | Exporter, options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The options of one format, defaults filled in; a key it does not take is a usage error."""
    given = {k.replace("-", "_"): v for k, v in (options or {}).items() if v is not None}
    known = {o.key: o for o in descriptor.options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(f"option(s) {names} not accepted by format {descriptor.name!r}")
    check_exclusions(descriptor.options, given)
    return _with_defaults(known, given)


def _with_defaults(known: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for key, option in known.items():
        value = given.get(key, option.default)
        if option.choices and value is not None and value not in option.choices:
            raise UsageError(
                f"--{option.name} must be one of {', '.join(option.choices)}, not {value!r}"
            )
        values[key] = value
    return values


def _check_output_names(exporter: Exporter, options: Mapping[str, Any], output: Path) -> None:
    """Every name the command line gives an output file (options named ``*-name``, such as
    ``--json-name``) must stay inside the output folder."""
    for option in exporter.options:
        value = options.get(option.key)
        if option.key.endswith("_name") and isinstance(value, str):
            storage.contained_name(output, value, what=f"--{option.name}")


def _check_requirements(*descriptors: Importer | Exporter) -> None:
    for descriptor in descriptors:
        missing = descriptor.missing_requirements()
        if missing:
            raise UsageError(f"format {descriptor.name!r} needs {', '.join(missing)} installed")


def plan_conversion(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    to_format: str,
    from_format: str | None = None,
    options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    registry: Registry | None = None,
    mode: Mode | str = Mode.PANOPTIC,
    label_map: str | os.PathLike[str] | LabelMap | None = None,
    on_overflow: OverflowPolicy | str = OverflowPolicy.ERROR,
    void_label: str | None = None,
    subset: Subset | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ConversionPlan:
    """Decide and check a conversion (the arguments are those of :func:`segconvert.convert`;
    ``subset`` is its ``limit`` and ``items``).

    Raises:
        SegconvertError: anything dataset-level that is wrong, before any output is written.
    """
    storage.real_folder.cache_clear()  # folders are resolved afresh for every plan
    source_path = storage.location(source, storage_options)
    output_path = storage.location(output, storage_options)
    registry = registry or build_registry()
    if from_format:
        importer = registry.importer(from_format)
        registry.check_kind(importer, source_path)
    else:
        importer = registry.detect(source_path)
    exporter = registry.exporter(to_format)
    import_options, export_options = split_options(importer, exporter, options, registry)
    _check_requirements(importer, exporter)
    _check_output_names(exporter, export_options, output_path)
    if not source_path.exists():
        raise UsageError(f"source {source_path} does not exist")
    check_output(output_path, source_path, overwrite, resume, has_journal=has_journal)
    importer_provider = registry.describe_importer_provider(importer.name)
    with blame(importer_provider, importer.name, "scan"):
        dataset = importer.open(source_path, import_options)
    return plan_dataset(
        dataset,
        source_path,
        output_path,
        importer=importer,
        exporter=exporter,
        importer_provider=importer_provider,
        exporter_provider=registry.describe_exporter_provider(exporter.name),
        import_options=import_options,
        export_options=export_options,
        resume=resume,
        mode=mode,
        label_map=label_map,
        on_overflow=on_overflow,
        void_label=void_label,
        subset=subset,
        overwrite=overwrite,
        storage_options=storage_options,
    )


def plan_dataset(
    dataset: Dataset,
    source_path: Path,
    output_path: Path,
    *,
    importer: Importer,
    exporter: Exporter,
    importer_provider: str,
    exporter_provider: str,
    import_options: Mapping[str, Any],
    export_options: Mapping[str, Any],
    resume: bool = False,
    mode: Mode | str = Mode.PANOPTIC,
    label_map: str | os.PathLike[str] | LabelMap | None = None,
    on_overflow: OverflowPolicy | str = OverflowPolicy.ERROR,
    void_label: str | None = None,
    subset: Subset | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> ConversionPlan:
    """The dataset-level half of :func:`plan_conversion`, for a dataset already opened (or
    built in memory, as :func:`segconvert.write` does): label map, transform, export context,
    the category checks and the exporter's ``check_dataset``."""
    subset = subset or Subset()
    transform = Transform(
        parse_mode(mode), parse_overflow_policy(on_overflow), exporter.max_segments, void_label
    )
    mapping = (
        label_map
        if label_map is None or isinstance(label_map, LabelMap)
        else LabelMap.load(label_map)
    )
    check_categories(dataset.categories)
    transform, categories = transform.for_dataset(dataset.categories, mapping)
    context = ExportContext(
        output=output_path,
        categories=tuple(categories),
        options=export_options,
        metadata=dataset.metadata,
        void_label=transform.effective_void_label,
    )
    if exporter.check_dataset:
        with blame(exporter_provider, exporter.name, "check_dataset"):
            exporter.check_dataset(context)
    params = {
        "source": str(source_path.resolve()),
        "from": importer.name,
        "to": exporter.name,
        "options": {**import_options, **export_options},
        "mode": transform.mode.value,
        "label_map": str(label_map) if label_map is not None else None,
        "on_overflow": transform.on_overflow.value,
        "void_label": void_label,
        "limit": subset.limit,
        "items": sorted(subset.reference_ids) if subset.reference_ids is not None else None,
    }
    return ConversionPlan(
        source=source_path,
        output=output_path,
        importer=importer,
        exporter=exporter,
        importer_provider=importer_provider,
        exporter_provider=exporter_provider,
        dataset=dataset,
        context=context,
        transform=transform,
        import_options=import_options,
        resume=resume,
        params=params,
        subset=subset,
        overwrite=overwrite,
        storage_options=dict(storage_options or {}),
    )
