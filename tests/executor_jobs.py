"""Items that misbehave on purpose, for the executor tests (importable by spawned workers).

A reference is an :class:`Order` named ``"<action>-<n>"``: ``ok`` converts, ``kill`` SIGKILLs
its own worker, ``segv`` dereferences NULL (a real segfault), ``sleep`` never finishes in time,
``raise`` is a plugin bug. Every other part is a real :class:`segconvert.items.ItemJob`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import ExportContext, Sample, Segment
from segconvert.items import ItemJob


@dataclass(frozen=True)
class Order:
    """A reference whose name says what loading it does."""

    reference_id: str


def orders(*names: str) -> list[Order]:
    """One :class:`Order` per name."""
    return [Order(name) for name in names]


def load(ref: Order, context: Any) -> Sample:
    """A 2x2 one-segment sample, after doing what ``ref`` asks."""
    action = ref.reference_id.split("-", 1)[0]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "segv":
        ctypes.string_at(0)
    elif action == "sleep":
        time.sleep(60)
    elif action == "raise":
        raise RuntimeError("a plugin bug")
    return Sample(
        reference_id=ref.reference_id,
        width=2,
        height=2,
        mask=np.zeros((2, 2), np.uint8),
        segments=[Segment(label="void", index=0)],
    )


def write(sample: Sample, context: ExportContext) -> dict[str, Any]:
    """The record of one sample: its id (the parent checks order and completeness)."""
    return {"reference_id": sample.reference_id}


def make_job() -> ItemJob:
    """The job every executor test runs."""
    return ItemJob(load, None, write, ExportContext(output=Path("."), categories=()))
