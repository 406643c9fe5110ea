"""The CLI reference page, generated from the click app itself so it cannot drift.

The docs build (``docs/hooks.py``) puts :func:`reference_markdown` into ``docs/cli.md`` in place
of :data:`MARKER`; ``python -m segconvert.cli_reference`` prints it. It describes the built-in
formats only (third-party plugins add their own options to an installed ``segconvert``).
"""

from __future__ import annotations

import click

from segconvert.cli import make_cli
from segconvert.registry import build_registry

MARKER = "<!-- segconvert CLI reference: generated at build time -->"
"""Where the generated reference goes in ``docs/cli.md``."""

HELP_WIDTH = 80
"""Terminal width the help is rendered for (click's own maximum)."""
_TEXT_WIDTH = HELP_WIDTH - 2
"""What click leaves for text on a terminal that wide."""


def command_helps() -> dict[str, str]:
    """``{"segconvert": root help, "segconvert convert": its help, ...}``, as ``--help`` prints
    them on an 80-column terminal with built-in formats only."""
    cli = make_cli(build_registry(load_third_party=False))
    root = click.Context(
        cli, info_name="segconvert", terminal_width=_TEXT_WIDTH, **cli.context_settings
    )
    helps = {"segconvert": cli.get_help(root)}
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        assert command is not None
        context = click.Context(command, info_name=name, parent=root, terminal_width=_TEXT_WIDTH)
        helps[f"segconvert {name}"] = command.get_help(context)
    return helps


def reference_markdown() -> str:
    """One section per command, each holding exactly what ``--help`` prints."""
    sections = []
    for title, text in command_helps().items():
        sections.append(f"## `{title}`\n\n```text\n{text}\n```\n")
    return "\n".join(sections)


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown())
