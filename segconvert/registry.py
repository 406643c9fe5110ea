"""Descriptors -> names, aliases, options, conflicts and lookups. The only module that calls
the hooks.

Each hook implementation is called on its own so every descriptor is attributed to the
plugin that provided it; a name already taken is refused with a message naming both
providers, and the format registered first (built-ins come first) keeps working.

Options belong to a format and a side (import or export). Two formats may declare one option
name only when they declare it alike (same type and choices: one ``--json-name`` then reaches
whichever of them runs); a descriptor declaring a name already declared differently, or a
name the host itself uses (``--jobs``, ``--mode``, ...), is refused naming both providers.
Plugin commands may not replace a command that is already there (the built-ins above all).
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import click

from segconvert import schemas
from segconvert.descriptors import OPTION_TYPES, Exporter, Importer, Option
from segconvert.detection import Confidence, Detection, as_detection
from segconvert.errors import UnknownFormatError, UsageError
from segconvert.manager import (
    PluginFailure,
    PluginHost,
    PluginInfo,
    hook_problems,
    make_plugin_host,
)

FORMAT_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
"""Format names are kebab-case: ``coco-panoptic``."""
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
"""Aliases may also use underscores: ``coco_panoptic``."""

D = TypeVar("D", Importer, Exporter)

HOST_OPTION_NAMES = frozenset(
    {
        "from",
        "to",
        "jobs",
        "fail-fast",
        "overwrite",
        "resume",
        "quiet",
        "json",
        "progress",
        "no-progress",
        "mode",
        "label-map",
        "on-overflow",
        "void-label",
        "help",
        "traceback",
        "no-plugins",
        "format",
    }
)
"""Option names the host's own commands use; no format may declare them."""


class Side(str, enum.Enum):
    """Which half of a conversion an option belongs to."""

    IMPORT = "import"
    EXPORT = "export"


@dataclass(frozen=True)
class FormatOption:
    """One option of one format on one side, with the plugin that declared it."""

    option: Option
    format: str
    side: Side
    provider: PluginInfo

    @property
    def heading(self) -> str:
        """``coco-rle import options`` -- how help groups it."""
        return f"{self.format} {self.side.value} options"

    def same_declaration(self, other: Option) -> bool:
        """Whether ``other`` may share this option's name (same type and choices)."""
        return (self.option.type, tuple(self.option.choices)) == (
            other.type,
            tuple(other.choices),
        )


