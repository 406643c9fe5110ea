"""File helpers shared by the host and plugins: atomic writes, safe paths, JSON reading.

The JSON readers (``read_json``, ``parse_json_line``, ``json_lines``, ``json_stream``,
``json_sections``) are :mod:`segconvert.jsonio`'s, kept here under their public names.

Nothing segconvert writes is ever half-written: every file goes to a temporary name in the
same folder and is renamed into place. Paths taken from input documents are untrusted and
must stay inside the dataset folder.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from segconvert.errors import ItemError
from segconvert.jsonio import json_lines as json_lines
from segconvert.jsonio import json_sections as json_sections
from segconvert.jsonio import json_stream as json_stream
from segconvert.jsonio import load_json
from segconvert.jsonio import parse_json_line as parse_json_line
from segconvert.storage import (
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    JsonText,
    atomic_open,
    atomic_write_bytes,
    inside,
    is_remote,
    open_input,
)

__all__ = [
    "TEMPORARY_PREFIX",
    "TEMPORARY_SUFFIX",
    "JsonText",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "encode_json",
    "json_native",
    "json_sections",
    "json_stream",
    "json_top_level_is_list",
    "parse_json_line",
    "read_head",
    "read_json",
    "safe_join",
]


def atomic_write_json(path: Path, document: Any, *, indent: int | None = None) -> None:
    """Write ``document`` as JSON to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(document, handle, indent=indent, allow_nan=False)
        handle.write("\n")


def safe_join(root: Path, relative: str, *, item: str | None = None) -> Path:
    """``root / relative``, refusing names that would leave ``root``.

    Absolute paths, ``..`` components and symlinks that resolve outside ``root`` raise
    :class:`ItemError` with rule ``unsafe-path``.
    """
    if "\x00" in relative:
        raise ItemError(
            f"file name {relative!r} holds a NUL character", rule="unsafe-path", item=item
        )
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise ItemError(
            f"file name {relative!r} leaves the dataset folder", rule="unsafe-path", item=item
        )
    candidate = root.joinpath(*pure.parts)
    if is_remote(root):  # object stores have no symlinks
        return candidate
    if not inside(candidate, root):
        raise ItemError(
            f"file name {relative!r} resolves outside the dataset folder (symlink?)",
            rule="unsafe-path",
            item=item,
        )
    return candidate


def read_json(path: Path) -> Any:
    """Parse a JSON file whole, with the limits of :mod:`segconvert.jsonio` (size, depth,
    NaN, duplicate keys, UTF-8); a fault raises :class:`InputError` ``file:line:column: ...``."""
    return load_json(path)


_INFINITY = float("inf")


def json_native(value: Any) -> Any:
    """``value`` with numpy scalars/arrays turned into Python ints, floats and lists.

    NaN and infinity are refused (``ValueError``): the Nucleus SDK and strict JSON both do.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the common case first: no numpy, nothing to check
    if kind is float:
        if value != value or value in (_INFINITY, -_INFINITY):
            raise ValueError(f"{value} is not valid JSON")
        return value
    if isinstance(value, dict):
        return {str(k): json_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return json_native(value.tolist())
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError(f"{value} is not valid JSON")
    return value


def encode_json(value: Any) -> JsonText:
    """``value`` as the JSON text ``json.dumps`` gives once :func:`json_native` has made it
    plain: one pass in C when it is plain already (the common case), through
    :func:`json_native` when it is not (numpy values; NaN refused with its message)."""
    try:
        return JsonText(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return JsonText(json.dumps(json_native(value), allow_nan=False))


def read_head(path: Path, size: int = 1 << 20) -> bytes:
    """The first ``size`` bytes of ``path`` (format detection looks there)."""
    with open_input(path) as handle:
        return handle.read(size)


def json_top_level_is_list(path: Path) -> bool:
    """Whether the JSON document in ``path`` is a list (its first non-blank byte is ``[``)."""
    return read_head(path, 4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")
