"""What a conversion shows on a terminal: the scan phase, a progress bar, the summary.

Everything live is drawn on one line of stderr that is redrawn in place and never wider than
the terminal, so a 2,000-image conversion in a 60-column pane leaves only its summary in the
scrollback. The summary groups errors and notes by rule (count and one example each), says
where the output went and what to do next.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import click

from segconvert.convert import ConversionReport

MIN_BAR = 10
"""Narrowest bar worth drawing; on a narrower terminal only the counts are shown."""


def _columns() -> int:
    """The terminal's width (``COLUMNS`` first; 80 when unknown)."""
    return shutil.get_terminal_size((80, 24)).columns


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LiveLine:
    """One status line on a terminal, redrawn in place, cut to the terminal's width."""

    def __init__(self, stream: IO[str] | None = None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._shown = False

    def show(self, text: str, *, force: bool = False) -> None:
        """Replace the line with ``text`` (at most a few redraws a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        width = max(_columns() - 1, 1)  # the last column would wrap on some terminals
        self.stream.write("\r" + text[:width] + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line (nothing stays in the scrollback)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


class ConversionDisplay:
    """The scan phase, then a progress bar; both on one :class:`LiveLine`."""

    def __init__(
        self, source: str, stream: IO[str] | None = None, label: str = "converting"
    ) -> None:
        self.line = LiveLine(stream)
        self.source = source
        self.label = label
        self.started = time.monotonic()
        self.converting = False

    def scanning(
        self, what: str = "", done: int = 0, total: int | None = None, unit: str = ""
    ) -> None:
        """Show what the scan is doing, counts first (they survive a narrow terminal):
        ``scanning 12.0 MB / 343.0 MB 0:04 reading panoptic.json``."""
        if self.converting:
            return
        elapsed = _duration(time.monotonic() - self.started)
        if not what:
            self.line.show(f"scanning {self.source} ...", force=True)
            return
        if unit == "bytes":
            amount = _human_bytes(done) + (f" / {_human_bytes(total)}" if total else "")
        else:
            amount = f"{done:,}" + (f" / {total:,}" if total else "") + (f" {unit}" if unit else "")
        self.line.show(f"scanning {amount} {elapsed} {what}")

    def progress(self, done: int, total: int | None) -> None:
        """Redraw the bar after ``done`` items of ``total`` (``None``: unknown)."""
        self.converting = True
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        counts = f"{done}/{total}" if total else f"{done}"
        eta = ""
        if total and rate > 0 and done < total:
            eta = f" eta {_duration((total - done) / rate)}"
        info = f" {counts} {rate:.1f} items/s{eta}"
        label = self.label
        room = _columns() - 1 - len(label) - len(info) - 3
        if total and room >= MIN_BAR:
            filled = room * done // total
            bar = " [" + "#" * filled + "-" * (room - filled) + "]"
        else:
            bar = ""
        self.line.show(label + bar + info, force=total is not None and done >= total)

    def close(self) -> None:
        """Erase the live line: the summary follows."""
        self.line.clear()


def progress_bar(label: str) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    """A progress callback ``(done, total)`` drawing the bar on stderr, and its closer (for
    commands that show only the item phase: ``info``, ``diff``, ...)."""
    display = ConversionDisplay("", label=label)
    return display.progress, display.close


PLANNED_SHOWN = 20
"""Reference ids a dry run lists before "... and N more"."""


def group_by_rule(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, int, Mapping[str, Any]]]:
    """``(rule, count, first record)`` per rule, the most frequent first."""
    counts: Counter[str] = Counter()
    first: dict[str, Mapping[str, Any]] = {}
    for record in records:
        rule = str(record.get("rule"))
        counts[rule] += 1
        first.setdefault(rule, record)
    return [(rule, count, first[rule]) for rule, count in counts.most_common()]


def _example(record: Mapping[str, Any]) -> str:
    where = record.get("item") or record.get("file") or "?"
    return f"{where}: {record.get('message', '')}"


def summary_lines(report: ConversionReport) -> list[str]:
    """The human summary: totals, errors and notes by rule, the output, the next steps."""
    lines = [report.summary_line()]
    if report.dry_run:
        lines.extend(f"  would write {ref}" for ref in report.planned[:PLANNED_SHOWN])
        if len(report.planned) > PLANNED_SHOWN:
            more = len(report.planned) - PLANNED_SHOWN
            lines.append(f"  ... and {more} more (--json lists all)")
    for title, records in (("failed", report.errors), ("notes", report.notes)):
        for rule, count, example in group_by_rule(records):
            lines.append(f"  {title} [{rule}] x{count}, e.g. {_example(example)}")
            hint = example.get("hint")
            if hint:
                lines.append(f"    {hint}")
    if report.error_report:
        lines.append(f"error report: {report.error_report}")
    if report.notes_report:
        lines.append(f"notes report: {report.notes_report}")
    if not report.dry_run:
        lines.append(f"output: {report.output}")
        lines.extend(f"next: {step}" for step in report.next_steps)
    return lines


def print_summary(report: ConversionReport, *, quiet: bool) -> None:
    """Print :func:`summary_lines`: totals and output on stdout, problems on stderr; the
    report's warnings (e.g. invented categories) first, on stderr, even when quiet."""
    for warning in report.warnings:
        click.echo(f"segconvert: warning: {warning}", err=True)
    for line in summary_lines(report):
        problem = line.startswith(("  failed", "error report"))
        if quiet and not problem:
            continue
        click.echo(line, err=problem)
