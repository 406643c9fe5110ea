"""Descriptors -> names, aliases, conflicts and lookups. The only module that calls the hooks.

Each hook implementation is called on its own so every descriptor is attributed to the
plugin that provided it; a name already taken is refused with a message naming both
providers, and the format registered first (built-ins come first) keeps working.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import click

from segconvert.descriptors import Exporter, Importer, Option
from segconvert.errors import UnknownFormatError, UsageError
from segconvert.manager import PluginFailure, PluginHost, PluginInfo, make_plugin_host

FORMAT_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
"""Format names are kebab-case: ``coco-panoptic``."""
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
"""Aliases may also use underscores: ``coco_panoptic``."""

D = TypeVar("D", Importer, Exporter)


@dataclass(frozen=True)
class Registered(Generic[D]):
    """A descriptor together with the plugin that provided it."""

    descriptor: D
    provider: PluginInfo


def describe_provider(info: PluginInfo) -> str:
    """``plugin 'x' (distribution 1.0)`` -- how messages name a provider."""
    if info.distribution:
        version = f" {info.version}" if info.version else ""
        return f"plugin {info.name!r} ({info.distribution}{version})"
    return f"plugin {info.name!r}"


@dataclass
class _Table(Generic[D]):
    kind: str
    by_name: dict[str, Registered[D]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def add(self, entry: Registered[D], problems: list[str]) -> None:
        descriptor: Importer | Exporter = entry.descriptor
        names = [descriptor.name, *descriptor.aliases]
        for name in names:
            taken = self.by_name.get(name) or self.by_name.get(self.aliases.get(name, ""))
            if taken is not None:
                problems.append(
                    f"{self.kind} {name!r} from {describe_provider(entry.provider)} refused: "
                    f"the name is already provided by {describe_provider(taken.provider)}"
                )
                return
        self.by_name[descriptor.name] = entry
        for alias in descriptor.aliases:
            self.aliases[alias] = descriptor.name

    def get(self, name: str) -> Registered[D]:
        canonical = self.aliases.get(name, name)
        if canonical in self.by_name:
            return self.by_name[canonical]
        known = sorted([*self.by_name, *self.aliases])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownFormatError(
            f"no {self.kind} named {name!r}{hint} (known: {', '.join(sorted(self.by_name))})"
        )


class Registry:
    """All formats known to one plugin host, validated, with lookups."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self.problems: list[str] = []
        self._importers: _Table[Importer] = _Table("importer")
        self._exporters: _Table[Exporter] = _Table("exporter")
        for impl in host.pm.hook.segconvert_importers.get_hookimpls():
            self._collect(impl, Importer, self._importers)
        for impl in host.pm.hook.segconvert_exporters.get_hookimpls():
            self._collect(impl, Exporter, self._exporters)

    def _collect(self, impl: object, kind: type[D], table: _Table[D]) -> None:
        plugin_name = getattr(impl, "plugin_name", "?")
        provider = self.host.plugins.get(plugin_name, PluginInfo(plugin_name))
        try:
            descriptors = list(impl.function() or ())  # type: ignore[attr-defined]
        except Exception as exc:  # a broken hook must not take the host down
            self.problems.append(
                f"{describe_provider(provider)} failed listing {table.kind}s: "
                f"{type(exc).__name__}: {exc}"
            )
            return
        for descriptor in descriptors:
            error = _descriptor_error(descriptor, kind)
            if error:
                self.problems.append(f"{describe_provider(provider)}: {error}")
                continue
            table.add(Registered(descriptor, provider), self.problems)

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to load."""
        return self.host.failures

    def warnings(self) -> list[str]:
        """One line per plugin failure or refused descriptor."""
        lines = [
            f"plugin {f.name!r} failed to load and was skipped: {f.error}" for f in self.failures
        ]
        return lines + self.problems

    def importers(self) -> list[Registered[Importer]]:
        """Every importer, sorted by name."""
        return sorted(self._importers.by_name.values(), key=lambda r: r.descriptor.name)

    def exporters(self) -> list[Registered[Exporter]]:
        """Every exporter, sorted by name."""
        return sorted(self._exporters.by_name.values(), key=lambda r: r.descriptor.name)

    def entries(self) -> list[Registered[Importer] | Registered[Exporter]]:
        """Every importer, then every exporter."""
        return [*self.importers(), *self.exporters()]

    def importer(self, name: str) -> Importer:
        """The importer registered as ``name`` (or an alias); suggests a close name if none."""
        return self._importers.get(name).descriptor

    def exporter(self, name: str) -> Exporter:
        """The exporter registered as ``name`` (or an alias); suggests a close name if none."""
        return self._exporters.get(name).descriptor

    def importer_provider(self, name: str) -> PluginInfo:
        """The plugin behind the importer ``name``."""
        return self._importers.get(name).provider

    def exporter_provider(self, name: str) -> PluginInfo:
        """The plugin behind the exporter ``name``."""
        return self._exporters.get(name).provider

    def describe_importer_provider(self, name: str) -> str:
        """How messages name the plugin behind the importer ``name``."""
        return describe_provider(self.importer_provider(name))

    def describe_exporter_provider(self, name: str) -> str:
        """How messages name the plugin behind the exporter ``name``."""
        return describe_provider(self.exporter_provider(name))

    def detect(self, path: Path) -> Importer:
        """The one importer whose ``detect`` accepts ``path``."""
        matches = [
            r.descriptor for r in self.importers() if r.descriptor.detect and _safe_detect(r, path)
        ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UsageError(f"cannot tell the format of {path}; pass --from")
        names = ", ".join(m.name for m in matches)
        raise UsageError(f"{path} could be any of {names}; pass --from")

    def all_options(self) -> list[Option]:
        """Every option of every format, each name once (the first declaration wins)."""
        seen: dict[str, Option] = {}
        for entry in self.entries():
            for option in entry.descriptor.options:
                seen.setdefault(option.name, option)
        return list(seen.values())

    def register_commands(self, cli: click.Group) -> None:
        """Let every plugin add its commands to ``cli``; a failing plugin is reported, not fatal."""
        for impl in self.host.pm.hook.segconvert_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.problems.append(
                    f"plugin {impl.plugin_name!r} failed registering commands: "
                    f"{type(exc).__name__}: {exc}"
                )


def _safe_detect(entry: Registered[Importer], path: Path) -> bool:
    assert entry.descriptor.detect is not None
    try:
        return bool(entry.descriptor.detect(path))
    except Exception:
        return False


def _descriptor_error(descriptor: object, kind: type) -> str | None:
    if not isinstance(descriptor, kind):
        return f"returned {type(descriptor).__name__}, expected {kind.__name__}"
    name = descriptor.name  # type: ignore[attr-defined]
    if not isinstance(name, str) or not FORMAT_NAME.match(name):
        return f"format name {name!r} is not kebab-case"
    aliases: Iterable[str] = descriptor.aliases  # type: ignore[attr-defined]
    for alias in aliases:
        if not isinstance(alias, str) or not ALIAS_NAME.match(alias):
            return f"alias {alias!r} of {name!r} is not a lowercase name"
    return None


def build_registry(
    *,
    load_third_party: bool | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    builtins: bool = True,
) -> Registry:
    """A fresh :class:`Registry` (see :func:`segconvert.manager.make_plugin_host`)."""
    return Registry(
        make_plugin_host(
            load_third_party=load_third_party, extra_plugins=extra_plugins, builtins=builtins
        )
    )
