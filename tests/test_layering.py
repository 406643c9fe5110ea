"""Import layering: the host core imports no format; formats import only the public API.

Checked on the source with :mod:`ast`, so lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import REPO

import segconvert

PACKAGE = REPO / "segconvert"
FORMATS = PACKAGE / "formats"
EXAMPLE = REPO / "examples" / "segconvert-semantic-png" / "segconvert_semantic_png"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path`` (relative ones resolved
    to ``.`` so they can be told apart)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            name = "." * node.level + (node.module or "")
            found.append((node.lineno, name))
    return found


def host_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if FORMATS not in p.parents)


def format_modules() -> list[Path]:
    return sorted([*FORMATS.rglob("*.py"), *EXAMPLE.rglob("*.py")])


def test_the_tests_exercise_this_working_tree():
    assert Path(segconvert.__file__).resolve().parent == PACKAGE.resolve(), (
        "segconvert is imported from outside this checkout: pip install -e '.[test]'"
    )


def test_the_host_core_imports_no_format():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in host_modules()
        for line, name in imported_modules(path)
        if name.startswith("segconvert.formats") or name == "segconvert_semantic_png"
    ]
    assert offenders == []


def test_formats_import_only_the_public_api_and_their_own_package():
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in format_modules()
        for line, name in imported_modules(path)
        if name.startswith("segconvert.") or name == ".." or name.startswith("..")
    ]
    assert offenders == []


def test_every_public_name_exists():
    assert all(hasattr(segconvert, name) for name in segconvert.__all__)


def test_the_layering_check_catches_a_lazy_private_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from segconvert.formats.nucleus import exporter\n")
    assert imported_modules(module) == [(2, "segconvert.formats.nucleus")]
