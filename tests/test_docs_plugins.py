"""docs/plugins.md, the plugin author's guide, tells the truth about the contract it documents."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
from helpers import REPO

from segconvert import (
    STRICT,
    Category,
    Dataset,
    ExportContext,
    Exporter,
    ImageKey,
    Importer,
    ItemReference,
    MetaKey,
    Option,
    Sample,
    Segment,
    hookspecs,
    testing,
)

GUIDE = (REPO / "docs" / "plugins.md").read_text()
README = (REPO / "README.md").read_text()


def _constants(keys: type) -> dict[str, str]:
    return {k: v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str)}


def _table_rows(heading_text: str) -> set[tuple[str, str]]:
    """``(key, constant)`` of the markdown table rows after ``heading_text``."""
    lines = GUIDE.split(heading_text, 1)[1].splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("|"))
    end = next(k for k in range(start, len(lines)) if not lines[k].startswith("|"))
    table = "\n".join(lines[start:end])
    return set(re.findall(r"^\| `(\w+)` \| `(\w+\.\w+)` \|", table, re.M))


def test_the_readme_points_plugin_authors_to_the_guide():
    assert "[docs/plugins.md](docs/plugins.md)" in README


def test_the_hook_signatures_are_those_of_hookspecs():
    hooks = [f for name, f in vars(hookspecs).items() if name.startswith("segconvert_")]
    assert len(hooks) == 3
    for hook in hooks:
        signature = inspect.signature(hook)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        line = f"def {hook.__name__}({params}) -> {signature.return_annotation}:"
        assert line in GUIDE, line


@pytest.mark.parametrize(
    "documented", [Importer, Exporter, ExportContext, Option, Category, Segment, Sample, Dataset]
)
def test_every_field_of_the_descriptors_and_the_hub_is_documented(documented):
    section = GUIDE.split(f"`{documented.__name__}` —", 1)[1].split("\n\n")[0]
    for field in dataclasses.fields(documented):
        assert f"`{field.name}" in section, f"{documented.__name__}.{field.name}"


def test_the_reference_protocol_is_documented_attribute_by_attribute():
    section = GUIDE.split("## Item references", 1)[1].split("\n## ")[0]
    assert "`ItemReference`" in section
    attributes = [n for n in vars(ItemReference) if not n.startswith("_")]
    assert set(attributes) == {"reference_id", "file"}
    for name in attributes:
        assert f"- `{name}`" in section, name


def test_every_segment_metadata_key_is_in_the_guide_with_its_constant():
    rows = _table_rows("Segment-level keys")
    assert rows == {(v, f"MetaKey.{k}") for k, v in _constants(MetaKey).items()}


def test_every_image_level_metadata_key_is_in_the_guide_with_its_constant():
    rows = _table_rows("Image- and dataset-level keys")
    assert rows == {(v, f"ImageKey.{k}") for k, v in _constants(ImageKey).items()}


def test_the_void_convention_names_the_key_the_code_uses():
    section = GUIDE.split("### The void convention", 1)[1].split("\n## ")[0]
    assert f'`metadata={{"{MetaKey.VOID}": true}}`' in section
    assert "`Segment.is_void`" in section and "`ExportContext.void_label`" in section
    assert Segment("void", 0, {MetaKey.VOID: True}).is_void


def test_strictness_is_documented_as_the_option_the_code_declares():
    assert f'`options["{STRICT.key}"]`' in GUIDE and "`segconvert.STRICT`" in GUIDE


def test_schemas_and_detection_have_their_sections():
    for heading in ("## Schemas", "## Detection", "## Errors", "## Where your code runs"):
        assert heading in GUIDE, heading
    assert "Schema(name, package)" in GUIDE


def test_every_testing_helper_is_documented():
    helpers = [
        name
        for name, function in vars(testing).items()
        if inspect.isfunction(function)
        and not name.startswith("_")
        and function.__module__ == testing.__name__
    ]
    for name in helpers:
        if name in ("sample_dataset", "partition"):
            continue
        assert f"`{name}(" in GUIDE, name


def test_the_example_plugin_code_in_the_guide_is_valid_python():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks[1:]:
        compile(block, "docs/plugins.md", "exec")
