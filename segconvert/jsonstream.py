"""Read a large JSON document in one streamed pass, indexing array elements by byte offset.

COCO instances / results / LVIS files are not grouped by image and can exceed a gigabyte, so
they are neither loaded whole nor held as parsed annotations: :func:`stream_top_level` walks
the document once with the C JSON scanner (``json.JSONDecoder.raw_decode``) over a sliding
buffer, handing out each element of the arrays asked for with its byte span; a reader later
re-reads just the spans it needs with :func:`read_spans`. Memory is one buffer plus what the
caller keeps.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segconvert.errors import InputError

if TYPE_CHECKING:
    from segconvert.schemas import Schema

CHUNK = 1 << 20
"""Bytes read at a time."""
_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


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


class _Reader:
    """A text buffer over a binary file that knows the byte offset of every character."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("rb")
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.cursor = 0  # a character index of text ...
        self.cursor_byte = 0  # ... and its byte offset in the file
        self.eof = False

    def close(self) -> None:
        self.handle.close()

    def error(self, message: str) -> InputError:
        where = self.byte_at(self.pos)
        return InputError(
            f"{self.path}: invalid JSON at byte {where}: {message}", file=str(self.path)
        )

    def more(self, size: int = CHUNK) -> bool:
        """Read more text; False at the end of the file."""
        if self.eof:
            return False
        if self.pos > CHUNK:  # drop what was consumed
            self.cursor_byte = self.byte_at(self.pos)
            self.text, self.pos, self.cursor = self.text[self.pos :], 0, 0
        data = self.handle.read(size)
        try:
            self.text += self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self.error(f"not UTF-8 ({exc.reason})") from None
        self.eof = not data
        return True

    def byte_at(self, index: int) -> int:
        """The byte offset of ``text[index]``; ``index`` never goes back past the last asked."""
        if index > self.cursor:
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
                value, end = _DECODER.raw_decode(self.text, start)
            except json.JSONDecodeError as exc:
                if self.more(size):
                    size *= 2
                    continue
                raise self.error(exc.msg) from None
            # A number (or literal) that ends with the buffer may continue in the next chunk.
            if end >= len(self.text) and not self.eof:
                self.more(size)
                continue
            self.pos = end
            return value, start, end


def stream_top_level(path: Path, arrays: Iterable[str] = ()) -> Iterator[Event]:
    """Walk a JSON document once.

    For an object, every top-level value is one :class:`Event`, except the arrays named in
    ``arrays``, whose elements come one by one with their byte spans. For a top-level list,
    every element comes with its span (``key`` None). Each streamed array opens with an
    event whose value is :data:`ARRAY_START`. Raises :class:`InputError` saying at
    which byte the JSON breaks.
    """
    streamed = set(arrays)
    reader = _Reader(path)
    try:
        opening = reader.expect("{[")
        if opening == "[":
            yield from _elements(reader, None)
        else:
            if reader.peek() == "}":
                reader.pos += 1
            else:
                while True:
                    key, _, _ = reader.value()
                    if not isinstance(key, str):
                        raise reader.error("object keys must be strings")
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


def read_spans(path: Path, spans: Iterable[tuple[int, int]]) -> list[Any]:
    """Decode the JSON values at ``(byte offset, byte length)`` spans of ``path``, in order."""
    values = []
    with path.open("rb") as handle:
        for offset, length in spans:
            handle.seek(offset)
            values.append(json.loads(handle.read(length)))
    return values


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
