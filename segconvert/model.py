"""The hub: the one in-memory form every importer reads into and every exporter writes from.

It is the Nucleus idea -- one index mask per image plus a list of :class:`Segment` s -- widened
only where Nucleus's wire limits would lose data: the mask may hold more than 256 indices,
and the taxonomy (:class:`Category`) travels with the dataset.

Segment metadata keys that carry what the source formats need to come back unchanged are
named once, in :class:`MetaKey`, and documented in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from segconvert.errors import InputError, ItemError

IndexMask = npt.NDArray[np.unsignedinteger[Any]]


class MetaKey:
    """Standard :attr:`Segment.metadata` keys (the only place they are spelled)."""

    CATEGORY_ID = "category_id"
    """int: the dataset category id of the segment (absent on the void segment)."""
    ISCROWD = "iscrowd"
    """int 0/1: COCO crowd flag (a group of instances annotated as one region)."""
    SOURCE_ID = "source_id"
    """int: the segment's id in its source format (COCO panoptic segment id,
    Cityscapes instanceIds value); exporters reuse it so ids survive a round trip."""
    VOID = "void"
    """bool: True marks the segment holding the unlabelled (void) pixels."""
    SCORE = "score"
    """float: a prediction's confidence (COCO results files), kept for the way back."""
    HIDDEN = "hidden_rle"
    """str: the pixels of an instance that lie under other instances in the index mask, as a
    compressed COCO RLE ``counts`` string of the image's size; the instance's full mask is its
    pixels in the mask plus these (see :mod:`segconvert.rle`). Absent when nothing is hidden."""
    AREA = "area"
    """number: the source record's own ``area`` (COCO instances), restored as it was."""
    BBOX = "bbox"
    """list of 4 numbers: the source record's own ``bbox`` (COCO instances), restored as it was."""


class ImageKey:
    """Standard :attr:`Sample.metadata` (image-level) keys and :attr:`Dataset.metadata` keys.

    These are how one format hands image- and dataset-level facts to another; a plugin reads
    the ones it understands and ignores the rest.
    """

    IMAGE = "image"
    """dict (Sample): the source's image record (COCO ``images[]`` entry: ``id``, ``file_name``,
    ``width``, ``height``, ...); COCO exporters restore it."""
    ANNOTATION = "annotation"
    """dict (Sample): extra fields of the source's per-image annotation record (COCO panoptic
    ``annotations[]`` entry beyond ``segments_info``)."""
    CITYSCAPES = "cityscapes"
    """dict (Sample): ``{"split", "city", "frame"}`` of a Cityscapes frame, so the way back puts it
    in the same folder under the same frame name."""
    INFO = "info"
    """dict (Dataset): the COCO ``info`` block."""
    LICENSES = "licenses"
    """list (Dataset): the COCO ``licenses`` block."""
    COCO_DOCUMENT = "coco_document"
    """str (Dataset): ``"results"`` when the source was a COCO results list, so the way back
    (through Nucleus too: it travels in taxonomy.json) writes a results list again."""
    COCO_BLOCKS = (INFO, LICENSES)
    """The dataset-level blocks COCO-family formats carry over."""


RECORD_METADATA_KEYS = (
    MetaKey.CATEGORY_ID,
    MetaKey.ISCROWD,
    MetaKey.SOURCE_ID,
    MetaKey.VOID,
    MetaKey.SCORE,
    MetaKey.HIDDEN,
    MetaKey.AREA,
    MetaKey.BBOX,
)
"""Every standard :class:`MetaKey`: exporters write these into their own fields, never as extra
keys."""


DEFAULT_VOID_LABEL = "void"


@dataclass(frozen=True)
class Category:
    """A dataset-level class.

    ``isthing`` says whether the class has countable instances (COCO ``isthing``,
    Cityscapes ``hasInstances``); ``color`` is the RGB display colour, when the source has one.
    """

    id: int
    name: str
    supercategory: str | None = None
    """``None`` when the source has no supercategory (e.g. LVIS), so none is invented."""
    isthing: bool = True
    color: tuple[int, int, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def category_problem(category: Category) -> str | None:
    """What is wrong with one category as a hub value, or ``None``."""
    if isinstance(category.id, bool) or not isinstance(category.id, int):
        return f"id {category.id!r} is not an integer"
    if not isinstance(category.name, str) or not category.name:
        return f"name {category.name!r} is not a non-empty string"
    if category.supercategory is not None and not isinstance(category.supercategory, str):
        return f"supercategory {category.supercategory!r} is not a string"
    if category.color is not None:
        color = tuple(category.color)
        if len(color) != 3 or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color
        ):
            return f"colour {list(color)!r} is not three integers 0-255"
    return None


def check_categories(categories: Iterable[Category]) -> None:
    """Check a dataset's categories before any item is converted.

    Raises :class:`InputError` naming the first bad category: a non-integer or repeated id,
    an empty name, a colour that is not three integers 0-255.
    """
    seen: set[int] = set()
    for category in categories:
        problem = category_problem(category)
        if problem is None and category.id in seen:
            problem = f"id {category.id} is used by an earlier category"
        if problem is not None:
            raise InputError(f"category {category.name!r}: {problem}")
        seen.add(category.id)


