"""Make throwaway third-party plugins, installed as a fake distribution on a path entry."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

GOOD_PLUGIN = """
from segconvert import Exporter, Importer, hookimpl

def _scan(path, options):
    raise NotImplementedError

def _load(ref, context):
    raise NotImplementedError

@hookimpl
def segconvert_importers():
    return [Importer(name="{name}", scan=_scan, load=_load, description="test format")]
"""

BROKEN_PLUGIN = """
raise RuntimeError("this plugin is broken on purpose")
"""

COMMAND_PLUGIN = """
import click
from segconvert import hookimpl

@hookimpl
def segconvert_register_commands(cli):
    @cli.command("hello")
    def hello():
        click.echo("hello from a plugin")
"""


def install_fake_plugin(
    site: Path, dist: str, module: str, source: str, version: str = "1.0"
) -> None:
    """Write ``module.py`` and a ``dist-version.dist-info`` declaring it under ``segconvert``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[segconvert]\n{module} = {module}\n")


def _no_load(ref: object, context: object) -> None:
    raise NotImplementedError


def importer_plugin(name: str, scan: Any, *options: Any) -> object:
    """An in-process plugin object providing one importer ``name`` with ``scan`` and
    ``options`` (its ``load`` is never expected to run)."""
    from segconvert import Importer, hookimpl

    class Plugin:
        @hookimpl
        def segconvert_importers(self) -> list[Importer]:
            return [Importer(name=name, scan=scan, load=_no_load, options=tuple(options))]

    return Plugin()


def raising_scan(exc: BaseException) -> Any:
    """A ``scan`` that raises ``exc``."""

    def scan(path: object, options: object) -> None:
        raise exc

    return scan
