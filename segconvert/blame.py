"""Calling plugin code outside per-item work, so a bug in it is one line naming the plugin.

Per-item failures are isolated by :mod:`segconvert.items`; everything a plugin runs once
(``scan``, ``check_dataset``, ``prepare``, ``write_dataset``, ``detect``) goes through
:func:`blame` instead: a :class:`~segconvert.errors.SegconvertError` the plugin raised on
purpose passes through untouched; any other exception becomes a
:class:`~segconvert.errors.PluginError` naming the plugin, the format and the stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from segconvert.errors import SegconvertError, plugin_failure


@contextmanager
def blame(plugin: str, format: str, stage: str) -> Iterator[None]:
    """Turn an unexpected exception inside the ``with`` block into a one-line plugin error.

    Args:
        plugin: how to name the provider (``plugin 'x' (dist 1.0)``).
        format: the format whose descriptor is being called.
        stage: the descriptor function being called.
    """
    try:
        yield
    except SegconvertError:
        raise
    except Exception as exc:
        raise plugin_failure(exc, plugin=plugin, format=format, stage=stage) from exc
