"""Subsets of a dataset: the first N items (``--limit``) or the items listed in a file
(``--items``), as one filter over a stream of item references.

The filter sits between an importer's listing and the pipeline, so every format and every
command that streams items (conversion, ``info``, ``preview``, ``diff``, the Python API) gets the
same selection. A listed reference id the source does not have is not silently dropped: it comes
out as a :class:`~segconvert.model.RejectedItem` with rule ``item-not-found`` once the listing
ends, so it lands in the error report like any other failed item.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from segconvert.errors import UsageError
from segconvert.model import ItemRef, reference_id, reject

MAX_ITEM_LIST_BYTES = 256 << 20
"""An items file larger than this is refused (11M SA-1B ids take about 200 MiB)."""


@dataclass(frozen=True)
class Subset:
    """Which items to take: at most ``limit`` of them, only those named in ``reference_ids``.

    ``Subset()`` takes everything. With both, the listed items are taken in source order and
    the limit applies to them.
    """

    limit: int | None = None
    reference_ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise UsageError(f"limit must be a whole number >= 0, not {self.limit!r}")

    @property
    def is_everything(self) -> bool:
        """True when this subset selects every item."""
        return self.limit is None and self.reference_ids is None

    @classmethod
    def of(
        cls,
        limit: int | None = None,
        items: str | os.PathLike[str] | Collection[str] | None = None,
    ) -> Subset:
        """A subset from a limit and either an items file or a collection of reference ids."""
        if items is None:
            return cls(limit)
        if isinstance(items, str | os.PathLike):
            return cls(limit, frozenset(read_item_list(items)))
        return cls(limit, frozenset(str(item) for item in items))

    def select(self, refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
        """The references of ``refs`` in this subset, in source order (see the module doc)."""
        if self.is_everything:
            yield from refs
            return
        wanted = self.reference_ids
        found: set[str] = set()
        taken = 0
        for ref in refs:
            if self.limit is not None and taken >= self.limit:
                return  # stop reading the listing: --limit 10 of 118k reads only what it needs
            if wanted is not None:
                ref_id = reference_id(ref)
                if ref_id is None or ref_id not in wanted:
                    continue
                found.add(ref_id)
            taken += 1
            yield ref
        if wanted is None:
            return
        for missing in sorted(wanted - found):
            if self.limit is not None and taken >= self.limit:
                return
            taken += 1
            yield reject(
                missing, "item-not-found", f"item {missing!r} is listed but not in the source"
            )


def read_item_list(path: str | os.PathLike[str]) -> list[str]:
    """The reference ids in an items file: one per line, surrounding blanks and empty lines
    ignored. A missing or undecodable file is a usage error naming it."""
    location = Path(path)
    if location.exists() and not location.is_dir() and not location.is_file():
        raise UsageError(f"items file {location} is not a regular file")  # a FIFO would block
    if location.is_file() and location.stat().st_size > MAX_ITEM_LIST_BYTES:
        raise UsageError(
            f"items file {location} is over {MAX_ITEM_LIST_BYTES // (1 << 20)} MiB; "
            "is it a list of reference ids?"
        )
    try:
        text = location.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"items file {location} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"items file {location} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"items file {location} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UsageError(f"items file {location} cannot be read: {exc.strerror}") from None
    ids = [line.strip() for line in text.splitlines()]
    return [reference_id for reference_id in ids if reference_id]
