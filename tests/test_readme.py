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


def test_the_hook_signatures_in_the_readme_are_those_of_hookspecs():
    import inspect

    from segconvert import hookspecs

    hooks = [f for name, f in vars(hookspecs).items() if name.startswith("segconvert_")]
    assert len(hooks) == 3
    for hook in hooks:
        signature = inspect.signature(hook)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        line = f"def {hook.__name__}({params}) -> {signature.return_annotation}:"
        assert line in README, line


def test_every_descriptor_field_is_documented():
    import dataclasses

    from segconvert import ExportContext, Exporter, Importer, Option

    for descriptor in (Importer, Exporter, ExportContext, Option):
        for field in dataclasses.fields(descriptor):
            assert f"`{field.name}" in README, f"{descriptor.__name__}.{field.name}"


def test_every_testing_helper_is_documented():
    import inspect

    from segconvert import testing

    helpers = [
        n
        for n, f in vars(testing).items()
        if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == testing.__name__
    ]
    for name in helpers:
        if name in ("sample_dataset", "partition"):
            continue
        assert f"{name}(" in README, name
