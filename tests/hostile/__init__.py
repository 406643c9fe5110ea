"""The hostile corpus: bad inputs, and what segconvert must do with each.

``breakers`` holds the per-item breakers of a COCO panoptic dataset (``CASES``,
``break_dataset``). Every ``cases_<owner>.py`` module in this package defines ``CASES``, a list
of :class:`Case`; :func:`discover` collects them and ``tests/test_hostile_corpus.py`` runs each
through the command line under ``prlimit --as=2G`` with ``--jobs 1`` and ``--jobs 2``.
Add a module of your own rather than editing another owner's.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .breakers import CASES, break_dataset, png_header_bomb

__all__ = ["CASES", "Case", "break_dataset", "discover", "png_header_bomb"]


@dataclass(frozen=True)
class Case:
    """One bad input and the documented outcome.

    ``build(folder)`` writes the input under ``folder`` and returns the ``convert`` arguments
    that come before the output folder's place: ``[SOURCE, --from, X, --to, Y, ...]``.
    """

    name: str
    build: Callable[[Path], list[str]]
    exit_codes: frozenset[int]
    """Accepted exit codes (0 all converted, 3 partial, 1 nothing done, 2 usage)."""
    rules: Mapping[str, str] = field(default_factory=dict)
    """``{reference id: rule}`` that the error report must hold."""
    error: str | None = None
    """A part of the one-line ``segconvert: error:`` message (exit 1 or 2)."""


def discover() -> list[Case]:
    """Every :class:`Case` of every ``cases_*`` module here, in module then list order."""
    found: list[Case] = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module.startswith("cases_"):
            found.extend(importlib.import_module(f"{__name__}.{module}").CASES)
    return found
