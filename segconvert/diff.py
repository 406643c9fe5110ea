"""``segconvert diff A B``: whether two datasets, in any formats, hold the same segmentation.

Items are matched by reference id. Within an item, mask indices mean nothing across formats
(Nucleus renumbers, Cityscapes encodes classes), so segments are matched by their pixels: the
pairs (segment of A, segment of B) that share pixels are taken greedily, largest overlap first,
each segment at most once -- a one-to-one matching. Pixels outside the matched overlaps are
*changed pixels*. A matched pair whose label, void flag, category id or crowd flag differ (each
compared where both sides have it) is a *label change*. Instance ids (the source's own segment
ids) are compared where both sides have them and reported, but a format that cannot hold them
renumbers them legitimately (Cityscapes' ``class*1000+k``), so they make a difference only with
``strict_ids``. Segments without pixels are matched by label and category.

Two datasets are identical when no item is missing on either side, none is unreadable, no
category changed, and no item has a changed pixel, a label change or an unmatched segment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segconvert import schemas
from segconvert.api import open
from segconvert.errors import ItemError
from segconvert.model import (
    Category,
    ItemRef,
    MetaKey,
    RejectedItem,
    Sample,
    Segment,
    reference_id,
)
from segconvert.registry import Registry

COMPARED_KEYS = (MetaKey.CATEGORY_ID, MetaKey.ISCROWD)
"""Segment metadata compared where both sides have it (a change is a label change)."""
JOINT_BINCOUNT_LIMIT = 1 << 22
"""Up to this many (index A, index B) combinations are counted with one bincount."""


def describe(segment: Segment) -> dict[str, Any]:
    """A segment as a diff record shows it."""
    metadata = segment.metadata or {}
    record: dict[str, Any] = {"label": segment.label, "index": segment.index}
    if segment.is_void:
        record["void"] = True
    for key in (*COMPARED_KEYS, MetaKey.SOURCE_ID):
        if metadata.get(key) is not None:
            record[key] = metadata[key]
    return record


def label_differences(a: Segment, b: Segment) -> list[str]:
    """The fields (``label``, ``void``, ``category_id``, ``iscrowd``) on which ``a`` and ``b``
    differ, each compared only where both sides have it."""
    fields = []
    if a.is_void != b.is_void:
        fields.append("void")
    elif not a.is_void and a.label != b.label:
        fields.append("label")
    meta_a, meta_b = a.metadata or {}, b.metadata or {}
    for key in COMPARED_KEYS:
        if key in meta_a and key in meta_b and _normal(meta_a[key]) != _normal(meta_b[key]):
            fields.append(key)
    return fields


def _normal(value: Any) -> Any:
    """bool/int flags compare by value (``True == 1``, as COCO writes ``iscrowd``)."""
    return int(value) if isinstance(value, bool) else value


def overlap_pairs(
    mask_a: np.ndarray, mask_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index in A, index in B, pixels)`` for every pair of indices sharing pixels."""
    flat_a = mask_a.ravel().astype(np.int64)
    flat_b = mask_b.ravel().astype(np.int64)
    width = int(flat_b.max()) + 1 if flat_b.size else 1
    joint = flat_a * width + flat_b
    combinations = (int(flat_a.max()) + 1 if flat_a.size else 1) * width
    if combinations <= JOINT_BINCOUNT_LIMIT:
        counts = np.bincount(joint, minlength=combinations)
        keys = np.flatnonzero(counts)
        values = counts[keys]
    else:
        keys, values = np.unique(joint, return_counts=True)
    return keys // width, keys % width, values


