"""Consolidation of a sample's segments: label maps, panoptic/instance/semantic modes, and
what to do when a sample has more segments than the target can hold.

One Nucleus-style mask serves three kinds of segmentation; what differs is how pixel values
are grouped into Segments:

* ``panoptic`` (default): one Segment per thing instance and per stuff region; void its own.
* ``instance``: stuff regions and void collapse into one background Segment at index 0; each
  thing instance keeps its own Segment.
* ``semantic``: one Segment per class; instances of a class merge; void its own Segment.

A label map renames, merges and drops categories (dropped -> void) before that. The
pipeline applies a :class:`Transform` to every sample, in the worker, before the exporter
sees it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segconvert import schemas
from segconvert.errors import ItemError, UsageError
from segconvert.files import read_json
from segconvert.model import (
    DEFAULT_VOID_LABEL,
    Category,
    MetaKey,
    Sample,
    Segment,
    smallest_index_dtype,
)


class Mode(str, enum.Enum):
    """How pixel values are grouped into Segments (see the module docstring)."""

    PANOPTIC = "panoptic"
    INSTANCE = "instance"
    SEMANTIC = "semantic"


class OverflowPolicy(str, enum.Enum):
    """What to do with an item that has more segments than the target holds."""

    ERROR = "error"
    """Fail the item (``too-many-segments``)."""
    SEMANTIC = "semantic"
    """Write it in semantic mode when that fits, with a note."""
    SKIP = "skip"
    """Leave it out, with a note."""


MODES: tuple[str, ...] = tuple(m.value for m in Mode)
OVERFLOW_POLICIES: tuple[str, ...] = tuple(p.value for p in OverflowPolicy)


def parse_mode(value: str | Mode) -> Mode:
    """``value`` as a :class:`Mode`; a usage error names the accepted values."""
    try:
        return Mode(value)
    except ValueError:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {value!r}") from None


def parse_overflow_policy(value: str | OverflowPolicy) -> OverflowPolicy:
    """``value`` as an :class:`OverflowPolicy`; a usage error names the accepted values."""
    try:
        return OverflowPolicy(value)
    except ValueError:
        raise UsageError(
            f"on-overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {value!r}"
        ) from None


INSTANCE_BACKGROUND_LABEL = "background"
"""Default label of the index-0 background Segment in instance mode (Nucleus's convention)."""


class SkipItem(Exception):
    """Raised by :meth:`Transform.apply` when ``on_overflow='skip'`` leaves an item out."""

    def __init__(self, note: dict[str, Any]) -> None:
        super().__init__(note["message"])
        self.note = note


@dataclass(frozen=True)
class LabelMap:
    """Category renames, merges and drops, by category name.

    The file (schema ``label-map``) is ``{"rename": {"old": "new"}, "merge": {"from": "into"},
    "drop": ["name", ...]}``; every name on the left (and every merge target) must be a
    category of the dataset. Dropped categories become void.
    """

    rename: Mapping[str, str] = field(default_factory=dict)
    merge: Mapping[str, str] = field(default_factory=dict)
    drop: Sequence[str] = ()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelMap:
        """Read and schema-check a label map file."""
        document = read_json(Path(path))
        found = schemas.problems(schemas.LABEL_MAP, document)
        if found:
            raise UsageError(f"{path}: not a valid label map: {found[0]}")
        return cls(document.get("rename", {}), document.get("merge", {}), document.get("drop", []))

    def apply_to(
        self, categories: Sequence[Category]
    ) -> tuple[list[Category], dict[int, Category | None]]:
        """The output categories and, per input category id, its output category (None = void).

        Raises :class:`UsageError` naming every problem before any work starts.
        """
        by_name = {c.name: c for c in categories}
        problems = []
        used: dict[str, str] = {}
        for kind, names in (("rename", self.rename), ("merge", self.merge), ("drop", self.drop)):
            for name in names:
                if name not in by_name:
                    problems.append(f"{kind}: no category named {name!r}")
                if name in used:
                    problems.append(f"{name!r} is in both {used[name]} and {kind}")
                used[name] = kind
        for source, target in self.merge.items():
            if target not in by_name:
                problems.append(f"merge: {source!r} into {target!r}, which is not a category")
            elif target in self.drop or target in self.merge:
                verb = "dropped" if target in self.drop else "merged"
                problems.append(f"merge: {source!r} into {target!r}, which is itself {verb}")
        final_names = [
            self.rename.get(c.name, c.name)
            for c in categories
            if c.name not in self.merge and c.name not in self.drop
        ]
        clashes = sorted({n for n in final_names if final_names.count(n) > 1})
        if clashes:
            problems.append(f"rename: names {clashes} would be used twice (use merge)")
        if problems:
            raise UsageError("label map: " + "; ".join(problems))
        kept: dict[str, Category] = {}
        for category in categories:
            if category.name in self.merge or category.name in self.drop:
                continue
            kept[category.name] = dataclasses.replace(
                category, name=self.rename.get(category.name, category.name)
            )
        mapping: dict[int, Category | None] = {}
        for category in categories:
            if category.name in self.drop:
                mapping[category.id] = None
            else:
                mapping[category.id] = kept[self.merge.get(category.name, category.name)]
        return list(kept.values()), mapping


@dataclass(frozen=True)
class Transform:
    """What the pipeline does to each sample between import and export (picklable)."""

    mode: Mode = Mode.PANOPTIC
    on_overflow: OverflowPolicy = OverflowPolicy.ERROR
    max_segments: int | None = None
    void_label: str | None = None
    category_map: Mapping[int, Category | None] | None = None
    things: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        # Strings are accepted (the API and CLI take them); the fields always hold the enums.
        object.__setattr__(self, "mode", parse_mode(self.mode))
        object.__setattr__(self, "on_overflow", parse_overflow_policy(self.on_overflow))

    def for_dataset(
        self, categories: Sequence[Category], label_map: LabelMap | None
    ) -> tuple[Transform, list[Category]]:
        """This transform fitted to a dataset's ``categories`` (label map applied, thing ids
        known), with the output categories. Refuses a label map naming unknown categories."""
        transform = self
        if label_map is not None:
            categories, category_map = label_map.apply_to(categories)
            transform = dataclasses.replace(transform, category_map=category_map)
        things = frozenset(c.id for c in categories if c.isthing)
        return dataclasses.replace(transform, things=things), list(categories)

    @property
    def effective_void_label(self) -> str:
        """The label of the void (or instance-mode background) Segment."""
        if self.void_label:
            return self.void_label
        return INSTANCE_BACKGROUND_LABEL if self.mode is Mode.INSTANCE else DEFAULT_VOID_LABEL

    @property
    def is_identity(self) -> bool:
        """True when samples pass through untouched (unless they overflow)."""
        return self.mode is Mode.PANOPTIC and self.category_map is None and self.void_label is None

    def apply(self, sample: Sample) -> Sample:
        """Relabel, consolidate and check the segment count of one sample.

        Raises :class:`ItemError` (``too-many-segments``) or :class:`SkipItem` on overflow.
        """
        if not self.is_identity or sum(s.is_void for s in sample.segments) > 1:
            sample = consolidate(
                self.relabel(sample), self.mode, self.things, self.effective_void_label
            )
        if self.max_segments is None or len(sample.segments) <= self.max_segments:
            return sample
        count = len(sample.segments)
        message = f"{count} segments; the target holds at most {self.max_segments}"
        if self.on_overflow is OverflowPolicy.SEMANTIC:
            reduced = consolidate(sample, Mode.SEMANTIC, self.things, self.effective_void_label)
            if len(reduced.segments) <= self.max_segments:
                reduced.notes.append(
                    {
                        "rule": "overflow-semantic",
                        "segments": count,
                        "message": f"{message}: written as semantic "
                        f"({len(reduced.segments)} segments)",
                    }
                )
                return reduced
            message += f", even as semantic ({len(reduced.segments)})"
        elif self.on_overflow is OverflowPolicy.SKIP:
            raise SkipItem(
                {
                    "rule": "overflow-skipped",
                    "segments": count,
                    "message": f"{message}: left out (--on-overflow skip)",
                }
            )
        raise ItemError(message, rule="too-many-segments", item=sample.reference_id)

    def relabel(self, sample: Sample) -> Sample:
        """Apply the category map: new names and ids; dropped categories become void."""
        if self.category_map is None:
            return sample
        segments = []
        for segment in sample.segments:
            if segment.is_void or segment.category_id not in self.category_map:
                segments.append(segment)
                continue
            target = self.category_map[segment.category_id]  # type: ignore[index]
            metadata = dict(segment.metadata or {})
            if target is None:
                segments.append(
                    Segment(self.effective_void_label, segment.index, {MetaKey.VOID: True})
                )
                continue
            metadata[MetaKey.CATEGORY_ID] = target.id
            segments.append(Segment(target.name, segment.index, metadata))
        return dataclasses.replace(sample, segments=segments)


def consolidate(
    sample: Sample, mode: Mode | str, things: frozenset[int], void_label: str
) -> Sample:
    """Group ``sample``'s segments as ``mode`` says; void (or background) first, at index 0."""
    mode = parse_mode(mode)
    plan: list[tuple[Segment, Hashable | None, Segment]] = []
    for segment in sorted(sample.segments, key=lambda s: (not s.is_void, s.index)):
        category = segment.category_id
        if segment.is_void or (mode is Mode.INSTANCE and category not in things):
            plan.append((segment, "void", Segment(void_label, 0, {MetaKey.VOID: True})))
        elif mode is Mode.SEMANTIC:
            plan.append(
                (
                    segment,
                    ("class", category),
                    Segment(segment.label, 0, {MetaKey.CATEGORY_ID: category}),
                )
            )
        else:
            plan.append((segment, None, segment))
    return regroup(sample, plan)


def regroup(sample: Sample, plan: Sequence[tuple[Segment, Hashable | None, Segment]]) -> Sample:
    """Renumber segments following ``plan``: ``(segment, group key or None, group's Segment)``.

    Segments sharing a key become one (the first one's template); the rest keep their own.
    """
    top = max([s.index for s in sample.segments], default=0)
    lut = np.zeros(top + 1, dtype=np.int64)
    segments: list[Segment] = []
    index_of: dict[Hashable, int] = {}
    for segment, key, template in plan:
        if key is not None and key in index_of:
            lut[segment.index] = index_of[key]
            continue
        new_index = len(segments)
        segments.append(dataclasses.replace(template, index=new_index))
        if key is not None:
            index_of[key] = new_index
        lut[segment.index] = new_index
    mask = np.take(lut.astype(smallest_index_dtype(len(segments))), sample.mask)
    return dataclasses.replace(sample, mask=mask, segments=segments)
