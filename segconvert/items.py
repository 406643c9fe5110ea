"""Per-item work: one reference in, one typed :class:`ItemResult` out.

:class:`ItemJob` is the pure function the executors run (in-process or in a worker): load the
item with the importer, check it, transform it, write it with the exporter. Nothing an item
does can stop the others: every failure becomes an error result.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from segconvert import storage
from segconvert.descriptors import ExportContext
from segconvert.errors import InputError, ItemError, OutputError
from segconvert.model import ItemRef, RejectedItem, Sample, reference_file, reference_id
from segconvert.records import codec_for, ref_digest
from segconvert.transforms import SkipItem, Transform


class ItemStatus(str, enum.Enum):
    """How one item ended."""

    OK = "ok"
    """Converted: :attr:`ItemResult.record` is the exporter's record."""
    ERROR = "error"
    """Failed: :attr:`ItemResult.error` is the error-report record."""
    SKIPPED = "skipped"
    """Left out on purpose (``--on-overflow skip``); a note says why."""


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item (picklable: it comes back from a worker)."""

    status: ItemStatus
    record: Any = None
    """What the exporter's ``write_item`` returned (``OK`` only)."""
    error: dict[str, Any] | None = None
    """``{"item", "file", "rule", "message"}`` (``ERROR`` only)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Facts worth reporting about the item (each with ``item``, ``rule``, ``message``)."""
    record_json: str | None = None
    """The record as the resume journal stores it, encoded where the item ran (so the parent
    only appends it); None when not encoded there or not storable as JSON."""
    ref_digest: str | None = None
    """The digest of the item's reference (see :func:`segconvert.records.ref_digest`)."""

    @classmethod
    def ok(
        cls,
        record: Any,
        notes: list[dict[str, Any]] | None = None,
        *,
        record_json: str | None = None,
        ref_digest: str | None = None,
    ) -> ItemResult:
        """A converted item."""
        return cls(
            ItemStatus.OK,
            record=record,
            notes=notes or [],
            record_json=record_json,
            ref_digest=ref_digest,
        )

    @classmethod
    def failed(cls, error: dict[str, Any]) -> ItemResult:
        """A failed item with its error record."""
        return cls(ItemStatus.ERROR, error=error)

    @classmethod
    def skipped(cls, note: dict[str, Any]) -> ItemResult:
        """An item left out on purpose, with the note saying why."""
        return cls(ItemStatus.SKIPPED, notes=[note])


def internal_error(ref: ItemRef, exc: BaseException) -> dict[str, Any]:
    """The error record of an unexpected exception (a plugin bug) while handling ``ref``."""
    message = f"internal error: {type(exc).__name__}: {exc}"
    return {"item": reference_id(ref), "file": None, "rule": "internal-error", "message": message}


@dataclass(frozen=True)
class ItemJob:
    """Everything a worker needs, sent once per worker."""

    loader: Callable[[ItemRef, Any], Sample]
    load_context: Any
    write_item: Callable[[Sample, ExportContext], Any]
    export_context: ExportContext
    transform: Transform = Transform()
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    """fsspec options for URL locations, set in every process that runs items."""
    guard: storage.OutputGuard | None = None
    """What the run may write (see :func:`segconvert.storage.guard_output`)."""

    def run(self, ref: ItemRef) -> ItemResult:
        """The result of loading, checking, transforming and writing one item."""
        if storage.current_guard() is not self.guard:  # once per worker process
            storage.configure(self.storage_options)
            storage.guard_output(self.guard)
        if isinstance(ref, FinishedItem):
            return ref.result
        if isinstance(ref, RejectedItem):
            return ItemResult.failed(ref.error.to_record())
        try:
            sample = self.loader(ref, self.load_context)
            sample.check()
            sample = self.transform.apply(sample)
            record = self.write_item(sample, self.export_context)
            notes = [{"item": sample.reference_id, **note} for note in sample.notes]
            codec = codec_for(getattr(self.write_item, "__module__", None))
            return ItemResult.ok(
                record, notes, record_json=codec.encode(record), ref_digest=ref_digest(ref)
            )
        except SkipItem as skip:
            return ItemResult.skipped({"item": reference_id(ref), **skip.note})
        except ItemError as exc:
            if exc.item is None:
                exc.item = reference_id(ref)
            return ItemResult.failed(exc.to_record())
        except InputError as exc:  # a file of this item only (e.g. its JSON) is unreadable
            rule = getattr(exc, "rule", "unreadable-input")
            error = {"item": reference_id(ref), "file": exc.file, "rule": rule}
            return ItemResult.failed({**error, "message": str(exc)})
        except OutputError:
            raise  # the output cannot be written (full disk, read-only): the run stops
        except OSError as exc:
            raise OutputError(storage.describe_os_error(exc)) from None
        except Exception as exc:  # a bug in one item must not kill the other 100k
            return ItemResult.failed(internal_error(ref, exc))


@dataclass(frozen=True)
class FinishedItem:
    """An item an interrupted run already finished (``--resume``): its result is reused."""

    result: ItemResult


def output_name_key(ref_id: str) -> str:
    """The name ``ref_id`` gives its output files, normalised: ``x/a``, ``x/./a`` and ``x//a``
    are one file."""
    return posixpath.normpath(ref_id.replace("\\", "/")).lstrip("/") if ref_id else ""


def unique_references(refs: Iterable[ItemRef]) -> Iterator[ItemRef]:
    """``refs`` with every item whose output name repeats an earlier one's turned into an error.

    Two items with one reference id, or ids that normalise to one path (``x/a``, ``x/./a``,
    ``x//a``), would write the same files: the first one wins. Ids that differ only in case
    are refused too, and said to be so (one file on case-insensitive file systems).
    """
    names: dict[str, str] = {}  # normalised, case-folded output name -> the first id
    for ref in refs:
        ref_id = reference_id(ref)
        if not isinstance(ref_id, str):
            yield ref
            continue
        key = output_name_key(ref_id)
        folded = key.casefold()
        if folded == ref_id:
            folded = ref_id  # one string, not two, for the common id (the dict holds every id)
        earlier = names.get(folded)
        if earlier is None:
            names[folded] = ref_id
            yield ref
            continue
        if earlier == ref_id:
            message = f"reference id {ref_id!r} is used by an earlier item"
        elif output_name_key(earlier) == key:
            message = f"reference id {ref_id!r} names the same files as {earlier!r}"
        else:
            message = (
                f"reference id {ref_id!r} differs only in case from the earlier {earlier!r} "
                "(one file on case-insensitive file systems)"
            )
        rule = "duplicate-reference-id" if earlier == ref_id else "duplicate-output-name"
        yield RejectedItem(ItemError(message, rule=rule, item=ref_id, file=reference_file(ref)))
