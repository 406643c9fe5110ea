"""What the parent process is busy with before items flow: reading a large source, listing items.

A 343 MB COCO JSON takes tens of seconds to scan; without a sign of life the screen stays
blank. The host's JSON readers (:func:`segconvert.json_sections`, :func:`segconvert.json_stream`)
report the bytes they have read through :func:`report_activity`, and a plugin's ``scan`` may
call it too (``report_activity("listing frames", 1200)``). Whoever runs the conversion (the
CLI) listens with :func:`listening_to_activity`; with nobody listening a report costs one
context-variable look-up. Reports are throttled to a few per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO

ActivityListener = Callable[[str, int, "int | None", str], None]
"""``listener(what, done, total, unit)``: e.g. ``("reading panoptic.json", 10_000_000,
343_000_000, "bytes")`` or ``("listing frames", 1200, None, "")``."""

REPORT_INTERVAL = 0.2
"""Seconds between two reports of one activity reaching the listener."""


@dataclass
class _Listening:
    listener: ActivityListener
    last: float = 0.0


_current: ContextVar[_Listening | None] = ContextVar("segconvert_activity", default=None)


def report_activity(what: str, done: int, total: int | None = None, unit: str = "") -> None:
    """Tell whoever listens that ``what`` has reached ``done`` (of ``total``, in ``unit``)."""
    listening = _current.get()
    if listening is None:
        return
    now = time.monotonic()
    if now - listening.last < REPORT_INTERVAL and (total is None or done < total):
        return
    listening.last = now
    listening.listener(what, done, total, unit)


@contextmanager
def listening_to_activity(listener: ActivityListener) -> Iterator[None]:
    """Send this context's activity reports to ``listener``."""
    token = _current.set(_Listening(listener))
    try:
        yield
    finally:
        _current.reset(token)


class ReportingReader:
    """A binary file wrapper that reports how many bytes have been read (for ijson)."""

    def __init__(self, handle: IO[bytes], what: str, total: int | None) -> None:
        self._handle = handle
        self._what = what
        self._total = total
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped file, reporting progress."""
        data = self._handle.read(size)
        self._done += len(data)
        report_activity(self._what, self._done, self._total, "bytes")
        return data
