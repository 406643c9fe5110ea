"""mkdocs hook: put the CLI reference, generated from the click app, into ``cli.md``."""

from __future__ import annotations

from typing import Any

from segconvert.cli_reference import MARKER, reference_markdown


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker in ``cli.md`` with every command's ``--help``."""
    if page.file.src_uri == "cli.md":
        if MARKER not in markdown:
            raise ValueError(f"cli.md lost its marker {MARKER!r}")
        return markdown.replace(MARKER, reference_markdown())
    return markdown
