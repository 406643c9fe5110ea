"""The looking commands -- ``info``, ``preview``, ``diff`` -- and the options they share with the
conversion commands (``--limit``, ``--items``, the progress bar). Parsing and printing only:
the work is in :mod:`segconvert.info`, :mod:`segconvert.preview` and :mod:`segconvert.diff`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from segconvert.cli_options import jobs_option, progress_option
from segconvert.descriptors import Option
from segconvert.diff import diff_datasets, record_lines
from segconvert.info import dataset_info
from segconvert.preview import preview_dataset
from segconvert.registry import Registry
from segconvert.terminal import progress_bar

Decorator = Callable[[Any], Any]


def subset_options() -> list[Decorator]:
    """``--limit N`` and ``--items FILE``: the subset options every item-streaming command takes."""
    return [
        click.option(
            "--limit",
            type=click.IntRange(min=0),
            default=None,
            help="Only the first N items.",
        ),
        click.option(
            "--items",
            "items_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Only the items whose reference ids FILE lists, one per line.",
        ),
    ]


def _shared(command: Any, registry: Registry, format_option: Callable[[Option], Decorator]) -> Any:
    """Subset, jobs, progress and every importer option."""
    seen: dict[str, Option] = {}
    for entry in registry.importers():
        for option in entry.descriptor.options:
            seen.setdefault(option.name, option)
    for option in reversed(list(seen.values())):
        command = format_option(option)(command)
    for decorator in reversed(
        [
            *subset_options(),
            jobs_option(),
            progress_option(),
        ]
    ):
        command = decorator(command)
    return command


def _progress_for(show: bool | None, quiet: bool, label: str) -> tuple[Any, Callable[[], None]]:
    if show is None:
        show = sys.stderr.isatty() and not quiet
    if not show:
        return None, lambda: None
    return progress_bar(label)


def add_inspection_commands(
    cli: click.Group, registry: Registry, format_option: Callable[[Option], Decorator]
) -> None:
    """Add ``info``, ``preview`` and ``diff`` to ``cli``."""

    @cli.command("info")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--from", "from_format", help="Format of PATH (detected when omitted).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def info_command(path: str, from_format: str | None, as_json: bool, **params: Any) -> None:
        """Counts of PATH: items, categories (thing/stuff) with instance and pixel counts,
        segments per image, void fraction, image sizes. Streamed: memory stays flat."""
        limit, items, jobs = params.pop("limit"), params.pop("items_file"), params.pop("jobs")
        progress, finish = _progress_for(params.pop("progress"), as_json, "counting")
        try:
            report = dataset_info(
                path,
                from_format,
                options=params,
                limit=limit,
                items=items,
                jobs=jobs,
                registry=registry,
                progress=progress,
            )
        finally:
            finish()
        if as_json:
            click.echo(json.dumps(report.to_json()))
        else:
            for line in report.lines():
                click.echo(line)
        sys.exit(0 if not report.failed else 3 if report.items else 1)

    info_command = _shared(info_command, registry, format_option)

    @cli.command("preview")
    @click.argument("path", type=click.Path(exists=True))
    @click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(),
        help="Folder for one PNG per item (with --grid: the contact sheet's file).",
    )
    @click.option("--from", "from_format", help="Format of PATH (detected when omitted).")
    @click.option(
        "--item", "item_ids", multiple=True, help="Render this reference id (repeatable)."
    )
    @click.option(
        "--grid", type=click.IntRange(min=1), help="One contact sheet of the first N items."
    )
    @click.option(
        "--images",
        type=click.Path(exists=True, file_okay=False),
        help="Folder of the photos: the mask is blended over each.",
    )
    @click.option(
        "--boundaries/--no-boundaries",
        default=True,
        show_default=True,
        help="Outline instances of one class where the taxonomy gives the colour.",
    )
    @click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
    def preview_command(
        path: str,
        output: str,
        from_format: str | None,
        item_ids: tuple[str, ...],
        grid: int | None,
        images: str | None,
        boundaries: bool,
        quiet: bool,
        **params: Any,
    ) -> None:
        """Render items of PATH as PNG: category colours, a legend, over the photo."""
        limit, items_file, jobs = params.pop("limit"), params.pop("items_file"), params.pop("jobs")
        progress_flag = params.pop("progress")
        if item_ids and items_file:
            raise click.UsageError("give --item or --items, not both")
        items: Any = list(item_ids) if item_ids else items_file
        progress, finish = _progress_for(progress_flag, quiet, "rendering")
        try:
            report = preview_dataset(
                path,
                output,
                from_format,
                options=params,
                items=items,
                limit=limit,
                grid=grid,
                images=images,
                boundaries=boundaries,
                jobs=jobs,
                registry=registry,
                progress=progress,
            )
        finally:
            finish()
        if not quiet:
            for file in report.files:
                click.echo(str(file))
            click.echo(f"{report.rendered} item(s) rendered, {len(report.errors)} failed")
        for error in report.errors:
            click.echo(f"  {error['item']}: [{error['rule']}] {error['message']}", err=True)
        sys.exit(report.exit_code)

    preview_command = _shared(preview_command, registry, format_option)

    @cli.command("diff")
    @click.argument("a", type=click.Path(exists=True))
    @click.argument("b", type=click.Path(exists=True))
    @click.option("--from-a", help="Format of A (detected when omitted).")
    @click.option("--from-b", help="Format of B (detected when omitted).")
    @click.option(
        "--strict-ids",
        is_flag=True,
        help="Renumbered instance ids are differences too (by default reported only).",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    @click.option(
        "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
    )
    def diff_command(
        a: str,
        b: str,
        from_a: str | None,
        from_b: str | None,
        strict_ids: bool,
        as_json: bool,
        limit: int | None,
        items_file: str | None,
        progress: bool | None,
    ) -> None:
        """Compare datasets A and B (any formats), item by item and pixel by pixel.

        Exit 0 only when identical; 1 when they differ."""
        callback, finish = _progress_for(progress, as_json, "comparing")
        identical = False
        try:
            for record in diff_datasets(
                a,
                b,
                from_a=from_a,
                from_b=from_b,
                strict_ids=strict_ids,
                limit=limit,
                items=items_file,
                registry=registry,
                progress=callback,
            ):
                if record["type"] == "summary":
                    identical = record["identical_datasets"]
                if as_json:
                    click.echo(json.dumps(record))
                else:
                    for line in record_lines(record, strict_ids):
                        click.echo(line)
        finally:
            finish()
        sys.exit(0 if identical else 1)

    for decorator in reversed(subset_options()):
        diff_command = decorator(diff_command)
