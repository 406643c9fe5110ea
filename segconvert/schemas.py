"""JSON Schemas: each shipped by the package that writes the document, validated by the host.

A schema is a file ``<package>/schemas/<name>.schema.json`` named by a :class:`Schema`
(``Schema("coco-panoptic", __package__)``). The host ships its own (the error report, the
``formats``/``plugins`` listings, label maps); every format ships the schemas of the documents
it writes and declares them in its descriptors' ``schemas``, and the registry registers them so
they can be found by name too (``segconvert validate``, :func:`problems`). A :class:`Schema`
is picklable and finds its file by itself, in any process. Files are read with
:mod:`importlib.resources`, so an installed wheel finds them as an editable install does.
Validators are compiled once per process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from segconvert.errors import ValidationError

SCHEMA_FOLDER = "schemas"
"""The folder, inside a package, holding its ``*.schema.json`` files."""
SUFFIX = ".schema.json"
HOST_PACKAGE = "segconvert"


@dataclass(frozen=True)
class Schema:
    """A JSON Schema file shipped as ``<package>/schemas/<name>.schema.json``."""

    name: str
    package: str

    def path(self) -> Path:
        """Where the schema file is (inside the installed package)."""
        return Path(str(resources.files(self.package) / SCHEMA_FOLDER / f"{self.name}{SUFFIX}"))

    def __str__(self) -> str:
        return self.name


ERROR_REPORT = Schema("segconvert-error", HOST_PACKAGE)
FORMATS_LISTING = Schema("segconvert-formats", HOST_PACKAGE)
PLUGINS_LISTING = Schema("segconvert-plugins", HOST_PACKAGE)
LABEL_MAP = Schema("label-map", HOST_PACKAGE)
INFO_REPORT = Schema("segconvert-info", HOST_PACKAGE)
DIFF_RECORD = Schema("segconvert-diff", HOST_PACKAGE)

_registered: dict[str, Schema] = {}


def register(schemas: Iterable[Schema]) -> list[str]:
    """Make ``schemas`` findable by name; returns one line per refused name (a name already
    registered from another package)."""
    problems = []
    for schema in schemas:
        taken = _registered.get(schema.name) or _host_schema(schema.name)
        if taken is not None and taken != schema:
            problems.append(
                f"schema {schema.name!r} of {schema.package} refused: "
                f"{taken.package} already ships a schema with that name"
            )
            continue
        _registered[schema.name] = schema
    return problems


def _host_schema(name: str) -> Schema | None:
    schema = Schema(name, HOST_PACKAGE)
    return schema if schema.path().is_file() else None


def schema_dir() -> Path:
    """The folder holding the host's own ``*.schema.json`` files."""
    return Path(str(resources.files(HOST_PACKAGE) / SCHEMA_FOLDER))


def registered() -> list[Schema]:
    """The host's schemas and every schema registered so far, sorted by name."""
    host = [Schema(p.name.removesuffix(SUFFIX), HOST_PACKAGE) for p in schema_dir().glob("*")]
    found = {s.name: s for s in host if s.path().is_file()} | _registered
    return sorted(found.values(), key=lambda s: s.name)


def schema_names() -> list[str]:
    """Names of every schema available (the host's and those registered so far)."""
    return [s.name for s in registered()]


def resolve(schema: Schema | str) -> Schema:
    """``schema`` itself, or the schema registered (or shipped by the host) under that name.

    A name nobody registered yet makes the installed formats register theirs first.
    """
    if isinstance(schema, Schema):
        return schema
    found = _registered.get(schema) or _host_schema(schema)
    if found is None:
        from segconvert.registry import build_registry  # registers what the formats ship

        build_registry()
        found = _registered.get(schema)
    if found is None:
        raise KeyError(f"no schema named {schema!r} (known: {', '.join(schema_names())})")
    return found


@cache
def _load(schema: Schema) -> dict[str, Any]:
    with schema.path().open(encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


def load_schema(schema: Schema | str) -> dict[str, Any]:
    """The schema document of ``schema`` (a :class:`Schema` or a registered name)."""
    return _load(resolve(schema))


def _schema_for(schema: Schema, definition: str | None) -> dict[str, Any]:
    document = _load(schema)
    if definition is not None:
        document = {**document, "$ref": f"#/$defs/{definition}"}
        for key in ("type", "required", "properties", "additionalProperties"):
            document.pop(key, None)
    return document


@cache
def _validator(schema: Schema, definition: str | None) -> Draft202012Validator:
    document = _schema_for(schema, definition)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document)


def validator(schema: Schema | str, definition: str | None = None) -> Draft202012Validator:
    """The reference (jsonschema, Draft 2020-12) validator for ``schema`` or one of its
    ``$defs``."""
    return _validator(resolve(schema), definition)


@cache
def _fast_validator(schema: Schema, definition: str | None) -> Callable[[Any], Any]:
    return fastjsonschema.compile(_schema_for(schema, definition))


def fast_validator(schema: Schema | str, definition: str | None = None) -> Callable[[Any], Any]:
    """A fastjsonschema-compiled check (about 25x faster), used on the hot path.

    Our schemas use only keywords whose meaning is the same in Draft 7 and 2020-12;
    ``tests/test_schemas.py`` pins that both validators agree. Any document the fast check
    refuses is judged again by :func:`validator`, which has the last word.
    """
    return _fast_validator(resolve(schema), definition)


def is_valid(schema: Schema | str, instance: Any, definition: str | None = None) -> bool:
    """Whether ``instance`` matches the schema (fast path first)."""
    try:
        fast_validator(schema, definition)(instance)
        return True
    except fastjsonschema.JsonSchemaValueException:
        return validator(schema, definition).is_valid(instance)


def problems(schema: Schema | str, instance: Any, definition: str | None = None) -> list[str]:
    """Every schema violation of ``instance``, as ``"<json path>: <message>"`` strings."""
    if is_valid(schema, instance, definition):
        return []
    return [
        f"{error.json_path}: {error.message}"
        for error in validator(schema, definition).iter_errors(instance)
    ]


def validate(
    schema: Schema | str,
    instance: Any,
    definition: str | None = None,
    *,
    item: str | None = None,
    file: str | None = None,
) -> None:
    """Raise :class:`~segconvert.errors.ValidationError` (rule ``schema``) if invalid."""
    if is_valid(schema, instance, definition):
        return
    error = best_match(validator(schema, definition).iter_errors(instance))
    where = f"{schema}" + (f"#/$defs/{definition}" if definition else "")
    raise ValidationError(
        f"does not match schema {where}: {error.json_path}: {error.message}",
        rule="schema",
        item=item,
        file=file,
    )
