"""Format detection: how sure an importer is that a path is its format, and cheap JSON look-ups.

An importer's ``detect(path)`` returns a :class:`Confidence` (or a :class:`Detection`, which
also says what the input looks like and which files in a folder qualify); a plain ``bool``
from an older plugin still works (``True`` counts as :attr:`Confidence.LIKELY`). The registry
picks the most confident importer, so a specific format (Cityscapes' ``*_gtFine_*`` names)
wins over a generic one (any folder with a labels file); a tie is ambiguous only between
equals.

Detectors must be fast on 100+ MB files: :func:`json_first_item` streams a JSON document
(ijson's C backend) only as far as the first item under a prefix, so COCO's key order
(``info``, ``licenses``, ``images`` before ``annotations``) costs one pass over ``images``
and no more. Results are cached per file (path, size and modification time), so several
detectors probing one file read it once.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import ijson

JSON_WHITESPACE = b"\xef\xbb\xbf \t\r\n"
"""What may precede a JSON document's first token (a UTF-8 byte-order mark included)."""


class Confidence(IntEnum):
    """How sure a detector is; the registry picks the highest."""

    NO = 0
    """Not this format."""
    MAYBE = 1
    """Could be: the input fits, but so would many others (a folder with a labels file)."""
    LIKELY = 2
    """The input has this format's marks (a plain ``True`` from a plugin means this)."""
    CERTAIN = 3
    """The input has marks only this format has (``segments_info``, ``*_gtFine_*`` names)."""


@dataclass(frozen=True)
class Detection:
    """A detector's answer with what a message to the user needs.

    Attributes:
        confidence: how sure the detector is.
        what: what the input looks like, for messages (``"a COCO instances JSON"``).
        candidates: the files of a folder that each are this format, when the importer
            cannot read the folder itself (several datasets, or files it reads one at a time):
            the user is told to pass one of them. Empty: the path itself is the input.
    """

    confidence: Confidence
    what: str = ""
    candidates: tuple[str, ...] = ()


def as_detection(answer: object) -> Detection:
    """A detector's answer (``Detection``, ``Confidence``, ``bool``, ``None``) as a Detection."""
    if isinstance(answer, Detection):
        return answer
    if isinstance(answer, Confidence):
        return Detection(answer)
    if isinstance(answer, bool) or answer is None:
        return Detection(Confidence.LIKELY if answer else Confidence.NO)
    if isinstance(answer, int) and answer in {c.value for c in Confidence}:
        return Detection(Confidence(answer))
    raise TypeError(f"detect returned {type(answer).__name__}, expected Confidence or bool")


JsonRoot = Literal["object", "list"]


def json_root(path: Path) -> JsonRoot | None:
    """``"object"`` or ``"list"`` from the first byte of the JSON in ``path``; ``None`` if neither
    (not JSON, empty, unreadable)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip(JSON_WHITESPACE)
    except OSError:
        return None
    if head.startswith(b"{"):
        return "object"
    if head.startswith(b"["):
        return "list"
    return None


def json_first_item(path: Path, prefix: str) -> Any:
    """The first value under the ijson ``prefix`` in ``path`` (``"annotations.item"``: the
    first annotation; ``"item"``: the first element of a top-level list; ``"image"``: the
    top-level ``image`` value), or ``None`` when there is none or the JSON is malformed.

    Streams only as far as that value; a prefix the document's root cannot hold (``"item"``
    of an object, a key of a list) is answered without reading on. Cached per file version.
    """
    try:
        stat = path.stat()
    except OSError:
        return None
    return _first_item(os.fspath(path.resolve()), stat.st_size, stat.st_mtime_ns, prefix)


@functools.lru_cache(maxsize=256)
def _first_item(path: str, size: int, mtime_ns: int, prefix: str) -> Any:
    root = json_root(Path(path))
    wanted_root: JsonRoot = "list" if prefix.split(".", 1)[0] == "item" else "object"
    if root != wanted_root:
        return None
    try:
        with open(path, "rb") as handle:
            return next(ijson.items(handle, prefix, use_float=True), None)
    except (ijson.JSONError, UnicodeDecodeError, OSError):
        return None


def first_item_keys(path: Path, prefix: str) -> frozenset[str]:
    """The keys of :func:`json_first_item` when it is an object, else an empty set."""
    item = json_first_item(path, prefix)
    return frozenset(item) if isinstance(item, dict) else frozenset()
