"""Read a large JSON document in one streamed pass, indexing array elements by byte offset.

COCO files (instances, results, LVIS, panoptic) can exceed a gigabyte, so they are neither
loaded whole nor held as parsed records: :func:`stream_top_level` walks the document once with
the C JSON scanner (``json.JSONDecoder.raw_decode``) over a sliding buffer, handing out each
element of the arrays asked for with its byte span; a reader later re-reads just the spans it
needs (:func:`read_spans`, :class:`SpanReader`), and :class:`ElementIndex` finds an element by
a field's value (an image by its ``id``) in a few bytes per element. Memory is one buffer plus
what the caller keeps.

The rules of :mod:`segconvert.jsonio` hold here too: nesting at most
:data:`~segconvert.jsonio.MAX_JSON_DEPTH` deep (each block is scanned before the parser sees
it), no repeated keys, no ``NaN`` / ``Infinity``, UTF-8 (a leading BOM allowed); a fault is a
:class:`~segconvert.jsonio.JsonError` ``file:line:column: message``.
"""

from __future__ import annotations

import codecs
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segconvert.activity import ReportingReader
from segconvert.jsonio import (
    CHECKED_DECODER,
    STRICT_DECODER,
    DepthScanner,
    JsonError,
    json_error,
)
from segconvert.storage import RangeReader, open_input

if TYPE_CHECKING:
    from segconvert.schemas import Schema

CHUNK = 1 << 16
"""Bytes read at a time."""
COALESCE_GAP = 64 << 10
""":func:`read_spans` reads spans this close together in one read."""
_WHITESPACE = " \t\n\r"
_BOM = b"\xef\xbb\xbf"


ARRAY_START: Any = type("ArrayStart", (), {"__repr__": lambda self: "ARRAY_START"})()
"""The ``value`` of the event that opens a streamed array (its elements follow)."""


@dataclass(frozen=True)
class Event:
    """One top-level value, or one element of a streamed array.

    ``key`` is the top-level key (``None`` for the elements of a top-level list);
    ``span`` is ``(byte offset, byte length)`` for array elements, else ``None``.
    """

    key: str | None
    value: Any
    span: tuple[int, int] | None = None


def fault(path: Path, offset: int, message: str) -> JsonError:
    """The error for a fault at byte ``offset`` of ``path``: ``file:line:column: message``, as
    every JSON reader says it. The line and column are counted by reading the file up to
    ``offset`` (this runs on errors only)."""
    line, column, done = 1, 0, 0
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        with open_input(path) as handle:
            while done < offset and (block := handle.read(min(CHUNK, offset - done))):
                done += len(block)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    line += block.count(b"\n")
                    column = 0
                    decoder.reset()
                    block = block[newline + 1 :]
                column += len(decoder.decode(block))
    except OSError:
        pass
    return json_error(path, line, column + 1, message)


