"""docs/testing.md names every environment variable the tests read."""

from __future__ import annotations

import re

from helpers import REPO


def test_every_variable_the_tests_read_is_documented():
    read = set()
    for path in (REPO / "tests").rglob("*.py"):
        read |= set(re.findall(r"environ\.get\(\s*\"(SEGCONVERT_\w+)\"", path.read_text()))
    assert {"SEGCONVERT_REALDATA", "SEGCONVERT_SKIP_FRESH_INSTALL"} <= read
    page = (REPO / "docs" / "testing.md").read_text()
    for name in sorted(read):
        assert f"`{name}=" in page, name
