"""Process-table helpers for tests that kill things (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def _stat(pid: int | str) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def children_of(pid: int) -> set[int]:
    """Running processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if fields and int(fields[1]) == pid and fields[0] not in (b"Z", b"X"):
                found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Every running process below ``pid``."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(children_of(p) for p in frontier)) - found
        found |= children
        frontier = children
    return found
