"""The resume journal: what an interrupted conversion had finished, so ``--resume`` can reuse it.

Plain JSON lines, never pickle: reading a journal runs no code. The first line records the
conversion's parameters and a fingerprint of the source (names, sizes and modification times of
its files); resuming with other parameters or a changed source is refused with a message naming
what changed. Then one line per finished item: its position, reference id, a digest of its item
reference, status, notes, and the exporter's record as JSON (a dataclass of the exporter's own
module is stored by name with its fields; a record that does not survive JSON is not journalled
and the item is redone on resume).

Locally the parent appends each line with a single ``os.write`` on an ``O_APPEND`` descriptor
(a killed process leaves whole lines only) to ``OUT/.segconvert-journal.jsonl``. On an object
store, where nothing appends, lines go to numbered part objects
``OUT/.segconvert-journal.d/part-NNNNNN.jsonl``, each uploaded whole about once a second.
The journal is removed when the conversion completes, after the run is marked complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from segconvert.errors import OutputError
from segconvert.items import ItemResult, ItemStatus
from segconvert.records import RecordCodec, ref_digest
from segconvert.storage import (
    atomic_open,
    atomic_write_bytes,
    describe_os_error,
    is_remote,
    iter_files,
    list_files,
    open_input,
    remove,
)

JOURNAL_NAME = ".segconvert-journal.jsonl"
JOURNAL_PARTS = ".segconvert-journal.d"
VERSION = 4
"""The journal format: 4 since the coco-rle records hold encoded annotations (3: their dicts)."""
FLUSH_SECONDS = 1.0
FINGERPRINT_NAMES = 100_000
"""Up to this many files a fingerprint keeps every name (a change is named); beyond, a digest."""

Result = ItemResult


@dataclass(frozen=True)
class Finished:
    """One item an earlier run finished: its result and what identified it."""

    result: Result
    reference_id: str | None
    digest: str


# ---------------------------------------------------------------- source fingerprint


def source_fingerprint(source: Path) -> dict[str, Any]:
    """Names, sizes and modification times of the source's files: the file itself and the
    folder of the same stem next to it (COCO's PNG folder), or everything below a folder.

    The digest is the SHA-256 of the JSON of the sorted ``[name, [size, mtime]]`` pairs; the
    names themselves are kept, to say what changed, up to :data:`FINGERPRINT_NAMES` files.
    The journal writes them without holding them (:func:`source_digest`, then streamed)."""
    fingerprint = source_digest(source)
    if fingerprint["count"] <= FINGERPRINT_NAMES:
        fingerprint["files"] = {name: [size, mtime] for name, size, mtime in _source_files(source)}
    return fingerprint


def source_digest(source: Path) -> dict[str, Any]:
    """The ``count`` and ``digest`` of :func:`source_fingerprint`, the listing streamed into
    the digest (nothing per file is held)."""
    hasher = hashlib.sha256(b"[")
    count = 0
    for name, size, mtime in _source_files(source):
        hasher.update((", " if count else "").encode() + json.dumps([name, [size, mtime]]).encode())
        count += 1
    hasher.update(b"]")
    return {"count": count, "digest": hasher.hexdigest()}


def _file_entries(source: Path) -> Iterator[str]:
    """The ``files`` object of a fingerprint as JSON text, piece by piece (what
    ``json.dumps`` writes for the dict)."""
    for number, (name, size, mtime) in enumerate(_source_files(source)):
        yield (", " if number else "") + json.dumps(name) + ": " + json.dumps([size, mtime])


def _source_files(source: Path) -> Iterator[tuple[str, int, float]]:
    """The files a fingerprint covers, in name order (the file sorts before its folder's
    files: ``a.json`` < ``a/...``)."""
    if source.is_dir():
        yield from iter_files(source)
        return
    try:
        info = source.stat()
        yield source.name, info.st_size, info.st_mtime
    except OSError:
        pass
    sibling = source.with_suffix("")
    if sibling != source and sibling.is_dir():
        for name, size, mtime in iter_files(sibling):
            yield f"{sibling.name}/{name}", size, mtime


def describe_change(before: Mapping[str, Any], after: Mapping[str, Any], limit: int = 5) -> str:
    """What differs between two fingerprints, in words (``removed a.png; changed b.json``)."""
    old, new = before.get("files"), after.get("files")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return f"{before.get('count')} files then, {after.get('count')} now, contents differ"
    parts = []
    for label, names in (
        ("removed", sorted(set(old) - set(new))),
        ("added", sorted(set(new) - set(old))),
        ("changed", sorted(n for n in set(old) & set(new) if old[n] != new[n])),
    ):
        if names:
            shown = ", ".join(names[:limit]) + (
                f" and {len(names) - limit} more" * (len(names) > limit)
            )
            parts.append(f"{label} {shown}")
    return "; ".join(parts) or "file details differ"


# ---------------------------------------------------------------- the journal


class Journal:
    """Append-only record of finished items, keyed by their position in the input."""

    def __init__(
        self,
        output: Path,
        params: Mapping[str, Any],
        previous: dict[int, Finished],
        codec: RecordCodec,
        header: Mapping[str, Any],
        source: Path | None = None,
    ) -> None:
        self.output = output
        self.path = output / JOURNAL_NAME
        self.previous = previous
        self.codec = codec
        self.remote = is_remote(output)
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._part = _next_part(output) if self.remote else 0
        self._fd = -1
        if not previous:
            self._write_header(header, source)
        if not self.remote:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(describe_os_error(exc)) from None

    def _write_header(self, header: Mapping[str, Any], source: Path | None) -> None:
        """The first line, whole or not at all (a new journal file, or the first part), the
        names of the source's files streamed into it from a second listing, never held: the
        same line as ``json.dumps`` of the header with its fingerprint's ``files``."""
        text = json.dumps(dict(header), allow_nan=False)
        fingerprint = header.get("source")
        pieces: Iterable[str] = [text]
        if (
            source is not None
            and isinstance(fingerprint, dict)
            and fingerprint.get("count", FINGERPRINT_NAMES + 1) <= FINGERPRINT_NAMES
            and text.endswith("}}")  # the fingerprint is the header's last value
        ):
            pieces = chain([text[:-2], ', "files": {'], _file_entries(source), ["}}}"])
        if self.remote:
            self._part += 1
            target = self.output / JOURNAL_PARTS / f"part-{self._part:06d}.jsonl"
        else:
            target = self.path
        with atomic_open(target, checked=False) as handle:
            handle.writelines(pieces)
            handle.write("\n")

    @classmethod
    def open(
        cls,
        output: Path,
        params: Mapping[str, Any],
        resume: bool,
        *,
        source: Path | None = None,
        record_module: str | None = None,
    ) -> Journal:
        """Start a journal, or continue the one in ``output`` when ``resume``."""
        codec = RecordCodec(record_module)
        fingerprint = source_digest(source) if source is not None else None
        header = {"segconvert_journal": VERSION, "params": _plain(params), "source": fingerprint}
        previous: dict[int, Finished] = {}
        if resume and has_journal(output):
            previous = read_journal(output, header, codec, source=source)
        else:
            remove_journal(output)
        return cls(output, params, previous, codec, header, source)

    def _write_line(self, text: str) -> None:
        line = text + "\n"
        if self.remote:
            self._pending.append(line)
            if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
                self.flush()
            return
        try:
            os.write(self._fd, line.encode("utf-8"))
        except OSError as exc:
            raise OutputError(describe_os_error(exc)) from None

    def flush(self) -> None:
        """Upload the lines not yet stored (object stores; local lines are written at once)."""
        self._last_flush = time.monotonic()
        if not self.remote or not self._pending:
            return
        self._part += 1
        data = "".join(self._pending).encode("utf-8")
        part = self.output / JOURNAL_PARTS / f"part-{self._part:06d}.jsonl"
        atomic_write_bytes(part, data, checked=False)
        self._pending.clear()

    def add(self, position: int, result: Result, ref: Any = None) -> None:
        """Record that the item at ``position`` (listed as ``ref``) finished with ``result``."""
        if position in self.previous:
            return
        encoded = result.record_json or self.codec.encode(result.record)  # workers encode
        if encoded is None:
            return  # not storable as JSON: redone on resume
        entry = {
            "position": position,
            "item": getattr(ref, "reference_id", None),
            "ref": result.ref_digest or ref_digest(ref),
            "status": result.status.value,
            "notes": result.notes,
        }
        # The record is already JSON text (large: every annotation of the item): spliced in,
        # not encoded a second time.
        self._write_line(json.dumps(entry, allow_nan=False)[:-1] + ', "record": ' + encoded + "}")

    def close(self, *, completed: bool) -> None:
        """Store what is pending and close; remove the journal when the conversion completed."""
        if self.remote:
            if not completed:
                self.flush()
        elif self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if completed:
            remove_journal(self.output)


def check_resumed(position: int, ref: Any, finished: Finished) -> None:
    """Refuse to reuse ``finished`` for ``ref`` when the source lists another item there."""
    if finished.digest != ref_digest(ref):
        now = getattr(ref, "reference_id", None)
        was = finished.reference_id
        what = f"item {was!r} changed" if now == was else f"item {was!r} is now {now!r}"
        raise OutputError(
            f"the source changed since the interrupted run: at position {position}, {what}; "
            "pass --overwrite to start over"
        )


def has_journal(output: Path) -> bool:
    """Whether ``output`` holds a journal to resume from."""
    return (output / JOURNAL_NAME).is_file() or bool(_parts(output))


def remove_journal(output: Path) -> None:
    """Delete the journal in ``output`` (file or parts)."""
    remove(output / JOURNAL_NAME)
    for part in _parts(output):
        remove(output / JOURNAL_PARTS / part)


def _parts(output: Path) -> list[str]:
    if not is_remote(output) and not (output / JOURNAL_PARTS).is_dir():
        return []
    return sorted(n for n in list_files(output / JOURNAL_PARTS) if n.startswith("part-"))


def _next_part(output: Path) -> int:
    parts = _parts(output)
    return int(parts[-1][5:11]) if parts else 0


def _lines(output: Path) -> list[str]:
    sources = [output / JOURNAL_NAME] if (output / JOURNAL_NAME).is_file() else []
    sources += [output / JOURNAL_PARTS / p for p in _parts(output)]
    lines: list[str] = []
    for path in sources:
        with open_input(path) as handle:
            text = handle.read().decode("utf-8", "replace")
        lines.extend(text.splitlines())
    return lines


def _plain(value: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(dict(value), default=str))


def read_journal(
    output: Path, header: Mapping[str, Any], codec: RecordCodec, *, source: Path | None = None
) -> dict[int, Finished]:
    """Finished items of an earlier run with the same parameters and source (failed ones are
    retried). A malformed journal, other parameters or a changed source are refused (the
    refusal names what changed: ``source`` is listed again for it)."""
    lines = _lines(output)
    where = output / JOURNAL_NAME
    try:
        first = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        first = {}
    if not isinstance(first, dict) or "segconvert_journal" not in first:
        raise OutputError(f"{where} is not a segconvert journal; pass --overwrite to start over")
    if first["segconvert_journal"] != VERSION:
        raise OutputError(
            f"{where} was written by another segconvert version (journal format "
            f"{first['segconvert_journal']!r}; this one reads {VERSION}): rerun that version "
            "to resume, or pass --overwrite to start over"
        )
    if first.get("params") != header["params"]:
        raise OutputError(
            "the interrupted conversion in this folder used other sources or options; "
            "rerun it as it was, or pass --overwrite to start over"
        )
    before, now = first.get("source"), header.get("source")
    if (
        isinstance(before, dict)
        and isinstance(now, dict)
        and before.get("digest") != now.get("digest")
    ):
        if source is not None and "files" not in now:
            now = source_fingerprint(source)
        raise OutputError(
            f"the source changed since the interrupted run ({describe_change(before, now)}); "
            "rerun with the source as it was, or pass --overwrite to start over"
        )
    done: dict[int, Finished] = {}
    for number, line in enumerate(lines[1:], 2):
        try:
            entry = json.loads(line)
            if entry.get("status") == "error":
                continue
            record = codec.decode(entry["record"])
            status = ItemStatus(entry["status"])
            result = ItemResult(status, record=record, notes=list(entry["notes"]))
            done[int(entry["position"])] = Finished(result, entry.get("item"), str(entry["ref"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if number == len(lines):  # a last line cut short by a kill: redo that item
                continue
            raise OutputError(
                f"{where}: line {number} is malformed ({exc}); pass --overwrite to start over"
            ) from None
    return done
