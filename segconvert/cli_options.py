"""The CLI's format options: one click option per declared name, help grouped by format and side.

Every conversion command takes the options of the formats it may run. ``--help`` lists the
run options first, then one section per format and side (``coco-rle import options``), each
option with its own format's help and default. Whether an option fits the chosen formats is
decided by the pipeline (:func:`segconvert.plan.split_options`), which names the formats that
do take it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from segconvert.descriptors import Option
from segconvert.registry import FormatOption

_CLICK_TYPES: dict[str, Any] = {
    "str": click.STRING,
    "int": click.INT,
    "path": click.Path(),
}


def click_option(option: Option) -> Callable[[Any], Any]:
    """The click decorator of one format option (default ``None``: "not given")."""
    if option.type == "flag":
        return click.option(
            f"--{option.name}", option.key, is_flag=True, default=None, help=option.help
        )
    kind = click.Choice(option.choices) if option.choices else _CLICK_TYPES[option.type]
    return click.option(f"--{option.name}", option.key, type=kind, default=None, help=option.help)


def option_metavar(option: Option) -> str:
    """``--name TYPE`` as help shows it (``--overlap [a|b]`` for choices, bare for flags)."""
    if option.type == "flag":
        return f"--{option.name}"
    if option.choices:
        return f"--{option.name} [{'|'.join(option.choices)}]"
    return f"--{option.name} {option.type.upper()}"


def option_help(option: Option) -> str:
    """The help text of one format's declaration, with its default."""
    default = "" if option.default in (None, False, "") else f" [default: {option.default}]"
    return f"{option.help}{default}"


def sections(entries: Iterable[FormatOption]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(heading, [(metavar, help), ...])`` per format and side, in the order given."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for entry in entries:
        rows = grouped.setdefault(entry.heading, [])
        rows.append((option_metavar(entry.option), option_help(entry.option)))
    return list(grouped.items())


class FormatOptionsCommand(click.Command):
    """A click command whose help shows format options under per-format headings."""

    def __init__(self, *args: Any, format_options: Sequence[FormatOption] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.format_option_entries = list(format_options)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Run options first, then one section per format and side."""
        format_keys = {entry.option.key for entry in self.format_option_entries}
        general = [
            record
            for param in self.get_params(ctx)
            if isinstance(param, click.Option)
            and param.name not in format_keys
            and (record := param.get_help_record(ctx))
        ]
        if general:
            with formatter.section("Options"):
                formatter.write_dl(general)
        for heading, rows in sections(self.format_option_entries):
            with formatter.section(heading):
                formatter.write_dl(rows)


def with_format_options(entries: Sequence[FormatOption]) -> Callable[[Any], Any]:
    """Decorate a command with one click option per option name among ``entries``."""
    first: dict[str, Option] = {}
    for entry in entries:
        first.setdefault(entry.option.name, entry.option)

    def decorate(command: Any) -> Any:
        for option in reversed(list(first.values())):
            command = click_option(option)(command)
        return command

    return decorate


def describe_options(entries: Iterable[FormatOption]) -> list[dict[str, Any]]:
    """The JSON form of options (for ``segconvert formats FORMAT --json``)."""
    return [
        {
            "name": entry.option.name,
            "side": entry.side.value,
            "type": entry.option.type,
            "default": entry.option.default,
            "choices": list(entry.option.choices),
            "help": entry.option.help,
        }
        for entry in entries
    ]


def jobs_option() -> Callable[[Any], Any]:
    """``--jobs/-j N``, as every command that runs items takes it."""
    return click.option(
        "--jobs",
        "-j",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes (default: every core; 1 = in-process).",
    )


def progress_option() -> Callable[[Any], Any]:
    """``--progress/--no-progress``, as every command that runs items takes it."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bar (default: on a terminal).",
    )
