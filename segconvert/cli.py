"""The ``segconvert`` command line: parsing and printing only; the work is in the API.

Exit codes: 0 every item converted; 3 some items failed (the rest written, error report
printed); 1 nothing could be done; 2 usage error.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from segconvert import executors, schemas
from segconvert.activity import listening_to_activity
from segconvert.cli_options import (
    FormatOptionsCommand,
    click_option,
    describe_options,
    jobs_option,
    progress_option,
    sections,
    with_format_options,
)
from segconvert.convert import convert
from segconvert.errors import SegconvertError, UsageError
from segconvert.executors import EXECUTORS, signals_interrupt
from segconvert.inspect_commands import add_inspection_commands, subset_options
from segconvert.manager import third_party_disabled_by_env
from segconvert.registry import FormatOption, Registry, Side, build_registry
from segconvert.storage import parse_storage_options
from segconvert.terminal import ConversionDisplay, print_summary
from segconvert.transforms import MODES, OVERFLOW_POLICIES
from segconvert.validate import validate_dataset

LOCATION = click.STRING
"""SOURCE and OUTPUT: a local path or an fsspec URL (checked by the pipeline, not by click)."""
PLANNED_SHOWN = 20
"""How many planned items a dry run prints (``--json`` lists every one)."""


def _run_options(entries: Sequence[FormatOption]) -> Callable[[Any], Any]:
    """Decorate a conversion command with the shared run options and the format options of
    ``entries`` (shown grouped by format and side)."""

    def decorate(command: Any) -> Any:
        command = with_format_options(entries)(command)
        for decorator in reversed(
            [
                jobs_option(),
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
                progress_option(),
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
                click.option(
                    "--storage-option",
                    "storage_option",
                    multiple=True,
                    metavar="KEY=VALUE",
                    help="fsspec option for s3://, gs://, az:// sources and outputs "
                    "(repeatable), e.g. endpoint_url=http://127.0.0.1:9000 or anon=true.",
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
    storage_options = parse_storage_options(params.pop("storage_option"))
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
    display = ConversionDisplay(source) if show_progress else None
    watching = listening_to_activity(display.scanning) if display else contextlib.nullcontext()
    try:
        with watching, signals_interrupt():
            if display:
                display.scanning()
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
                progress=display.progress if display else None,
                storage_options=storage_options,
                **transform_options,
                **execution,
                **subset_and_plan,
            )
    except (KeyboardInterrupt, click.exceptions.Abort, executors.Interrupted) as stop:
        if display:
            display.close()
        name, number = "SIGINT", 2
        if isinstance(stop, executors.Interrupted):
            name, number = stop.signal_name, stop.signal_number
        interrupted = Interrupted(
            f"interrupted by {name}; {output} keeps what was finished: run the same command "
            "with --resume to continue"
        )
        interrupted.exit_code = 128 + number
        raise interrupted from None
    finally:
        if display:
            display.close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        print_summary(report, quiet=quiet)
    sys.exit(report.exit_code)


class Interrupted(SegconvertError):
    """Ctrl-C (exit 130) or SIGTERM (exit 143) during a conversion."""

    exit_code = 130


def _complete_formats(
    registry: Registry, direction: str
) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """Shell completion of format names (and aliases) for one direction."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        entries = registry.importers() if direction == "import" else registry.exporters()
        names = [n for e in entries for n in (e.descriptor.name, *e.descriptor.aliases)]
        return sorted(n for n in set(names) if n.startswith(incomplete))

    return complete


