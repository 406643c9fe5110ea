"""The resume journal: what an interrupted conversion had finished, so ``--resume`` can reuse it.

The parent appends one line per finished item to ``OUT/.segconvert-journal.jsonl``, each with
a single ``os.write`` on an ``O_APPEND`` descriptor (a killed process leaves whole lines only).
The first line records the conversion's parameters; resuming with other parameters is refused.
Records are pickled (base64): they are the exporter's own objects, produced by segconvert
itself in this output folder. The journal is removed when the conversion completes.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segconvert.errors import OutputError
from segconvert.items import ItemResult, ItemStatus

JOURNAL_NAME = ".segconvert-journal.jsonl"
VERSION = 1

Result = ItemResult


class Journal:
    """Append-only record of finished items, keyed by their position in the input."""

    def __init__(self, path: Path, params: Mapping[str, Any], previous: dict[int, Result]) -> None:
        self.path = path
        self.previous = previous
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not previous:
            self._write({"segconvert_journal": VERSION, "params": dict(params)})

    @classmethod
    def open(cls, output: Path, params: Mapping[str, Any], resume: bool) -> Journal:
        """Start a journal, or continue the one in ``output`` when ``resume``."""
        path = output / JOURNAL_NAME
        previous: dict[int, Result] = {}
        if resume and path.is_file():
            previous = read_journal(path, params)
        else:
            path.unlink(missing_ok=True)
        return cls(path, params, previous)

    def _write(self, record: Mapping[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record) + "\n").encode("utf-8"))

    def add(self, position: int, result: Result) -> None:
        """Record that the item at ``position`` finished with ``result``."""
        if position in self.previous:
            return
        payload = base64.b64encode(pickle.dumps(result.record)).decode("ascii")
        self._write(
            {
                "position": position,
                "status": result.status.value,
                "record": payload,
                "notes": result.notes,
            }
        )

    def close(self, *, completed: bool) -> None:
        """Close the journal; remove it when the conversion completed."""
        os.close(self._fd)
        if completed:
            self.path.unlink(missing_ok=True)


def read_journal(path: Path, params: Mapping[str, Any]) -> dict[int, Result]:
    """Finished items of an earlier run with the same ``params`` (failed ones are retried)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if header.get("segconvert_journal") != VERSION:
        raise OutputError(f"{path} is not a segconvert journal; pass --overwrite to start over")
    if header.get("params") != json.loads(json.dumps(dict(params))):
        raise OutputError(
            "the interrupted conversion in this folder used other sources or options; "
            "rerun it as it was, or pass --overwrite to start over"
        )
    done: dict[int, Result] = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # cannot happen with whole-line writes; ignore rather than fail
        if entry.get("status") == "error":
            continue
        record = pickle.loads(base64.b64decode(entry["record"]))  # noqa: S301 - our own file
        status = ItemStatus(entry["status"])
        done[int(entry["position"])] = ItemResult(status, record=record, notes=entry["notes"])
    return done