@dataclass
class Segment:
    """One index of a mask: exactly Nucleus's ``Segment`` (label, index, metadata)."""

    label: str
    index: int
    metadata: dict[str, Any] | None = None

    @property
    def is_void(self) -> bool:
        """True when this segment holds the void (unlabelled) pixels."""
        return bool(self.metadata and self.metadata.get(MetaKey.VOID))

    @property
    def category_id(self) -> int | None:
        """The category id recorded in the metadata, if any."""
        if not self.metadata:
            return None
        value = self.metadata.get(MetaKey.CATEGORY_ID)
        return int(value) if value is not None else None


@dataclass
class Sample:
    """One image: its identity, size, index mask and segments.

    ``mask`` is H x W of the smallest unsigned dtype that holds its indices; every value
    present in it has exactly one segment. ``metadata`` holds image-level facts from the source
    (e.g. the COCO image id and record) so exporters can restore them.
    """

    reference_id: str
    width: int
    height: int
    mask: IndexMask
    segments: list[Segment]
    annotation_id: str | None = None
    file_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Facts worth reporting that are not errors (e.g. occluded pixels); each note is a JSON
    object with at least ``rule`` and ``message``; the pipeline adds ``item``."""
    mask_file: str | None = None
    """The file the mask was read from, if any: errors about the mask's pixels name it."""

    def check(self) -> None:
        """Check the hub invariants; raise :class:`ItemError` naming the rule broken."""
        if self.mask.ndim != 2 or self.mask.shape != (self.height, self.width):
            raise ItemError(
                f"mask is {self.mask.shape}, image is {self.height}x{self.width}",
                rule="mask-size",
                item=self.reference_id,
                file=self.mask_file,
            )
        indices = [s.index for s in self.segments]
        unique = set(indices)
        if len(unique) != len(indices):
            raise ItemError(
                "duplicate segment index", rule="duplicate-index", item=self.reference_id
            )
        top = int(self.mask.max()) if self.mask.size else 0
        if unique.issuperset(range(top + 1)):
            return  # indices cover 0..max: every value present has a segment, no count needed
        present = np.flatnonzero(np.bincount(self.mask.ravel()))
        missing = sorted(set(present.tolist()) - unique)
        if missing:
            raise ItemError(
                f"mask values without a segment: {missing[:10]}",
                rule="unlisted-index",
                item=self.reference_id,
                file=self.mask_file,
            )


ItemRef = Any
"""A cheap, picklable reference to one item of a source; only its importer reads it
(see :class:`ItemReference` for the two attributes the pipeline reads when present)."""


@runtime_checkable
class ItemReference(Protocol):
    """What the pipeline reads from an item reference, when the reference has it.

    A reference may be any picklable object (a string, a frozen dataclass). The pipeline
    never interprets it beyond these two attributes, both optional:

    * ``reference_id``: the item's id, used to refuse a second item with the same id
      (``duplicate-reference-id``) and to name the item in error reports;
    * ``file``: the source file to name in error reports.
    """

    @property
    def reference_id(self) -> str | None:
        """The item's id (unique within the dataset), when known."""

    @property
    def file(self) -> str | None:
        """The source file to blame in error reports, when known."""


def reference_id(ref: ItemRef) -> str | None:
    """``ref.reference_id`` when the reference has one (see :class:`ItemReference`)."""
    value = getattr(ref, "reference_id", None)
    return value if isinstance(value, str) else None


def reference_file(ref: ItemRef) -> str | None:
    """``ref.file`` when the reference has one (see :class:`ItemReference`)."""
    value = getattr(ref, "file", None)
    return str(value) if value is not None else None


@dataclass(frozen=True)
class RejectedItem:
    """An item known to be bad before loading; an importer may yield it among its references
    (e.g. an image entry without an annotation) and the pipeline reports its ``error``."""

    error: ItemError

    @property
    def reference_id(self) -> str | None:
        """The bad item's reference id, when known."""
        return self.error.item


def reject(reference_id: str, rule: str, message: str, *, file: str | None = None) -> RejectedItem:
    """A :class:`RejectedItem` for ``reference_id`` breaking ``rule``."""
    return RejectedItem(ItemError(message, rule=rule, item=reference_id, file=file))


@dataclass
class Dataset:
    """Categories plus a lazy stream of samples; nothing holds all masks at once.

    ``items`` yields cheap :data:`ItemRef` s; ``loader(ref, context)`` turns one into a
    :class:`Sample` and may run in a worker process (so it and ``context`` must pickle).
    """

    categories: list[Category]
    items: Iterable[ItemRef]
    loader: Callable[[ItemRef, Any], Sample] | None = None
    context: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    size: int | None = None
    """How many items ``items`` will yield, when known cheaply (for progress bars)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Dataset-level facts worth reporting (e.g. invented placeholder categories): each a JSON
    object with ``rule`` and ``message``; the pipeline reports them as warnings and notes."""

    def load(self, ref: ItemRef) -> Sample:
        """Load one item from its reference (a :class:`RejectedItem` raises its error)."""
        if isinstance(ref, RejectedItem):
            raise ref.error
        if self.loader is None:
            raise TypeError("this Dataset has no loader")
        return self.loader(ref, self.context)

    def __iter__(self) -> Iterator[Sample]:
        for ref in self.items:
            yield self.load(ref)

    def category_by_id(self) -> dict[int, Category]:
        """Categories keyed by id."""
        return {c.id: c for c in self.categories}


def smallest_index_dtype(count: int) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned dtype able to hold indices ``0..count-1``."""
    if count <= 1 << 8:
        return np.uint8
    if count <= 1 << 16:
        return np.uint16
    return np.uint32
