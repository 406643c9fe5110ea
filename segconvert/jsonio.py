"""One JSON reader with limits, for every JSON and JSON-lines input, streamed or not.

Every document segconvert reads goes through here, so every one gets the same rules:

- **size**: a whole document is at most :data:`MAX_JSON_BYTES` and a JSON-lines record at most
  :data:`MAX_JSON_LINE_BYTES` (a FIFO or ``/dev/zero`` is never read without end);
- **depth**: arrays and objects nest at most :data:`MAX_JSON_DEPTH` deep, checked by a
  vectorised byte scan *before* any parser runs (deeply nested input costs one pass over its
  bytes, not quadratic memory or a ``RecursionError``);
- **strict values**: ``NaN``, ``Infinity`` and ``-Infinity`` are refused;
- **duplicate keys** in an object are refused (JSON leaves them undefined; parsers disagree);
- **encoding**: UTF-8 (a leading BOM is allowed); invalid bytes are refused.

Every refusal is an :class:`~segconvert.errors.InputError` whose message is
``file:line:column: message`` (1-based), so a user can open the file at the fault.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson
import numpy as np
import numpy.typing as npt

from segconvert.errors import InputError

MAX_JSON_BYTES = int(os.environ.get("SEGCONVERT_MAX_JSON_BYTES", 2 << 30))
"""Largest JSON document read whole: 2 GiB (``SEGCONVERT_MAX_JSON_BYTES`` overrides). Larger
inputs are read streamed (``json_stream``), which has no size limit."""
MAX_JSON_LINE_BYTES = 64 << 20
"""Largest record of a JSON-lines file: 64 MiB."""
MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects accepted (COCO polygons nest 3 deep)."""

_SCAN_BLOCK = 1 << 16
_BOM = b"\xef\xbb\xbf"


def _where(path: Path | str, line: int, column: int) -> str:
    return f"{path}:{line}:{column}"


class JsonError(InputError):
    """A JSON input broke a rule of this module; met while loading one item, it fails that
    item with rule ``invalid-json``."""

    rule = "invalid-json"


def json_error(path: Path | str, line: int, column: int, message: str) -> JsonError:
    """The :class:`JsonError` for a fault at ``line``:``column`` of ``path``."""
    return JsonError(f"{_where(path, line, column)}: {message}", file=str(path))


