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
    assert blocks[1].strip() == 'pip install ".[test]" && pytest'


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
