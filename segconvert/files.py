"""File helpers shared by the host and plugins: atomic writes, safe paths, JSON reading.

Nothing segconvert writes is ever half-written: every file goes to a temporary name in the
same folder and is renamed into place. Paths taken from input documents are untrusted and
must stay inside the dataset folder.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import ijson

from segconvert.activity import ReportingReader
from segconvert.errors import InputError, ItemError
from segconvert.storage import (
    TEMPORARY_PREFIX,
    TEMPORARY_SUFFIX,
    atomic_open,
    atomic_write_bytes,
    is_remote,
    open_input,
)

__all__ = [
    "TEMPORARY_PREFIX",
    "TEMPORARY_SUFFIX",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
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
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ItemError(
            f"file name {relative!r} resolves outside the dataset folder (symlink?)",
            rule="unsafe-path",
            item=item,
        )
    return candidate


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON raises :class:`InputError` naming file, line and column."""
    try:
        with open_input(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            file=str(path),
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})", file=str(path)) from None


def parse_json_line(line: str, path: Path, lineno: int) -> Any:
    """Parse one JSON-lines record; errors name the file, line and column."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: invalid JSON at line {lineno}, column {exc.colno}: {exc.msg}",
            file=str(path),
        ) from None


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file.

    A malformed line does not stop the reading: its value is the :class:`InputError` naming
    file, line and column, so a caller can report every bad line (``validate``) or reject
    just that item, and still read the good ones.
    """
    with open_input(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, parse_json_line(line, path, lineno)
            except InputError as exc:
                yield lineno, exc


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


def _json_error(path: Path, exc: Exception) -> InputError:
    """An InputError naming line and column: the stdlib parser locates what ijson found."""
    try:
        read_json(path)
    except InputError as located:
        return located
    return InputError(f"{path}: invalid JSON ({exc})", file=str(path))


def _reporting(handle: IO[bytes], path: Path) -> ReportingReader:
    """``handle`` telling the activity listener how far it has read ``path``."""
    try:
        total: int | None = os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):  # an object on a remote store
        total = None
    return ReportingReader(handle, f"reading {path.name}", total)


def json_sections(path: Path, keys: Iterable[str]) -> dict[str, Any]:
    """The top-level ``keys`` of a large JSON object that are present, parsed without loading
    the rest (ijson, one streaming pass per key). Each pass reads the whole file, so a syntax
    error anywhere is reported here, with line and column, before any work starts."""
    sections: dict[str, Any] = {}
    try:
        for key in keys:
            with open_input(path) as handle:
                reader = _reporting(handle, path)
                for value in ijson.items(reader, key, use_float=True):
                    sections[key] = value
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _json_error(path, exc) from None
    return sections


def json_stream(path: Path, prefix: str) -> Iterator[Any]:
    """The items under ``prefix`` (e.g. ``"annotations.item"``), one at a time."""
    try:
        with open_input(path) as handle:
            yield from ijson.items(_reporting(handle, path), prefix, use_float=True)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _json_error(path, exc) from None


def read_head(path: Path, size: int = 1 << 20) -> bytes:
    """The first ``size`` bytes of ``path`` (format detection looks there)."""
    with open_input(path) as handle:
        return handle.read(size)


def json_top_level_is_list(path: Path) -> bool:
    """Whether the JSON document in ``path`` is a list (its first non-blank byte is ``[``)."""
    return read_head(path, 4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")
