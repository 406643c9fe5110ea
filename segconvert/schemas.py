"""Load the JSON Schemas in ``schemas/`` and validate documents against them.

Schemas ship inside the wheel as ``segconvert/schemas``; in a source checkout they are read
from the top-level ``schemas/`` folder. Validators are compiled once per process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from segconvert.errors import ValidationError

NUCLEUS_ANNOTATION = "nucleus-annotation"
NUCLEUS_ANNOTATION_INPUT = "nucleus-annotation-input"
NUCLEUS_ITEM = "nucleus-item"
TAXONOMY = "segconvert-taxonomy"
IMAGE_RECORD = "segconvert-image"
COCO_PANOPTIC = "coco-panoptic"
ERROR_REPORT = "segconvert-error"
FORMATS_LISTING = "segconvert-formats"
PLUGINS_LISTING = "segconvert-plugins"
INFO_REPORT = "segconvert-info"
DIFF_RECORD = "segconvert-diff"


def schema_dir() -> Path:
    """The folder holding the ``*.schema.json`` files (package data, else the checkout)."""
    packaged = resources.files("segconvert") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("segconvert's schemas/ folder is missing from this installation")


def schema_names() -> list[str]:
    """Names of every schema available."""
    return sorted(p.name.removesuffix(".schema.json") for p in schema_dir().glob("*.schema.json"))


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema document called ``name`` (file ``schemas/<name>.schema.json``)."""
    path = schema_dir() / f"{name}.schema.json"
    with path.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _schema_for(name: str, definition: str | None) -> dict[str, Any]:
    schema = load_schema(name)
    if definition is not None:
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        for key in ("type", "required", "properties", "additionalProperties"):
            schema.pop(key, None)
    return schema


@cache
def validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """The reference (jsonschema, Draft 2020-12) validator for ``name`` or one of its ``$defs``."""
    schema = _schema_for(name, definition)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def fast_validator(name: str, definition: str | None = None) -> Callable[[Any], Any]:
    """A fastjsonschema-compiled check (about 25x faster), used on the hot path.

    Our schemas use only keywords whose meaning is the same in Draft 7 and 2020-12;
    ``tests/test_schemas.py`` pins that both validators agree. Any document the fast check
    refuses is judged again by :func:`validator`, which has the last word.
    """
    return fastjsonschema.compile(_schema_for(name, definition))


def is_valid(name: str, instance: Any, definition: str | None = None) -> bool:
    """Whether ``instance`` matches the schema (fast path first)."""
    try:
        fast_validator(name, definition)(instance)
        return True
    except fastjsonschema.JsonSchemaValueException:
        return validator(name, definition).is_valid(instance)


def problems(name: str, instance: Any, definition: str | None = None) -> list[str]:
    """Every schema violation of ``instance``, as ``"<json path>: <message>"`` strings."""
    if is_valid(name, instance, definition):
        return []
    found = []
    for error in validator(name, definition).iter_errors(instance):
        found.append(f"{error.json_path}: {error.message}")
    return found


def validate(
    name: str,
    instance: Any,
    definition: str | None = None,
    *,
    item: str | None = None,
    file: str | None = None,
) -> None:
    """Raise :class:`~segconvert.errors.ValidationError` (rule ``schema``) if invalid."""
    if is_valid(name, instance, definition):
        return
    error = best_match(validator(name, definition).iter_errors(instance))
    where = f"{name}" + (f"#/$defs/{definition}" if definition else "")
    raise ValidationError(
        f"does not match schema {where}: {error.json_path}: {error.message}",
        rule="schema",
        item=item,
        file=file,
    )
