"""Shared fixtures, and the slow-test policy.

Tests marked ``slow`` or ``network`` (a fresh venv, spawned workers, thousands of items, real
data sets) are skipped by default so ``pytest`` stays fast while iterating; they run with
``--run-slow`` or when ``CI`` is set to a true value (``.ci/run`` sets ``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# the object-store servers (S3, GCS, Azure Blob on loopback), for every test module
from objectstores import azure, gcs, s3, store  # noqa: F401

from segconvert import Registry, build_registry

SLOW_MARKERS = ("slow", "network")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run tests marked slow or network (CI=true does the same)",
    )


def run_everything(config: pytest.Config) -> bool:
    """Whether slow and network tests run: ``--run-slow`` or ``CI`` set to a true value."""
    in_ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return bool(config.getoption("--run-slow")) or in_ci


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if run_everything(config):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (CI=true runs it)")
    for item in items:
        if any(item.get_closest_marker(marker) for marker in SLOW_MARKERS):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """Built-in formats only: tests must not depend on what else is installed."""
    return build_registry(load_third_party=False)


@pytest.fixture
def no_third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make CLI runs load built-in formats only."""
    monkeypatch.setenv("SEGCONVERT_DISABLE_PLUGINS", "1")
    yield