def _describe_option(option: Option) -> str:
    kind = option.type + (f" {'|'.join(option.choices)}" if option.choices else "")
    return f"--{option.name} ({kind})"


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

    def add(self, entry: Registered[D], problems: list[str]) -> bool:
        """Add ``entry`` unless one of its names is taken (then say so in ``problems``)."""
        descriptor: Importer | Exporter = entry.descriptor
        names = [descriptor.name, *descriptor.aliases]
        for name in names:
            taken = self.by_name.get(name) or self.by_name.get(self.aliases.get(name, ""))
            if taken is not None:
                problems.append(
                    f"{self.kind} {name!r} from {describe_provider(entry.provider)} refused: "
                    f"the name is already provided by {describe_provider(taken.provider)}"
                )
                return False
        self.by_name[descriptor.name] = entry
        for alias in descriptor.aliases:
            self.aliases[alias] = descriptor.name
        return True

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
        self._options: dict[str, list[FormatOption]] = {}
        self.problems.extend(hook_problems(host))
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
            side = Side.IMPORT if kind is Importer else Side.EXPORT
            clash = self._option_clash(descriptor, side, provider)
            if clash:
                self.problems.append(clash)
                continue
            if table.add(Registered(descriptor, provider), self.problems):
                for problem in schemas.register(descriptor.schemas):
                    self.problems.append(f"{describe_provider(provider)}: {problem}")
                for option in descriptor.options:
                    entry = FormatOption(option, descriptor.name, side, provider)
                    self._options.setdefault(option.name, []).append(entry)

    def _option_clash(
        self, descriptor: Importer | Exporter, side: Side, provider: PluginInfo
    ) -> str | None:
        """Why ``descriptor``'s options cannot join the registry, or ``None``."""
        refused = f"{side.value}er {descriptor.name!r} from {describe_provider(provider)} refused: "
        names = [option.name for option in descriptor.options]
        for option in descriptor.options:
            if not isinstance(option, Option) or not FORMAT_NAME.match(option.name):
                return refused + f"option {getattr(option, 'name', option)!r} is not kebab-case"
            if option.type not in OPTION_TYPES:
                known = ", ".join(OPTION_TYPES)
                return refused + f"--{option.name} has type {option.type!r}, not one of {known}"
            if option.type == "choice" and not option.choices:
                return refused + f"--{option.name} is a choice with no choices"
            if names.count(option.name) > 1:
                return refused + f"it declares --{option.name} twice"
            if option.name in HOST_OPTION_NAMES:
                return refused + f"--{option.name} is one of segconvert's own options"
            for taken in self._options.get(option.name, ()):
                if not taken.same_declaration(option):
                    return refused + (
                        f"its option {_describe_option(option)} clashes with "
                        f"{_describe_option(taken.option)} of {taken.side.value}er "
                        f"{taken.format!r} from {describe_provider(taken.provider)}; "
                        "rename the option"
                    )
        return None

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

    def detections(self, path: Path) -> list[tuple[Importer, Detection]]:
        """Every importer's answer for ``path``, most confident first (ties by name)."""
        answers = [
            (r.descriptor, _safe_detect(r, path)) for r in self.importers() if r.descriptor.detect
        ]
        return sorted(answers, key=lambda a: -a[1].confidence)

    def detect(self, path: Path) -> Importer:
        """The most confident importer for ``path``.

        Ambiguous only between equally confident importers; a folder holding several datasets
        of the winning format is an error naming each candidate file.
        """
        answers = [a for a in self.detections(path) if a[1].confidence > Confidence.NO]
        if not answers:
            raise UsageError(
                f"cannot tell the format of {path}; pass --from "
                f"(one of {', '.join(r.descriptor.name for r in self.importers())})"
            )
        best = answers[0][1].confidence
        winners = [a for a in answers if a[1].confidence == best]
        if len(winners) > 1:
            names = ", ".join(importer.name for importer, _ in winners)
            raise UsageError(f"{path} could be any of {names}; pass --from")
        importer, detection = winners[0]
        if detection.candidates:
            several = "several " if len(detection.candidates) > 1 else ""
            raise UsageError(
                f"{path} holds {several}{importer.name} datasets "
                f"({', '.join(detection.candidates)}); pass the one to convert"
            )
        return importer

    def check_kind(self, importer: Importer, path: Path) -> None:
        """Refuse ``path`` for ``importer`` when its detector says no and another format's
        says it is theirs: the message says what the input looks like and which format reads it.
        """
        if importer.detect is None:
            return
        registered = self._importers.get(importer.name)
        if _safe_detect(registered, path).confidence > Confidence.NO:
            return
        for other, detection in self.detections(path):
            if other.name == importer.name or detection.confidence < Confidence.LIKELY:
                continue
            what = detection.what or f"{other.name} input"
            raise UsageError(
                f"{path} is {what}, not {importer.name} input: use --from {other.name}"
            )

    def all_options(self) -> list[Option]:
        """Every option name any format declares, once each (declarations sharing a name are
        alike: the registry refuses the rest)."""
        return [entries[0].option for entries in self._options.values()]

    def format_options(
        self, formats: Iterable[tuple[str, Side]] | None = None
    ) -> list[FormatOption]:
        """The options of ``(format, side)`` pairs (canonical names), or of every format,
        sorted by format, side, then declaration order."""
        wanted = set(formats) if formats is not None else None
        found = [
            entry
            for entries in self._options.values()
            for entry in entries
            if wanted is None or (entry.format, entry.side) in wanted
        ]
        order = {id(entry): k for k, entry in enumerate(found)}
        sides = list(Side)
        return sorted(found, key=lambda e: (e.format, sides.index(e.side), order[id(e)]))

    def takers(self, option_name: str) -> list[FormatOption]:
        """Every format (and side) that declares ``--option_name``."""
        return list(self._options.get(option_name, ()))

    def register_commands(self, cli: click.Group) -> None:
        """Let every plugin add its commands to ``cli``; a failing plugin is reported, not fatal.

        A plugin may add commands, never replace one that is already there: a replaced or
        removed command is put back and the plugin named in :attr:`problems`.
        """
        for impl in self.host.pm.hook.segconvert_register_commands.get_hookimpls():
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self.problems.append(
                    f"plugin {impl.plugin_name!r} failed registering commands: "
                    f"{type(exc).__name__}: {exc}"
                )
            provider = self.host.plugins.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            for name, command in before.items():
                if cli.commands.get(name) is not command:
                    cli.commands[name] = command
                    self.problems.append(
                        f"{describe_provider(provider)} tried to replace the command "
                        f"{name!r}; refused (a plugin may only add new commands)"
                    )


def _safe_detect(entry: Registered[Importer], path: Path) -> Detection:
    """The importer's answer; a detector that raises or answers nonsense says no."""
    assert entry.descriptor.detect is not None
    try:
        return as_detection(entry.descriptor.detect(path))
    except Exception:
        return Detection(Confidence.NO)


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