class _Reader:
    """A text buffer over a binary file that knows the byte offset of every character."""

    def __init__(self, path: Path, json_decoder: json.JSONDecoder = STRICT_DECODER) -> None:
        self.path = path
        self.json_decoder = json_decoder
        self.handle = open_input(path)
        try:
            size: int | None = path.stat().st_size
        except (OSError, AttributeError):
            size = None
        self.source = ReportingReader(self.handle, f"reading {path.name}", size)
        self.depth = DepthScanner(path)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.cursor = 0  # a character index of text ...
        self.cursor_byte = 0  # ... and its byte offset in the file
        self.read_bytes = 0
        self.eof = False
        head = self.source.read(len(_BOM))
        if head == _BOM:
            self.depth.feed(head)
            self.read_bytes = self.cursor_byte = len(_BOM)
        else:
            self._add(head)

    def close(self) -> None:
        self.handle.close()

    def error(self, message: str, index: int | None = None) -> JsonError:
        """The error for ``message`` at character ``index`` of the text (default: here)."""
        return fault(self.path, self.byte_at(self.pos if index is None else index), message)

    def more(self, size: int = CHUNK) -> bool:
        """Read more text; False at the end of the file."""
        if self.eof:
            return False
        if self.pos > CHUNK:  # drop what was consumed
            self.cursor_byte = self.byte_at(self.pos)
            self.text, self.pos, self.cursor = self.text[self.pos :], 0, 0
        self._add(self.source.read(size))
        return True

    def _add(self, data: bytes) -> None:
        """Scan ``data`` (the next bytes of the file) for nesting, then decode it."""
        self.depth.feed(data)
        pending = len(self.decoder.getstate()[0])
        try:
            self.text += self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            offset = self.read_bytes - pending + exc.start
            bad = exc.object[exc.start]
            raise fault(
                self.path, offset, f"invalid UTF-8 (0x{bad:02x}); the file is not UTF-8"
            ) from None
        self.read_bytes += len(data)
        self.eof = not data

    def byte_at(self, index: int) -> int:
        """The byte offset of ``text[index]``; ``index`` never goes back past the last asked."""
        if index > self.cursor:
            if self.text.isascii():  # a flag of the string: one byte per character
                self.cursor_byte += index - self.cursor
            else:
                self.cursor_byte += len(self.text[self.cursor : index].encode("utf-8"))
            self.cursor = index
        return self.cursor_byte

    def peek(self) -> str:
        """The next non-blank character ('' at the end), not consumed."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def expect(self, characters: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            shown = repr(found) if found else "the end of the file"
            raise self.error(f"expected one of {characters!r}, found {shown}")
        self.pos += 1
        return found

    def value(self) -> tuple[Any, int, int]:
        """Decode the next value; returns it with its start and end character index."""
        self.peek()
        size = CHUNK
        while True:
            start = self.pos
            try:
                value, end = self.json_decoder.raw_decode(self.text, start)
            except json.JSONDecodeError as exc:
                if self.more(size):
                    size *= 2
                    continue
                raise self.error(exc.msg, max(exc.pos, start)) from None
            except ValueError as exc:  # a repeated key, NaN or Infinity
                raise self.error(str(exc), start) from None
            # A number (or literal) that ends with the buffer may continue in the next chunk.
            if end >= len(self.text) and not self.eof:
                self.more(size)
                continue
            self.pos = end
            return value, start, end


def stream_top_level(
    path: Path, arrays: Iterable[str] = (), *, checked: bool = False
) -> Iterator[Event]:
    """Walk a JSON document once.

    For an object, every top-level value is one :class:`Event`, except the arrays named in
    ``arrays``, whose elements come one by one with their byte spans. For a top-level list,
    every element comes with its span (``key`` None). Each streamed array opens with an
    event whose value is :data:`ARRAY_START`. Raises :class:`~segconvert.jsonio.JsonError`
    saying at which line and column the JSON breaks.

    ``checked``: this run already walked the document with every rule (an index pass), so
    values are decoded with :data:`~segconvert.jsonio.CHECKED_DECODER` (no check for repeated
    keys inside them; nesting and ``NaN`` still checked): for a second pass that only picks
    fields out, while whatever is converted is read strictly again from its span.
    """
    streamed = set(arrays)
    reader = _Reader(path, CHECKED_DECODER if checked else STRICT_DECODER)
    try:
        opening = reader.expect("{[")
        if opening == "[":
            yield from _elements(reader, None)
        else:
            if reader.peek() == "}":
                reader.pos += 1
            else:
                seen: set[str] = set()
                while True:
                    key, start, _ = reader.value()
                    if not isinstance(key, str):
                        raise reader.error("object keys must be strings", start)
                    if key in seen:
                        raise reader.error(f"duplicate key {key!r} in an object", start)
                    seen.add(key)
                    reader.expect(":")
                    if key in streamed and reader.peek() == "[":
                        reader.pos += 1
                        yield from _elements(reader, key)
                    else:
                        value, _, _ = reader.value()
                        yield Event(key, value)
                    if reader.expect(",}") == "}":
                        break
        if reader.peek():
            raise reader.error("extra data after the document")
    finally:
        reader.close()


def _elements(reader: _Reader, key: str | None) -> Iterator[Event]:
    yield Event(key, ARRAY_START)
    if reader.peek() == "]":
        reader.pos += 1
        return
    while True:
        value, start, end = reader.value()
        first = reader.byte_at(start)
        yield Event(key, value, (first, reader.byte_at(end) - first))
        if reader.expect(",]") == "]":
            return


class SpanReader:
    """Decodes the JSON values at byte spans of one file (with the rules of
    :mod:`segconvert.jsonio`), read through :class:`~segconvert.storage.RangeReader`.

    At least ``block`` bytes are read at a time and the last read is kept, so spans near each
    other cost one read (a parent looking records up in file order, on an object store one
    GET per block); ``block=0`` reads each span alone. A context manager.
    """

    def __init__(self, path: Path, block: int = 0) -> None:
        self.path = path
        self.block = block
        self._ranges = RangeReader(path)
        self._start = 0
        self._data = b""

    def load(self, offset: int, length: int) -> None:
        """Read ``length`` bytes at ``offset`` now (the spans inside come from memory)."""
        self._start, self._data = offset, self._ranges.read(offset, length)

    def read(self, offset: int, length: int) -> Any:
        """The JSON value at ``(offset, length)``."""
        end = offset + length
        if not (self._start <= offset and end <= self._start + len(self._data)):
            self.load(offset, max(length, self.block))
        raw = self._data[offset - self._start : end - self._start]
        try:
            return STRICT_DECODER.decode(raw.decode("utf-8"))
        except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
            raise JsonError(
                f"{self.path}: no JSON value at byte {offset} ({exc}); did the file change "
                "after it was listed?",
                file=str(self.path),
            ) from None

    def close(self) -> None:
        """Close the file."""
        self._ranges.close()

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_spans(path: Path, spans: Iterable[tuple[int, int]]) -> list[Any]:
    """Decode the JSON values at ``(byte offset, byte length)`` spans of ``path``, in order.
    Spans close together (one image's annotations) are fetched in one read."""
    wanted = list(spans)
    if not wanted:
        return []
    with SpanReader(path) as reader:
        low = min(offset for offset, _ in wanted)
        high = max(offset + length for offset, length in wanted)
        if high - low <= 2 * sum(length for _, length in wanted) + COALESCE_GAP:
            reader.load(low, high - low)
        return [reader.read(offset, length) for offset, length in wanted]


class ElementIndex:
    """The elements of one streamed array by the value of a field (images by ``"id"``), in
    a few bytes per element: the field's hash and the element's span, in arrays. A lookup
    reads the candidates back to compare the field itself, so the index holds no record and
    matches exactly as a dict would (the first element wins for a repeated value).

    Build it with :meth:`add` (elements without the field, or with a value that cannot be a
    key, are left out), then :meth:`find`. Hashes are this process's: build and use it in one
    process.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self._hashes: array[int] | None = array("q")
        self._offsets = array("q")
        self._lengths = array("q")
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None

    def add(self, element: Any, span: tuple[int, int]) -> bool:
        """Index ``element`` (an :class:`Event` value) found at ``span``; False when it is left
        out."""
        if self._hashes is None:
            raise RuntimeError("ElementIndex.add after the first find")
        if not isinstance(element, dict) or self.field not in element:
            return False
        try:
            digest = hash(element[self.field])
        except TypeError:  # a list or an object: no element can be found by it
            return False
        self._hashes.append(digest)
        self._offsets.append(span[0])
        self._lengths.append(span[1])
        return True

    def __len__(self) -> int:
        return len(self._offsets)

    def span(self, position: int) -> tuple[int, int]:
        """The span of the element at ``position`` (in the order added)."""
        return self._offsets[position], self._lengths[position]

    def find(self, value: Any, reader: SpanReader) -> tuple[int, Any] | None:
        """``(position, element)`` of the first element whose field equals ``value``, read
        through ``reader``; None when there is none."""
        try:
            digest = hash(value)
        except TypeError:
            return None
        hashes, order = self._arrays()
        at = int(np.searchsorted(hashes, digest))
        while at < len(hashes) and hashes[at] == digest:
            position = int(order[at])
            element = reader.read(*self.span(position))
            if isinstance(element, dict) and element.get(self.field) == value:
                return position, element
            at += 1
        return None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None or self._order is None:
            hashes = np.array(self._hashes, dtype=np.int64)
            self._hashes = None  # the sorted copy replaces it
            dtype = np.int32 if len(hashes) < 2**31 else np.int64
            self._order = np.argsort(hashes, kind="stable").astype(dtype)
            self._sorted = hashes[self._order]
        return self._sorted, self._order


def streamed_schema_problems(
    schema: Schema | str, path: Path, arrays: Mapping[str, str], limit: int = 100
) -> Iterator[str]:
    """Schema problems of a large JSON object, streamed: each element of the arrays named in
    ``arrays`` (key -> the schema's ``$defs`` entry for one element) is checked on its own,
    the rest of the document once with those arrays empty. At most ``limit`` problems, each
    ``"<json path>: <message>"`` like :func:`segconvert.schemas.problems`."""
    from segconvert import schemas

    skeleton: dict[str, Any] = {}
    positions: dict[str | None, int] = {}
    found = 0
    for event in stream_top_level(path, arrays):
        if event.value is ARRAY_START:
            skeleton[str(event.key)] = []
            positions[event.key] = 0
            continue
        key = event.key
        if key is None:
            yield "$: expected an object, found a list"
            return
        if event.span is None or key not in arrays:
            skeleton[key] = event.value
            continue
        position = positions[key]
        positions[key] = position + 1
        for problem in schemas.problems(schema, event.value, arrays[key]):
            yield f"$.{key}[{position}]" + problem.removeprefix("$")
            found += 1
            if found >= limit:
                return
    for problem in schemas.problems(schema, skeleton):
        yield problem
        found += 1
        if found >= limit:
            return
