"""The ``segconvert`` command line: parsing and printing only; the work is in the API.

Exit codes: 0 every item converted; 3 some items failed (the rest written, error report
printed); 1 nothing could be done; 2 usage error.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from segconvert import schemas
from segconvert.convert import ConversionReport, convert
from segconvert.descriptors import Option
from segconvert.errors import SegconvertError
from segconvert.executors import EXECUTORS, Interrupted, signals_interrupt
from segconvert.inspect_commands import add_inspection_commands, progress_bar, subset_options
from segconvert.manager import third_party_disabled_by_env
from segconvert.registry import Registry, build_registry
from segconvert.transforms import MODES, OVERFLOW_POLICIES
from segconvert.validate import validate_dataset

PLANNED_SHOWN = 20
"""How many planned items a dry run prints (``--json`` lists every one)."""

_CLICK_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "path": click.Path(),
}


def _click_option(option: Option) -> Callable[[Any], Any]:
    if option.type == "flag":
        return click.option(
            f"--{option.name}", option.key, is_flag=True, default=None, help=option.help
        )
    kind = click.Choice(option.choices) if option.choices else _CLICK_TYPES[option.type]
    return click.option(f"--{option.name}", option.key, type=kind, default=None, help=option.help)


def _run_options(registry: Registry) -> Callable[[Any], Any]:
    """Decorate a conversion command with the shared run options and every format option."""

    def decorate(command: Any) -> Any:
        for option in reversed(registry.all_options()):
            command = _click_option(option)(command)
        for decorator in reversed(
            [
                click.option(
                    "--jobs",
                    "-j",
                    type=click.IntRange(min=1),
                    default=None,
                    help="Worker processes (default: every core; 1 = in-process).",
                ),
                click.option(
                    "--executor",
                    type=click.Choice(EXECUTORS),
                    default="local",
                    show_default=True,
                    help="Where items are converted: this machine (--jobs processes) or a "
                    "Dask cluster (needs segconvert[dask]).",
                ),
                click.option(
                    "--scheduler",
                    metavar="tcp://HOST:PORT",
                    help="With --executor dask: join this scheduler (default: start a local "
                    "cluster of --jobs workers).",
                ),
                click.option(
                    "--item-timeout",
                    type=click.FloatRange(min=0, min_open=True),
                    metavar="SECONDS",
                    help="Stop an item that takes longer and report it (item-timeout).",
                ),
                click.option("--fail-fast", is_flag=True, help="Stop at the first failing item."),
                click.option(
                    "--overwrite", is_flag=True, help="Write into a non-empty output folder."
                ),
                click.option(
                    "--resume",
                    is_flag=True,
                    help="Continue an interrupted conversion into OUTPUT, reusing "
                    "the items it finished.",
                ),
                click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors."),
                click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
                click.option(
                    "--progress/--no-progress",
                    default=None,
                    help="Progress bar (default: on a terminal).",
                ),
                click.option(
                    "--mode",
                    type=click.Choice(MODES),
                    default="panoptic",
                    show_default=True,
                    help="One Segment per instance and stuff region (panoptic); "
                    "stuff and void as one background (instance); one per class "
                    "(semantic).",
                ),
                click.option(
                    "--label-map",
                    type=click.Path(exists=True, dir_okay=False),
                    help="JSON renaming, merging and dropping categories.",
                ),
                click.option(
                    "--on-overflow",
                    type=click.Choice(OVERFLOW_POLICIES),
                    default="error",
                    show_default=True,
                    help="An item with more segments than the target holds (Nucleus: "
                    "256): fail it, fall back to semantic, or skip it.",
                ),
                click.option(
                    "--void-label",
                    help="Label of the void Segment (default 'void'; "
                    "'background' in instance mode).",
                ),
                *subset_options(),
                click.option(
                    "--dry-run",
                    is_flag=True,
                    help="Scan, plan and check everything dataset-level; print what would "
                    "be written; write nothing.",
                ),
            ]
        ):
            command = decorator(command)
        return command

    return decorate


def _run_conversion(
    registry: Registry,
    source: str,
    output: str,
    from_format: str | None,
    to_format: str,
    params: dict[str, Any],
) -> None:
    jobs = params.pop("jobs")
    execution = {k: params.pop(k) for k in ("executor", "scheduler", "item_timeout")}
    fail_fast = params.pop("fail_fast")
    overwrite = params.pop("overwrite")
    resume = params.pop("resume")
    quiet = params.pop("quiet")
    as_json = params.pop("as_json")
    show_progress = params.pop("progress")
    transform_options = {
        k: params.pop(k) for k in ("mode", "label_map", "on_overflow", "void_label")
    }
    subset_and_plan = {
        "limit": params.pop("limit"),
        "items": params.pop("items_file"),
        "dry_run": params.pop("dry_run"),
    }
    if show_progress is None:
        show_progress = sys.stderr.isatty() and not quiet and not as_json
    progress, finish_progress = progress_bar("converting")

    try:
        with signals_interrupt():
            report = convert(
                source,
                output,
                from_format=from_format,
                to_format=to_format,
                options=params,
                jobs=jobs,
                fail_fast=fail_fast,
                overwrite=overwrite,
                resume=resume,
                registry=registry,
                progress=progress if show_progress else None,
                **transform_options,
                **execution,
                **subset_and_plan,
            )
    finally:
        finish_progress()
    _print_report(report, quiet=quiet, as_json=as_json)
    sys.exit(report.exit_code)


def _print_report(report: ConversionReport, *, quiet: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_json()))
    elif not quiet:
        click.echo(report.summary())
        if report.dry_run:
            for reference_id in report.planned[:PLANNED_SHOWN]:
                click.echo(f"  would write {reference_id}")
            if len(report.planned) > PLANNED_SHOWN:
                more = len(report.planned) - PLANNED_SHOWN
                click.echo(f"  ... and {more} more (--json lists all)")
    if report.failed and not as_json:
        shown = report.errors[:5]
        for error in shown:
            click.echo(f"  {error['item']}: [{error['rule']}] {error['message']}", err=True)
        if report.failed > len(shown):
            click.echo(f"  ... and {report.failed - len(shown)} more", err=True)
        if report.error_report:
            click.echo(f"error report: {report.error_report}", err=True)


def make_cli(registry: Registry) -> click.Group:
    """Build the click group for ``registry`` (format options become command options)."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="segconvert")
    @click.option("--traceback", is_flag=True, help="Show the full traceback of errors.")
    @click.option(
        "--no-plugins",
        is_flag=True,
        help="Load built-in formats only (also: SEGCONVERT_DISABLE_PLUGINS=1).",
    )
    def cli(traceback: bool, no_plugins: bool) -> None:
        """Convert segmentation datasets to and from Scale Nucleus, losslessly and validated."""

    run_options = _run_options(registry)

    @cli.command("convert")
    @click.argument("source", type=click.Path(exists=True))
    @click.argument("output", type=click.Path())
    @click.option("--from", "from_format", help="Source format (detected when omitted).")
    @click.option("--to", "to_format", required=True, help="Target format.")
    @run_options
    def convert_command(
        source: str, output: str, from_format: str | None, to_format: str, **params: Any
    ) -> None:
        """Convert SOURCE (file or folder) into the folder OUTPUT."""
        _run_conversion(registry, source, output, from_format, to_format, params)

    @cli.command("coco-to-nucleus")
    @click.argument("source", type=click.Path(exists=True))
    @click.argument("output", type=click.Path())
    @run_options
    def coco_to_nucleus(source: str, output: str, **params: Any) -> None:
        """COCO panoptic SOURCE (JSON or folder) -> Nucleus in OUTPUT."""
        _run_conversion(registry, source, output, "coco-panoptic", "nucleus", params)

    @cli.command("nucleus-to-coco")
    @click.argument("source", type=click.Path(exists=True))
    @click.argument("output", type=click.Path())
    @run_options
    def nucleus_to_coco(source: str, output: str, **params: Any) -> None:
        """Nucleus SOURCE (folder or annotations file) -> COCO panoptic in OUTPUT."""
        _run_conversion(registry, source, output, "nucleus", "coco-panoptic", params)

    @cli.command("formats")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def formats_command(as_json: bool) -> None:
        """List the formats: direction, aliases, provider, missing requirements."""
        rows: list[dict[str, Any]] = []
        for direction, entries in (
            ("import", registry.importers()),
            ("export", registry.exporters()),
        ):
            for entry in entries:
                d = entry.descriptor
                rows.append(
                    {
                        "name": d.name,
                        "direction": direction,
                        "aliases": list(d.aliases),
                        "provider": entry.provider.name,
                        "distribution": entry.provider.distribution,
                        "missing_requirements": d.missing_requirements(),
                        "installed": not d.missing_requirements(),
                        "description": d.description,
                    }
                )
        if as_json:
            schemas.validate(schemas.FORMATS_LISTING, rows)
            click.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            aliases = f" (aka {', '.join(row['aliases'])})" if row["aliases"] else ""
            missing = (
                f"  [needs {', '.join(row['missing_requirements'])}]"
                if row["missing_requirements"]
                else ""
            )
            click.echo(
                f"{row['name']:<16} {row['direction']:<7} {row['provider']}"
                f"{aliases}{missing}  {row['description']}"
            )

    @cli.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def plugins_command(as_json: bool) -> None:
        """List loaded plugins with the formats they provide, and plugins that failed."""
        provided: dict[str, list[str]] = {}
        for entry in registry.entries():
            names = provided.setdefault(entry.provider.name, [])
            if entry.descriptor.name not in names:
                names.append(entry.descriptor.name)
        loaded: list[dict[str, Any]] = [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "builtin": p.builtin,
                "formats": provided.get(p.name, []),
            }
            for p in registry.host.plugins.values()
        ]
        failed = [
            {"name": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
            for f in registry.failures
        ]
        if as_json:
            listing = {"plugins": loaded, "failed": failed, "problems": registry.problems}
            schemas.validate(schemas.PLUGINS_LISTING, listing)
            click.echo(json.dumps(listing, indent=2))
            return
        for p in loaded:
            origin = "built-in" if p["builtin"] else f"{p['distribution']} {p['version']}"
            click.echo(f"{p['name']:<28} {origin:<24} {', '.join(p['formats'])}")
        for f in failed:
            click.echo(f"{f['name']:<28} FAILED: {f['error']}")
        for problem in registry.problems:
            click.echo(f"refused: {problem}")

    @cli.command("validate")
    @click.argument("path", type=click.Path(exists=True))
    @click.option("--format", "format_name", required=True, help="Format of PATH.")
    @click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes (default: every core).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print problems as JSON lines.")
    def validate_command(path: str, format_name: str, jobs: int | None, as_json: bool) -> None:
        """Check an existing dataset; name the file, item and rule of every problem."""
        checked, problems = validate_dataset(path, format_name, registry=registry, jobs=jobs)
        for problem in problems:
            if as_json:
                click.echo(json.dumps(problem))
            else:
                where = " ".join(
                    str(x) for x in (problem.get("file"), problem.get("item")) if x is not None
                )
                click.echo(f"{where}: [{problem['rule']}] {problem['message']}")
        if not as_json:
            status = "valid" if not problems else f"{len(problems)} problem(s)"
            click.echo(f"{checked} item(s) checked: {status}", err=bool(problems))
        sys.exit(1 if problems else 0)

    add_inspection_commands(cli, registry, _click_option)
    registry.register_commands(cli)
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``segconvert`` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    no_plugins = "--no-plugins" in args or third_party_disabled_by_env()
    try:
        registry = build_registry(load_third_party=not no_plugins)
        for warning in registry.warnings():
            click.echo(f"segconvert: warning: {warning}", err=True)
        cli = make_cli(registry)
        cli.main(args=args, prog_name="segconvert", standalone_mode=False)
    except SegconvertError as exc:
        if show_traceback:
            traceback.print_exc()
        click.echo(f"segconvert: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Interrupted as stop:
        click.echo(
            f"segconvert: interrupted by {stop.signal_name}; rerun the same command with "
            "--resume to continue",
            err=True,
        )
        sys.exit(128 + stop.signal_number)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("segconvert: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
