"""One exception tree for segconvert, rooted at :class:`SegconvertError`.

The CLI turns any :class:`SegconvertError` into a one-line message and a non-zero exit
code; anything else escaping is a bug. Per-item problems are :class:`ItemError`: the
pipeline records them in the error report and carries on with the next item.
"""

from __future__ import annotations


class SegconvertError(Exception):
    """Base class of every error segconvert raises on purpose."""

    exit_code = 1


class UsageError(SegconvertError):
    """The caller asked for something that cannot be done as asked (bad option, bad name)."""

    exit_code = 2


class UnknownFormatError(UsageError):
    """No importer or exporter is registered under the requested name."""


class PluginError(SegconvertError):
    """A plugin is broken: it failed to load or returned an invalid descriptor."""


class FormatConflictError(PluginError):
    """Two plugins claim the same format name; the message names both providers."""


class InputError(SegconvertError):
    """The input as a whole cannot be read (missing file, malformed JSON, unknown layout).

    ``file`` names the file at fault when one is known.
    """

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class OutputError(SegconvertError):
    """The output folder cannot be written as asked (exists and is not empty, not writable)."""


class ItemError(SegconvertError):
    """One item (one image) cannot be converted; the rest of the dataset can.

    Attributes:
        rule: a short, stable, machine-readable name of the rule broken, e.g. ``"png-missing"``.
        item: the item's reference id, when known.
        file: the source file at fault, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        item: str | None = None,
        file: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.item = item
        self.file = file

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes must survive the trip back from a worker process.
        return (_rebuild_item_error, (str(self), self.rule, self.item, self.file))

    def to_record(self) -> dict[str, str | None]:
        """The JSON-able form written to the error report."""
        return {"item": self.item, "file": self.file, "rule": self.rule, "message": str(self)}


def _rebuild_item_error(message: str, rule: str, item: str | None, file: str | None) -> ItemError:
    return ItemError(message, rule=rule, item=item, file=file)


class ValidationError(ItemError):
    """An output document or mask broke a schema or a rule checked in code."""


def plugin_failure(exc: BaseException, *, plugin: str, format: str, stage: str) -> PluginError:
    """A one-line :class:`PluginError` for an unexpected exception raised by plugin code.

    ``stage`` is the function that raised (``scan``, ``prepare``, ``write_dataset``, ...);
    the original exception stays attached as ``__cause__`` for ``--traceback``.
    """
    error = PluginError(
        f"{plugin} failed in {stage} of format {format!r}: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error
