"""The hooks a segconvert plugin may implement (all prefixed ``segconvert_``).

Each hook *describes* what the plugin provides and returns typed descriptors; the work is
done later by the functions inside those descriptors. Implement a hook by decorating a
module-level function with :data:`hookimpl` and exposing the module through the
``segconvert`` entry-point group::

    # pyproject.toml
    [project.entry-points.segconvert]
    myformat = "segconvert_myformat"
"""

from __future__ import annotations

from collections.abc import Iterable

import click
import pluggy

from segconvert.descriptors import Exporter, Importer

PROJECT_NAME = "segconvert"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def segconvert_importers() -> Iterable[Importer]:
    """Return the importers (format readers) this plugin provides.

    Example::

        @hookimpl
        def segconvert_importers():
            return [Importer(name="my-format", scan=scan, load=load)]
    """
    raise NotImplementedError


@hookspec
def segconvert_exporters() -> Iterable[Exporter]:
    """Return the exporters (format writers) this plugin provides.

    Example::

        @hookimpl
        def segconvert_exporters():
            return [Exporter(name="my-format", write_item=write_item, write_dataset=finish)]
    """
    raise NotImplementedError


@hookspec
def segconvert_register_commands(cli: click.Group) -> None:
    """Add commands to the ``segconvert`` click group (optional).

    Example::

        @hookimpl
        def segconvert_register_commands(cli):
            @cli.command()
            def my_command():
                click.echo("hello")
    """
    raise NotImplementedError