def make_cli(registry: Registry) -> click.Group:
    """Build the click group for ``registry`` (format options become command options)."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(None, "-V", "--version", package_name="segconvert")
    @click.option("--traceback", is_flag=True, help="Show the full traceback of errors.")
    @click.option(
        "--no-plugins",
        is_flag=True,
        help="Load built-in formats only (also: SEGCONVERT_DISABLE_PLUGINS=1).",
    )
    def cli(traceback: bool, no_plugins: bool) -> None:
        """Convert segmentation datasets to and from Scale Nucleus, losslessly and validated."""

    every_format = registry.format_options()
    run_options = _run_options(every_format)
    coco_to_nucleus_options = registry.format_options(
        [("coco-panoptic", Side.IMPORT), ("nucleus", Side.EXPORT)]
    )
    nucleus_to_coco_options = registry.format_options(
        [("nucleus", Side.IMPORT), ("coco-panoptic", Side.EXPORT)]
    )

    @cli.command("convert", cls=FormatOptionsCommand, format_options=every_format)
    @click.argument("source", type=LOCATION)
    @click.argument("output", type=LOCATION)
    @click.option(
        "--from",
        "from_format",
        help="Source format (detected when omitted).",
        shell_complete=_complete_formats(registry, "import"),
    )
    @click.option(
        "--to",
        "to_format",
        required=True,
        help="Target format.",
        shell_complete=_complete_formats(registry, "export"),
    )
    @run_options
    def convert_command(
        source: str, output: str, from_format: str | None, to_format: str, **params: Any
    ) -> None:
        """Convert SOURCE (file or folder) into the folder OUTPUT."""
        _run_conversion(registry, source, output, from_format, to_format, params)

    @cli.command(
        "coco-to-nucleus", cls=FormatOptionsCommand, format_options=coco_to_nucleus_options
    )
    @click.argument("source", type=LOCATION)
    @click.argument("output", type=LOCATION)
    @_run_options(coco_to_nucleus_options)
    def coco_to_nucleus(source: str, output: str, **params: Any) -> None:
        """COCO panoptic SOURCE (JSON or folder) -> Nucleus in OUTPUT."""
        _run_conversion(registry, source, output, "coco-panoptic", "nucleus", params)

    @cli.command(
        "nucleus-to-coco", cls=FormatOptionsCommand, format_options=nucleus_to_coco_options
    )
    @click.argument("source", type=LOCATION)
    @click.argument("output", type=LOCATION)
    @_run_options(nucleus_to_coco_options)
    def nucleus_to_coco(source: str, output: str, **params: Any) -> None:
        """Nucleus SOURCE (folder or annotations file) -> COCO panoptic in OUTPUT."""
        _run_conversion(registry, source, output, "nucleus", "coco-panoptic", params)

    @cli.command("formats")
    @click.argument("format_name", metavar="[FORMAT]", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def formats_command(format_name: str | None, as_json: bool) -> None:
        """List the formats: direction, aliases, provider, missing requirements.

        With FORMAT, show that format alone with every option it takes (type, default, help).
        """
        canonical = _canonical_format(registry, format_name) if format_name else None
        rows: list[dict[str, Any]] = []
        for direction, entries in (
            ("import", registry.importers()),
            ("export", registry.exporters()),
        ):
            for entry in entries:
                d = entry.descriptor
                if canonical is not None and d.name != canonical:
                    continue
                options = registry.format_options([(d.name, Side(direction))])
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
                        "options": describe_options(options),
                    }
                )
        if as_json:
            schemas.validate(schemas.FORMATS_LISTING, rows)
            click.echo(json.dumps(rows, indent=2))
            return
        if canonical is not None:
            _print_format(registry, rows)
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

    import_side = registry.format_options(
        [(entry.descriptor.name, Side.IMPORT) for entry in registry.importers()]
    )

    @cli.command("validate", cls=FormatOptionsCommand, format_options=import_side)
    @click.argument("path", type=LOCATION)
    @click.option(
        "--format",
        "format_name",
        help="Format of PATH (detected when omitted).",
        shell_complete=_complete_formats(registry, "import"),
    )
    @click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes (default: every core).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print problems as JSON lines.")
    @with_format_options(import_side)
    def validate_command(
        path: str, format_name: str | None, jobs: int | None, as_json: bool, **options: Any
    ) -> None:
        """Check an existing dataset; name the file, item and rule of every problem."""
        checked, problems = validate_dataset(
            path, format_name, options=options, registry=registry, jobs=jobs
        )
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

    add_inspection_commands(cli, registry, click_option)
    registry.register_commands(cli)
    return cli


def _canonical_format(registry: Registry, name: str) -> str:
    """The canonical name of importer or exporter ``name`` (or an alias)."""
    for lookup in (registry.importer, registry.exporter):
        try:
            return lookup(name).name
        except UsageError:
            continue
    registry.importer(name)  # raises the "did you mean" error
    raise AssertionError("unreachable")


def _print_format(registry: Registry, rows: list[dict[str, Any]]) -> None:
    """One format: a line per direction, then its options grouped by side."""
    for row in rows:
        aliases = f" (aka {', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(f"{row['name']} {row['direction']}{aliases}: {row['description']}")
    name = rows[0]["name"]
    entries = registry.format_options([(name, Side.IMPORT), (name, Side.EXPORT)])
    formatter = click.HelpFormatter()
    for heading, options in sections(entries):
        with formatter.section(heading):
            formatter.write_dl(options)
    if not entries:
        formatter.write_paragraph()
        formatter.write_text(f"{name} takes no options.")
    click.echo(formatter.getvalue().rstrip("\n"))


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> None:
    """Entry point of the ``segconvert`` command (``registry``: formats to use instead of the
    installed ones, for tests and embedding)."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    as_json = "--json" in args
    no_plugins = "--no-plugins" in args or third_party_disabled_by_env()
    try:
        registry = registry or build_registry(load_third_party=not no_plugins)
        cli = make_cli(registry)
        for warning in registry.warnings():
            click.echo(f"segconvert: warning: {warning}", err=True)
        cli.main(args=args, prog_name="segconvert", standalone_mode=False)
    except SegconvertError as exc:
        if show_traceback:
            traceback.print_exc()
        _fail(str(exc), exc.exit_code, as_json)
    except click.exceptions.Abort:
        _fail("aborted", 130, as_json)
    except click.ClickException as exc:
        _fail(_one_line_usage_error(exc), exc.exit_code, as_json)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _one_line_usage_error(exc: click.ClickException) -> str:
    """Click's three-line usage error as one line, pointing at the command's --help."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    if context is not None:
        return f"{message} (see '{context.command_path} --help')"
    return message


def _fail(message: str, exit_code: int, as_json: bool) -> None:
    """One line on stderr (and, under --json, one JSON object on stdout); exit."""
    click.echo(f"segconvert: error: {message}", err=True)
    if as_json:
        click.echo(json.dumps({"error": message, "exit_code": exit_code}))
    sys.exit(exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
