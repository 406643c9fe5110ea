"""Keep Dask's memory trimming from slowing segconvert's workers down.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
``distributed.nanny.pre-spawn-environ`` default, so idle workers hand memory back to the
system). Setting any of glibc's malloc thresholds switches off glibc's *dynamic* mmap threshold,
which then stays at 128 KiB: every array larger than that (each mask, lookup and PNG buffer of
every item) is a fresh ``mmap``, page-faulted in and unmapped again. Measured here on COCO
panoptic items (640x480, id lookup plus PNG encode): 35-45 % more CPU per item on a Dask worker
than in a plain process; without the variable the same worker costs what a plain process does.

* The local cluster segconvert starts itself (``--executor dask`` without ``--scheduler``) is
  started without that variable (:func:`untrimmed_local_workers`): its workers live for one
  conversion, so handing memory back early buys nothing.
* On a cluster someone else started, each worker process raises glibc's mmap threshold to
  32 MiB the first time it runs segconvert items (:func:`tune_worker_malloc`), which wins back
  most of the loss and leaves the trimming policy alone.
* Where nothing pinned a threshold (the local pool's workers, and Dask workers without the
  variable), glibc's own defaults still hand each item's freed arrays back to the system, so
  such workers keep them for the next item (:func:`keep_item_memory`). Starting the workers with
  ``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{'MALLOC_TRIM_THRESHOLD_': None}"`` wins back
  all of it (docs/scale.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
WORKER_ENVIRON = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": f"{{'{TRIM_VARIABLE}': None}}"}
"""What a worker's environment needs for Dask's nanny not to set the trim threshold."""

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""glibc's largest allowed mmap threshold on 64-bit systems."""
TRIM_THRESHOLD = 64 * 1024 * 1024
"""Freed memory a worker keeps mapped for its next item (see :func:`keep_item_memory`)."""

_tuned = False
_kept = False


@contextlib.contextmanager
def untrimmed_local_workers() -> Iterator[None]:
    """Start a local cluster inside this block: its workers get no malloc trim threshold.

    Workers started as subprocesses read the setting from their environment; a nanny running
    in this process reads it from Dask's configuration. The variable itself is left out of the
    environment the cluster inherits (a nanny that ran in this process before leaves it set
    here: Dask's pre-spawn settings leak into the nanny's process). All is restored afterwards.
    """
    import dask

    saved = {name: os.environ.get(name) for name in (*WORKER_ENVIRON, TRIM_VARIABLE)}
    os.environ.update(WORKER_ENVIRON)
    os.environ.pop(TRIM_VARIABLE, None)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{TRIM_VARIABLE}": None}):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def keep_item_memory() -> bool:
    """Once per worker process: let each item reuse the pages the last one freed.

    With glibc's defaults an item's arrays (the decoded PNG, the id image, the index mask, the
    encoded PNG: a few MB each) are freed together at its end, the free memory on top of the
    heap exceeds the (dynamic) trim threshold, and glibc hands it back to the system, so the
    next item faults every page in again. Measured on COCO panoptic (1,000 items of 640x480,
    ``-j 2``): 3.0 s of the workers' system time, 0.45 s with this, 6.3 s -> 4.9 s of wall
    time. Arrays below :data:`MMAP_THRESHOLD` then come from the heap, and up to
    :data:`TRIM_THRESHOLD` of freed memory stays mapped: a constant per worker, not a growth.

    Nothing is changed where the environment sets ``MALLOC_TRIM_THRESHOLD_`` (someone chose a
    trimming policy, as Dask's nanny does: see :func:`tune_worker_malloc`) or off glibc.
    Returns whether the thresholds were set.
    """
    global _kept
    if _kept:
        return False
    _kept = True
    if TRIM_VARIABLE in os.environ:
        return False
    return _mallopt((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune_worker_malloc() -> bool:
    """Once per process, where Dask pinned glibc's thresholds: raise the mmap threshold.

    Returns whether it was changed (False off glibc, or where nothing pinned it).
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    if TRIM_VARIABLE not in os.environ:
        return False
    return _mallopt((_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Set glibc malloc parameters ``(number, value)``; whether every one was accepted (False
    off Linux or off glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc: Any = ctypes.CDLL("libc.so.6")
        return all(bool(libc.mallopt(number, value)) for number, value in settings)
    except (OSError, AttributeError):  # not glibc
        return False