def _location(data: bytes, offset: int, first_line: int = 1) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset`` in ``data``."""
    offset = max(0, min(offset, len(data)))
    line = first_line + data.count(b"\n", 0, offset)
    start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return line, column


# ---------------------------------------------------------------- the depth scan


@dataclass
class _ScanState:
    """What one block of the depth scan leaves for the next."""

    in_string: bool = False
    backslashes: int = 0
    depth: int = 0
    line: int = 1
    column_base: int = 0  # absolute offset of the current line's start
    offset: int = 0  # absolute offset of the block


def _scan_block(block: bytes, state: _ScanState, limit: int, per_line: bool) -> int | None:
    """Advance ``state`` over ``block``; return the absolute offset where nesting first
    exceeds ``limit``, or None. Raw newlines never occur inside valid JSON strings, so a
    newline ends any string (and, ``per_line``, any nesting)."""
    data = np.frombuffer(block, dtype=np.uint8)
    n = data.size
    if n == 0:
        return None
    backslashes = np.flatnonzero(data == 0x5C).astype(np.int32)
    # for each backslash, where its run of consecutive backslashes starts
    run_start = backslashes.copy()
    if backslashes.size:
        breaks = np.ones(backslashes.size, dtype=bool)
        breaks[1:] = backslashes[1:] != backslashes[:-1] + 1
        first = np.maximum.accumulate(np.where(breaks, np.arange(backslashes.size), 0))
        run_start = backslashes[first]

    def run_before(positions: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
        """Backslashes immediately before each position (carried across blocks)."""
        runs = np.zeros(positions.size, dtype=np.int64)
        if backslashes.size:
            k = np.searchsorted(backslashes, positions - 1)
            hit = (k < backslashes.size) & (
                backslashes[np.minimum(k, backslashes.size - 1)] == positions - 1
            )
            starts = run_start[k[hit]]
            runs[hit] = positions[hit] - starts + np.where(starts == 0, state.backslashes, 0)
        runs[positions == 0] = state.backslashes
        return runs

    quotes = np.flatnonzero(data == 0x22).astype(np.int32)
    if quotes.size:  # a quote after an odd run of backslashes is escaped
        quotes = quotes[run_before(quotes) % 2 == 0]
    opens = np.flatnonzero((data == 0x5B) | (data == 0x7B)).astype(np.int32)
    closes = np.flatnonzero((data == 0x5D) | (data == 0x7D)).astype(np.int32)
    newlines = np.flatnonzero(data == 0x0A).astype(np.int32)
    kinds = np.concatenate(
        [
            np.zeros(quotes.size, np.int8),
            np.ones(opens.size, np.int8),
            np.full(closes.size, 2, np.int8),
            np.full(newlines.size, 3, np.int8),
        ]
    )
    where = np.concatenate([quotes, opens, closes, newlines])
    order = np.argsort(where, kind="stable")
    where, kinds = where[order], kinds[order]
    is_quote, is_newline = kinds == 0, kinds == 3
    event = np.arange(where.size)
    # quotes seen since the last newline (or the block start, carrying the string state)
    quote_count = np.cumsum(is_quote) - is_quote
    last_newline = np.maximum.accumulate(np.where(is_newline, event, -1))
    seen_newline = last_newline >= 0
    base = np.where(seen_newline, (np.cumsum(is_quote))[np.maximum(last_newline, 0)], 0)
    parity = (quote_count - base + np.where(seen_newline, 0, int(state.in_string))) % 2
    outside = parity == 0
    delta = np.where(outside & (kinds == 1), 1, np.where(outside & (kinds == 2), -1, 0))
    depth = np.cumsum(delta) + state.depth
    if per_line and newlines.size:
        depth_at_newline = np.where(is_newline, depth, 0)
        reset = np.where(seen_newline, depth_at_newline[np.maximum(last_newline, 0)], 0)
        depth = np.where(seen_newline, depth - reset, depth)
    too_deep = np.flatnonzero(depth > limit)
    if too_deep.size:
        return state.offset + int(where[too_deep[0]])
    # carry
    if where.size:
        last_parity = (
            int(np.count_nonzero(is_quote[last_newline[-1] + 1 :]))
            if seen_newline[-1]
            else int(np.count_nonzero(is_quote)) + int(state.in_string)
        )
        state.in_string = bool(last_parity % 2)
        state.depth = int(depth[-1]) if not (per_line and is_newline[-1]) else 0
    state.backslashes = int(run_before(np.array([n], dtype=np.int32))[0])
    if newlines.size:
        state.line += int(newlines.size)
        state.column_base = state.offset + int(newlines[-1]) + 1
    state.offset += n
    return None


class DepthScanner:
    """The depth check of :func:`check_depth`, fed one block of bytes at a time, so a streamed
    reader can scan each block before its parser sees it (no separate pass over the file).

    Raises :class:`JsonError` ``file:line:column: nesting deeper than N levels`` from
    :meth:`feed`.
    """

    def __init__(
        self, path: Path | str, *, limit: int = MAX_JSON_DEPTH, per_line: bool = False
    ) -> None:
        self.path = path
        self.limit = limit
        self.per_line = per_line
        self._state = _ScanState()

    def feed(self, data: bytes) -> None:
        """Scan the next bytes of the document (in blocks of at most 64 KiB: the scan's
        arrays cost a few times the block's size)."""
        for start in range(0, len(data), _SCAN_BLOCK):
            self._feed_block(data[start : start + _SCAN_BLOCK])

    def _feed_block(self, block: bytes) -> None:
        state = self._state
        start, line, line_start = state.offset, state.line, state.column_base
        found = _scan_block(block, state, self.limit, self.per_line)
        if found is not None:
            head = block[: found - start]
            newline = head.rfind(b"\n")
            if newline >= 0:
                line += head.count(b"\n")
                line_start = start + newline + 1
            raise json_error(
                self.path, line, found - line_start + 1, f"nesting deeper than {self.limit} levels"
            )


_ESCAPE_CANDIDATES = 64
"""Most quotes after a backslash :func:`_surely_shallow` looks at one by one (more: the scan)."""


def _surely_shallow(data: bytes, limit: int) -> bool:
    """Whether ``data`` surely nests no deeper than ``limit``: a quick test that never says so
    wrongly, so the full scan runs only when it cannot tell (and to locate a fault).

    Fewer openings than the limit settle it at once (a COCO span, most JSON lines). Otherwise,
    for a text without a raw newline: a bracket counts where an even number of unescaped quotes
    precede it, and the depth is the running sum of openings and closings. Up to the first
    syntax error this is how a parser reads the text, and a parser stops there.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return True
    if b"\n" in data:
        return False  # a raw newline ends a string in the full scan's reading: leave it to that
    array = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(array == 0x22)
    candidates = quotes[(quotes > 0) & (array[np.maximum(quotes - 1, 0)] == 0x5C)]
    if candidates.size > _ESCAPE_CANDIDATES:
        return False
    escaped = []
    for position in candidates.tolist():  # a quote after an odd run of backslashes
        start = position - 1
        while start >= 0 and data[start] == 0x5C:
            start -= 1
        if (position - 1 - start) % 2:
            escaped.append(position)
    if escaped:
        quotes = np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype), assume_unique=True)
    brackets = np.flatnonzero((array == 0x5B) | (array == 0x5D) | (array == 0x7B) | (array == 0x7D))
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]
    kinds = array[brackets]
    steps = np.where((kinds == 0x5B) | (kinds == 0x7B), 1, -1)
    return int(np.cumsum(steps).max(initial=0)) <= limit


def check_depth(
    source: bytes | IO[bytes],
    path: Path | str,
    *,
    limit: int = MAX_JSON_DEPTH,
    per_line: bool = False,
    block_size: int = _SCAN_BLOCK,
) -> None:
    """Refuse JSON nested deeper than ``limit`` (``per_line``: in any line of JSON lines).

    One vectorised pass over the bytes (block by block for a file object), before any parser
    sees them. Raises :class:`InputError` ``file:line:column: nesting deeper than N``.
    """
    if isinstance(source, bytes) and _surely_shallow(source, limit):
        return
    scanner = DepthScanner(path, limit=limit, per_line=per_line)
    if isinstance(source, bytes):
        blocks: Iterable[bytes] = (
            source[i : i + block_size] for i in range(0, len(source), block_size)
        )
    else:
        blocks = iter(lambda: source.read(block_size), b"")
    for block in blocks:
        scanner.feed(block)


# ---------------------------------------------------------------- parsing


class DuplicateKeyError(ValueError):
    """An object repeats a key."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r} in an object")
            seen.add(key)
    return result


STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
"""The decoder of every JSON value read: a repeated key raises :class:`DuplicateKeyError`,
``NaN`` / ``Infinity`` a ``ValueError`` (callers add where; see :func:`parse_json_bytes`)."""
CHECKED_DECODER = json.JSONDecoder(parse_constant=_no_constant)
"""For a second pass over bytes :data:`STRICT_DECODER` already accepted in this run: the
same values, several times faster (objects are built in C, with no hook per object); ``NaN``
is still refused. Whatever a pass with it hands on must be read strictly again before use."""


class _DuplicateAt(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _parse_object_checked(
    s_and_end: tuple[str, int],
    strict: bool,
    scan_once: Any,
    object_hook: Any,
    object_pairs_hook: Any,
    memo: Any = None,
) -> tuple[dict[str, Any], int]:
    from json import decoder

    parse = getattr(decoder, "JSONObject")  # noqa: B009 - the stdlib's pure-Python parser
    pairs, end = parse(s_and_end, strict, scan_once, None, list, memo)
    if len({key for key, _ in pairs}) != len(pairs):
        raise _DuplicateAt(s_and_end[1] - 1)
    return dict(pairs), end


def _locate_duplicate(text: str) -> int:
    """Character offset of the object that repeats a key (a slower pass, run on error only)."""
    from json import scanner

    locating: Any = json.JSONDecoder()
    locating.parse_object = _parse_object_checked
    locating.scan_once = getattr(scanner, "py_make_scanner")(locating)  # noqa: B009
    try:
        locating.decode(text)
    except _DuplicateAt as found:
        return found.offset
    except (ValueError, RecursionError):
        pass
    return 0


_CONSTANT = re.compile(r"-?Infinity|NaN")
_QUOTE = re.compile(r'(?<!\\)(?:\\\\)*"')


def _locate_constant(text: str) -> int:
    """Offset of the first NaN/Infinity outside a string (run on error only)."""
    for match in _CONSTANT.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if len(_QUOTE.findall(text, line_start, match.start())) % 2 == 0:
            return match.start()
    return 0


def _decode_text(data: bytes, path: Path | str, first_line: int) -> str:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _location(data, exc.start, first_line)
        raise json_error(
            path, line, column, f"invalid UTF-8 (byte 0x{data[exc.start]:02x})"
        ) from None


def parse_json_bytes(
    data: bytes, path: Path | str, *, first_line: int = 1, depth_checked: bool = False
) -> Any:
    """Parse one JSON text with every limit; errors are ``file:line:column: message``."""
    if not depth_checked:
        try:
            check_depth(data, path)
        except InputError as exc:
            if first_line == 1:
                raise
            # a JSON-lines record: shift the line number
            rest = str(exc).split(":", 3)
            raise json_error(path, first_line, int(rest[2]), rest[3].strip()) from None
    text = _decode_text(data, path, first_line)
    try:
        return STRICT_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise json_error(path, line, exc.colno, exc.msg) from None
    except DuplicateKeyError as exc:
        offset = _locate_duplicate(text)
        line = first_line + text.count("\n", 0, offset)
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise json_error(path, line, column, str(exc)) from None
    except ValueError as exc:  # NaN / Infinity
        offset = _locate_constant(text)
        line = first_line + text.count("\n", 0, offset)
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise json_error(path, line, column, str(exc)) from None
    except RecursionError:  # cannot happen after check_depth; kept as a last guard
        raise json_error(path, first_line, 1, "nesting too deep") from None


def _read_bounded(handle: IO[bytes], limit: int, path: Path | str, what: str) -> bytes:
    """At most ``limit`` bytes, never allocating more than the file holds (``read(n)``
    reserves ``n`` bytes up front; a pipe or device is read in blocks)."""
    try:
        status = os.fstat(handle.fileno())
        known = stat.S_ISREG(status.st_mode)
    except (OSError, AttributeError, io.UnsupportedOperation):
        known = False
    if known:
        if status.st_size > limit:
            message = f"{path}: {what} is larger than the limit of {limit} bytes"
            raise InputError(message, file=str(path))
        data = handle.read(status.st_size + 1)
    else:
        blocks, total = [], 0
        while total <= limit and (block := handle.read(min(1 << 20, limit + 1 - total))):
            blocks.append(block)
            total += len(block)
        data = b"".join(blocks)
    if len(data) > limit:
        message = f"{path}: {what} is larger than the limit of {limit} bytes"
        raise JsonError(message, file=str(path))
    return data


def _as_path(path: Path | str) -> Path:
    """``path`` as a path object: a str becomes a local ``Path``; a path object of any
    filesystem (``pathlib`` or a remote ``UPath``) is kept as it is."""
    return Path(path) if isinstance(path, str) else path


def _open(path: Path) -> IO[bytes]:
    """The storage layer's one safe way in: regular files only, never blocking, local or
    remote (:func:`segconvert.storage.open_input`)."""
    from segconvert.storage import open_input

    return open_input(path)


def load_json(path: Path | str, *, max_bytes: int | None = None) -> Any:
    """Parse the JSON document in ``path`` whole, with every limit of this module."""
    path = _as_path(path)
    with _open(path) as handle:
        data = _read_bounded(handle, max_bytes or MAX_JSON_BYTES, path, "the JSON document")
    return parse_json_bytes(data, path)


def parse_json_line(line: str | bytes, path: Path | str, lineno: int) -> Any:
    """Parse one JSON-lines record (line ``lineno`` of ``path``) with every limit."""
    data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    if len(data) > MAX_JSON_LINE_BYTES:
        raise json_error(path, lineno, 1, f"line longer than {MAX_JSON_LINE_BYTES} bytes")
    return parse_json_bytes(data, path, first_line=lineno)


def json_lines(path: Path | str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line of a JSON-lines file, streamed.

    A malformed line does not stop the reading: its value is the :class:`JsonError` naming
    file, line and column, so a caller can report every bad line (``validate``) or reject just
    that item, and still read the good ones.
    """
    path = _as_path(path)
    with _open(path) as handle:
        lineno = 0
        while True:
            raw = handle.readline(MAX_JSON_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_JSON_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the over-long line
                message = f"line longer than {MAX_JSON_LINE_BYTES} bytes"
                yield lineno, json_error(path, lineno, 1, message)
                continue
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            record = raw.rstrip(b"\r\n")
            if record.strip():
                try:
                    yield lineno, parse_json_bytes(record, path, first_line=lineno)
                except InputError as exc:
                    yield lineno, exc


# ---------------------------------------------------------------- streamed (ijson)


class _UniqueKeys(dict[str, Any]):
    """The mapping ijson builds objects into: remembers a repeated key (raising inside
    ijson's C builder would not propagate cleanly), which :func:`_plain` then refuses."""

    repeated: str | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and self.repeated is None:
            self.repeated = key
        super().__setitem__(key, value)


def _plain(value: Any) -> Any:
    """``value`` with every :class:`_UniqueKeys` turned back into a plain dict; a repeated
    key raises :class:`DuplicateKeyError`."""
    if isinstance(value, dict):
        repeated = getattr(value, "repeated", None)
        if repeated is not None:
            raise DuplicateKeyError(f"duplicate key {repeated!r} in an object")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _stream_error(path: Path, exc: Exception) -> InputError:
    """Locate a fault ijson found: the whole-document reader says where (line, column)."""
    try:
        load_json(path)
    except InputError as located:
        return located
    return InputError(f"{path}: invalid JSON ({exc})", file=str(path))


def _reporting(handle: IO[bytes], path: Path) -> Any:
    """``handle`` telling the activity listener how far it has read ``path``."""
    from segconvert.activity import ReportingReader

    try:
        total: int | None = os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):  # an object on a remote store
        total = None
    return ReportingReader(handle, f"reading {path.name}", total)


def _checked_stream(path: Path) -> None:
    with _open(path) as handle:
        check_depth(handle, path)


def json_stream(path: Path | str, prefix: str) -> Iterator[Any]:
    """The items under ``prefix`` (e.g. ``"annotations.item"``), one at a time, with every
    limit but the size (streams have none)."""
    path = _as_path(path)
    _checked_stream(path)
    try:
        with _open(path) as handle:
            values = ijson.items(
                _reporting(handle, path), prefix, use_float=True, map_type=_UniqueKeys
            )
            for value in values:
                try:
                    plain = _plain(value)
                except DuplicateKeyError as exc:
                    raise _stream_error(path, exc) from None
                yield plain
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise _stream_error(path, exc) from None


def json_sections(path: Path | str, keys: Iterable[str]) -> dict[str, Any]:
    """The top-level ``keys`` of a large JSON object that are present, parsed without loading
    the rest (one streaming pass per key). Each pass reads the whole file, so a fault anywhere
    is reported here, with line and column, before any work starts."""
    path = _as_path(path)
    _checked_stream(path)
    sections: dict[str, Any] = {}
    try:
        for key in keys:
            with _open(path) as handle:
                reader = _reporting(handle, path)
                for value in ijson.items(reader, key, use_float=True, map_type=_UniqueKeys):
                    if key in sections:  # the top-level object repeats ``key``
                        raise DuplicateKeyError(f"duplicate key {key!r} in an object")
                    sections[key] = _plain(value)
    except (ijson.JSONError, UnicodeDecodeError, DuplicateKeyError) as exc:
        raise _stream_error(path, exc) from None
    return sections


def loads(text: str | bytes, name: str = "<string>") -> Any:
    """Parse JSON held in memory (e.g. a header already read) with every limit."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_json_bytes(data, name)


__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_LINE_BYTES",
    "STRICT_DECODER",
    "CHECKED_DECODER",
    "DepthScanner",
    "DuplicateKeyError",
    "JsonError",
    "check_depth",
    "json_error",
    "json_lines",
    "json_sections",
    "json_stream",
    "load_json",
    "loads",
    "parse_json_bytes",
    "parse_json_line",
]