@dataclass
class ItemDiff:
    """How one item differs between A and B (``identical`` when it does not)."""

    item: str
    pixels: int = 0
    pixels_changed: int = 0
    label_changes: list[dict[str, Any]] = field(default_factory=list)
    only_in_a: list[dict[str, Any]] = field(default_factory=list)
    only_in_b: list[dict[str, Any]] = field(default_factory=list)
    id_changes: list[dict[str, Any]] = field(default_factory=list)
    size: dict[str, list[int]] | None = None
    strict_ids: bool = False

    @property
    def identical(self) -> bool:
        """No changed pixel, label change, unmatched segment or size change (and no id change
        with ``strict_ids``)."""
        return not (
            self.pixels_changed
            or self.label_changes
            or self.only_in_a
            or self.only_in_b
            or self.size
            or (self.strict_ids and self.id_changes)
        )

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line of this item."""
        record: dict[str, Any] = {
            "type": "item",
            "item": self.item,
            "identical": self.identical,
            "pixels": self.pixels,
            "pixels_changed": self.pixels_changed,
            "label_changes": self.label_changes,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "id_changes": self.id_changes,
        }
        if self.size:
            record["size"] = self.size
        return record

    def lines(self) -> list[str]:
        """Human-readable lines, one per difference."""
        out = []
        if self.size:
            out.append(f"{self.item}: size {self.size['a']} in A, {self.size['b']} in B")
        if self.pixels_changed:
            out.append(
                f"{self.item}: {self.pixels_changed} pixel(s) changed "
                f"({self.pixels_changed / max(self.pixels, 1):.4%})"
            )
        for change in self.label_changes:
            out.append(
                f"{self.item}: label changed: {_name(change['a'])} -> {_name(change['b'])} "
                f"({', '.join(change['fields'])}; {change['pixels']} px)"
            )
        for side, segments in (("A", self.only_in_a), ("B", self.only_in_b)):
            for segment in segments:
                out.append(
                    f"{self.item}: segment only in {side}: {_name(segment)} "
                    f"({segment['pixels']} px)"
                )
        if self.strict_ids:
            for change in self.id_changes:
                out.append(
                    f"{self.item}: instance id {change['a']} -> {change['b']} ({change['label']})"
                )
        return out


def _name(record: dict[str, Any]) -> str:
    extra = [
        f"{key} {record[key]}" for key in (MetaKey.CATEGORY_ID, MetaKey.ISCROWD) if key in record
    ]
    if record.get("void"):
        extra.insert(0, "void")
    return f"{record['label']!r}" + (f" ({', '.join(extra)})" if extra else "")


def compare_samples(a: Sample, b: Sample, *, strict_ids: bool = False) -> ItemDiff:
    """How ``b`` differs from ``a`` (see the module doc for the matching)."""
    result = ItemDiff(a.reference_id, pixels=a.width * a.height, strict_ids=strict_ids)
    if a.mask.shape != b.mask.shape:
        result.size = {"a": [a.width, a.height], "b": [b.width, b.height]}
        return result
    by_index_a = {s.index: s for s in a.segments}
    by_index_b = {s.index: s for s in b.segments}
    indices_a, indices_b, counts = overlap_pairs(a.mask, b.mask)
    area_a = dict(zip(*np.unique(a.mask, return_counts=True), strict=True))
    area_b = dict(zip(*np.unique(b.mask, return_counts=True), strict=True))
    matched_a: dict[int, int] = {}
    matched_b: set[int] = set()
    same = 0
    for position in np.argsort(-counts, kind="stable").tolist():
        index_a, index_b = int(indices_a[position]), int(indices_b[position])
        if index_a in matched_a or index_b in matched_b:
            continue
        matched_a[index_a] = index_b
        matched_b.add(index_b)
        pixels = int(counts[position])
        same += pixels
        segment_a, segment_b = by_index_a[index_a], by_index_b[index_b]
        fields = label_differences(segment_a, segment_b)
        if fields:
            result.label_changes.append(
                {
                    "a": describe(segment_a),
                    "b": describe(segment_b),
                    "fields": fields,
                    "pixels": pixels,
                }
            )
        id_a = (segment_a.metadata or {}).get(MetaKey.SOURCE_ID)
        id_b = (segment_b.metadata or {}).get(MetaKey.SOURCE_ID)
        if id_a is not None and id_b is not None and id_a != id_b:
            result.id_changes.append({"label": segment_a.label, "a": id_a, "b": id_b})
    result.pixels_changed = result.pixels - same
    unmatched_a = [s for s in a.segments if s.index not in matched_a]
    unmatched_b = [s for s in b.segments if s.index not in matched_b]
    empty_b = [s for s in unmatched_b if not area_b.get(s.index)]
    for segment in unmatched_a:
        if not area_a.get(segment.index):  # no pixels: match an empty one of B by its label
            twin = next((s for s in empty_b if not label_differences(segment, s)), None)
            if twin is not None:
                empty_b.remove(twin)
                unmatched_b.remove(twin)
                continue
        result.only_in_a.append({**describe(segment), "pixels": int(area_a.get(segment.index, 0))})
    result.only_in_b = [{**describe(s), "pixels": int(area_b.get(s.index, 0))} for s in unmatched_b]
    return result


def category_changes(a: list[Category], b: list[Category]) -> list[dict[str, Any]]:
    """Categories (by id) missing on one side or differing in name or thing/stuff."""
    by_id_b = {c.id: c for c in b}
    changes = []
    for category in a:
        other = by_id_b.pop(category.id, None)
        if other is None:
            changes.append({"type": "category", "id": category.id, "only_in": "a"})
            continue
        fields = [f for f in ("name", "isthing") if getattr(category, f) != getattr(other, f)]
        if fields:
            changes.append(
                {
                    "type": "category",
                    "id": category.id,
                    "fields": fields,
                    "a": {f: getattr(category, f) for f in fields},
                    "b": {f: getattr(other, f) for f in fields},
                }
            )
    changes.extend({"type": "category", "id": c.id, "only_in": "b"} for c in by_id_b.values())
    return changes


@dataclass
class DiffSummary:
    """Counts over the whole comparison."""

    compared: int = 0
    identical: int = 0
    differing: int = 0
    only_in_a: int = 0
    only_in_b: int = 0
    unreadable: int = 0
    category_changes: int = 0
    pixels_changed: int = 0
    label_changes: int = 0
    id_changes: int = 0

    @property
    def is_identical(self) -> bool:
        """True when the two datasets hold the same segmentation."""
        return not (
            self.differing
            or self.only_in_a
            or self.only_in_b
            or self.unreadable
            or self.category_changes
        )

    def to_json(self) -> dict[str, Any]:
        """The final ``--json`` line."""
        return {"type": "summary", **self.__dict__, "identical_datasets": self.is_identical}

    def line(self) -> str:
        """One human-readable line."""
        verdict = "identical" if self.is_identical else "DIFFERENT"
        return (
            f"{verdict}: {self.compared} item(s) compared, {self.identical} identical, "
            f"{self.differing} differ ({self.pixels_changed} pixel(s) changed, "
            f"{self.label_changes} label change(s)); {self.only_in_a} only in A, "
            f"{self.only_in_b} only in B, {self.unreadable} unreadable, "
            f"{self.category_changes} category change(s), {self.id_changes} instance id(s) "
            "renumbered"
        )


_END = object()

Pairing = tuple[str, Any, Any]
"""``("pair", ref_a, ref_b)``, ``("rejected", side, error record)`` or
``("only", side, reference id)``."""


def pair_references(
    refs_a: Iterable[ItemRef], refs_b: Iterable[ItemRef], *, report_only_in_b: bool = True
) -> Iterator[Pairing]:
    """Match two streams of item references by reference id, reading both in step.

    A reference waits only until its partner turns up, so two datasets listed in the same
    order (a round trip) pair with constant memory; out-of-order ones are held until matched.
    Without ``report_only_in_b`` (A is a subset), B is read only while A has unmatched items.
    """
    pending: dict[str, dict[str, ItemRef]] = {"a": {}, "b": {}}
    iterators = {"a": iter(refs_a), "b": iter(refs_b)}
    done = {"a": False, "b": False}
    while not (done["a"] and done["b"]):
        for side, other in (("a", "b"), ("b", "a")):
            if done[side]:
                continue
            if side == "b" and done["a"] and not pending["a"] and not report_only_in_b:
                done["b"] = True  # nothing of A is left to match
                continue
            ref = next(iterators[side], _END)
            if ref is _END:
                done[side] = True
                continue
            if isinstance(ref, RejectedItem):
                yield "rejected", side, ref.error.to_record()
                continue
            ref_id = reference_id(ref)
            if ref_id is None:
                yield "only", side, None
            elif ref_id in pending[other]:
                partner = pending[other].pop(ref_id)
                yield ("pair", ref, partner) if side == "a" else ("pair", partner, ref)
            else:
                pending[side][ref_id] = ref
    for ref_id in pending["a"]:
        yield "only", "a", ref_id
    if report_only_in_b:
        for ref_id in pending["b"]:
            yield "only", "b", ref_id


def diff_datasets(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    **settings: Any,
) -> Iterator[dict[str, Any]]:
    """Compare dataset ``a`` with dataset ``b``; yield one JSON-able record per difference
    (``type`` ``category``, ``missing``, ``unreadable`` or ``item``), then the ``summary``;
    each checked against schema ``segconvert-diff``.

    Only items that differ are yielded; the summary's ``identical_datasets`` is the verdict.
    Keyword settings are those of :func:`diff_records`: ``from_a``, ``from_b``, ``options_a``,
    ``options_b``, ``strict_ids``, ``limit`` and ``items`` (which select items of A; B is then
    compared on those only), ``registry``, ``progress``.
    """
    for record in diff_records(a, b, **settings):
        schemas.validate(schemas.DIFF_RECORD, record)
        yield record


def diff_records(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    from_a: str | None = None,
    from_b: str | None = None,
    options_a: dict[str, Any] | None = None,
    options_b: dict[str, Any] | None = None,
    strict_ids: bool = False,
    limit: int | None = None,
    items: Any = None,
    registry: Registry | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The records of :func:`diff_datasets`, unchecked."""
    dataset_a = open(a, from_a, limit=limit, items=items, registry=registry, **(options_a or {}))
    dataset_b = open(b, from_b, registry=registry, **(options_b or {}))
    summary = DiffSummary()
    for change in category_changes(dataset_a.categories, dataset_b.categories):
        summary.category_changes += 1
        yield change
    subset_only = limit is not None or items is not None
    pairs = pair_references(
        dataset_a.references(), dataset_b.references(), report_only_in_b=not subset_only
    )
    for done, (kind, first, second) in enumerate(pairs, 1):
        if progress:
            progress(done, dataset_a.size)
        if kind == "rejected":
            summary.unreadable += 1
            yield {"type": "unreadable", "side": first, **second}
            continue
        if kind == "only":
            setattr(summary, f"only_in_{first}", getattr(summary, f"only_in_{first}") + 1)
            yield {"type": "missing", "item": second, "only_in": first}
            continue
        samples = []
        for side, dataset, ref in (("a", dataset_a, first), ("b", dataset_b, second)):
            try:
                samples.append(dataset.load(ref))
            except ItemError as error:
                summary.unreadable += 1
                yield {"type": "unreadable", "side": side, **error.to_record()}
        if len(samples) < 2:
            continue
        result = compare_samples(samples[0], samples[1], strict_ids=strict_ids)
        summary.compared += 1
        summary.id_changes += len(result.id_changes)
        if result.identical:
            summary.identical += 1
            continue
        summary.differing += 1
        summary.pixels_changed += result.pixels_changed
        summary.label_changes += len(result.label_changes)
        yield result.to_json()
    yield summary.to_json()


def record_lines(record: dict[str, Any], strict_ids: bool = False) -> list[str]:
    """Human-readable lines for one record of :func:`diff_datasets`."""
    kind = record["type"]
    if kind == "summary":
        summary = DiffSummary(
            **{k: v for k, v in record.items() if k not in ("type", "identical_datasets")}
        )
        return [summary.line()]
    if kind == "missing":
        return [f"{record['item']}: only in {record['only_in'].upper()}"]
    if kind == "unreadable":
        return [
            f"{record['item']}: unreadable in {record['side'].upper()}: "
            f"[{record['rule']}] {record['message']}"
        ]
    if kind == "category":
        if "only_in" in record:
            return [f"category {record['id']}: only in {record['only_in'].upper()}"]
        return [f"category {record['id']}: {record['a']} in A, {record['b']} in B"]
    item = ItemDiff(
        record["item"],
        pixels=record["pixels"],
        pixels_changed=record["pixels_changed"],
        label_changes=record["label_changes"],
        only_in_a=record["only_in_a"],
        only_in_b=record["only_in_b"],
        id_changes=record["id_changes"],
        size=record.get("size"),
        strict_ids=strict_ids,
    )
    return item.lines()
