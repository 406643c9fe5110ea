"""The README and the docs tell the truth about what the code defines."""

from __future__ import annotations

import re

from helpers import REPO

from segconvert import MetaKey
from segconvert.cli import make_cli

README = "\n".join(
    p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
)
"""The README and every docs page: what these tests look for may be on any of them."""


def test_every_standard_metadata_key_is_documented():
    keys = {v for k, v in vars(MetaKey).items() if k.isupper()}
    table = set(re.findall(r"^\| `(\w+)` \|", README, flags=re.M))
    assert keys <= table


def test_every_format_option_is_documented(registry):
    for option in registry.all_options():
        assert f"--{option.name}" in README, option.name


def test_every_cli_command_is_documented(registry):
    for name in make_cli(registry).commands:
        assert f"segconvert {name}" in README, name
