"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s3server import s3  # noqa: F401 - the S3 server fixture, for every test module

from segconvert import Registry, build_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Built-in formats only: tests must not depend on what else is installed."""
    return build_registry(load_third_party=False)


@pytest.fixture
def no_third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make CLI runs load built-in formats only."""
    monkeypatch.setenv("SEGCONVERT_DISABLE_PLUGINS", "1")
    yield
