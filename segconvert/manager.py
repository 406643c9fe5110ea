"""The plugin manager factory: built-in formats first, then third-party entry points.

Built-ins and third-party plugins are registered by the same ``pm.register`` call. A
third-party plugin that fails to import is recorded as a :class:`PluginFailure` and skipped;
it never stops the host.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from segconvert import hookspecs

BUILTIN_PLUGINS: tuple[str, ...] = (
    "segconvert.formats.nucleus",
    "segconvert.formats.coco_panoptic",
    "segconvert.formats.cityscapes",
    "segconvert.formats.coco_rle",
)
"""Module names of the formats that ship with segconvert (under ``segconvert/formats/``)."""

ENTRY_POINT_GROUP = "segconvert"
"""Third-party plugins declare ``[project.entry-points.segconvert]``."""

DISABLE_ENV = "SEGCONVERT_DISABLE_PLUGINS"
"""Set to a non-empty value other than ``0`` to load built-in formats only."""


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: its registered name and where it came from."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class PluginHost:
    """A plugin manager together with what was loaded and what failed."""

    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def register(self, plugin: object, info: PluginInfo) -> None:
        """Register one plugin object (a module, usually) under ``info.name``."""
        self.pm.register(plugin, name=info.name)
        self.plugins[info.name] = info


def hook_problems(host: PluginHost) -> list[str]:
    """One line per hook implementation that no hookspec matches (a misspelled hook name),
    and per plugin function named like a hook but not marked with ``@hookimpl``.

    pluggy would silently never call either.
    """
    known = sorted(
        name
        for name, caller in vars(host.pm.hook).items()
        if getattr(caller, "has_spec", None) and caller.has_spec()
    )
    problems = []
    for name, caller in sorted(vars(host.pm.hook).items()):
        if not hasattr(caller, "has_spec") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (hooks: {', '.join(known)})"
            problems.append(
                f"plugin {impl.plugin_name!r} implements {name!r}, which is not a segconvert "
                f"hook, so it is never called{hint}"
            )
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    for plugin_name, plugin in host.pm.list_name_plugin():
        for attribute in dir(plugin):
            function = getattr(plugin, attribute, None)
            if (
                attribute.startswith(f"{hookspecs.PROJECT_NAME}_")
                and callable(function)
                and not hasattr(function, marker)
            ):
                problems.append(
                    f"plugin {plugin_name!r}: {attribute} is not marked with @hookimpl, "
                    "so it is never called"
                )
    return problems


def third_party_disabled_by_env() -> bool:
    """Whether :data:`DISABLE_ENV` asks for built-in formats only."""
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0")


def _segconvert_version() -> str | None:
    try:
        return importlib.metadata.version("segconvert")
    except importlib.metadata.PackageNotFoundError:
        return None


def make_plugin_host(
    *,
    load_third_party: bool | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    builtins: bool = True,
) -> PluginHost:
    """Build a plugin manager with the built-ins, entry-point plugins and ``extra_plugins``.

    Args:
        builtins: register the built-in formats (off only to test a plugin on its own).
        load_third_party: load entry-point plugins; ``None`` means "unless
            :data:`DISABLE_ENV` is set".
        extra_plugins: ``(name, plugin object)`` pairs registered after everything else
            (used by tests and :mod:`segconvert.testing`).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    version = _segconvert_version()
    for module_name in BUILTIN_PLUGINS if builtins else ():
        module = importlib.import_module(module_name)
        host.register(module, PluginInfo(module_name, "segconvert", version, builtin=True))
    if load_third_party is None:
        load_third_party = not third_party_disabled_by_env()
    if load_third_party:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(host, entry_point)
    for name, plugin in extra_plugins:
        host.register(plugin, PluginInfo(name))
    return host


def _load_entry_point(host: PluginHost, entry_point: importlib.metadata.EntryPoint) -> None:
    dist = entry_point.dist
    dist_name = dist.metadata["Name"] if dist is not None else None
    dist_version = dist.version if dist is not None else None
    if entry_point.name in host.plugins:
        host.failures.append(
            PluginFailure(
                entry_point.name,
                f"a plugin named {entry_point.name!r} is already registered",
                dist_name,
                dist_version,
            )
        )
        return
    try:
        plugin = entry_point.load()
        host.register(plugin, PluginInfo(entry_point.name, dist_name, dist_version))
    except Exception as exc:  # a broken plugin must never stop the host
        host.failures.append(
            PluginFailure(entry_point.name, f"{type(exc).__name__}: {exc}", dist_name, dist_version)
        )
