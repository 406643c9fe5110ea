"""The README tells the truth about what the code defines."""

from __future__ import annotations

import re

from helpers import REPO

from segconvert import MetaKey
from segconvert.cli import make_cli

README = (REPO / "README.md").read_text()


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


def test_the_two_setup_commands_come_first():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert blocks[0].startswith("pip install . && segconvert coco-to-nucleus fixtures/")
    assert blocks[1].strip() == 'pip install -e ".[test]" && pytest'
