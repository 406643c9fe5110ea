"""In a fresh virtualenv: install segconvert and the example plugin from this checkout, as a
user would, and drive them through the CLI (slow: about a minute; needs the package index)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO
from PIL import Image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.skipif(
        os.environ.get("SEGCONVERT_SKIP_FRESH_INSTALL") == "1",
        reason="SEGCONVERT_SKIP_FRESH_INSTALL=1",
    ),
]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh")
    source = root / "checkout"  # build from a copy: the checkout stays untouched
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            ".azurite",
            "*.egg-info",
            "__pycache__",
            "build",
            "dist",
            "out",
            "site",
        ),  # what a user's runs (or the Azure tests' Azurite) leave in the checkout is never input
    )
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*install, str(source)], check=True, timeout=900)
    subprocess.run(
        [*install, str(source / "examples" / "segconvert-semantic-png")], check=True, timeout=900
    )
    return root


def run(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEGCONVERT_DISABLE_PLUGINS")
    }
    return subprocess.run(
        [str(root / "venv" / "bin" / "segconvert"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or root,
        timeout=300,
    )


def test_the_readme_first_command_converts_the_bundled_sample(fresh_venv):
    result = run(
        fresh_venv,
        "coco-to-nucleus",
        "fixtures/coco-panoptic/panopticapi/panoptic_examples.json",
        "out/nucleus",
        cwd=fresh_venv / "checkout",
    )
    assert result.returncode == 0, result.stderr
    assert "2 converted, 0 failed" in result.stdout
    checked = run(
        fresh_venv, "validate", "out/nucleus", "--format", "nucleus", cwd=fresh_venv / "checkout"
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_installed_example_plugin_is_listed_and_converts(fresh_venv, tmp_path):
    formats = run(fresh_venv, "formats", "--json")
    assert formats.returncode == 0, formats.stderr
    rows = {(r["name"], r["direction"]): r for r in json.loads(formats.stdout)}
    assert rows[("semantic-png", "import")]["distribution"] == "segconvert-semantic-png"
    assert rows[("semantic-png", "export")]["installed"] is True
    plugins = json.loads(run(fresh_venv, "plugins", "--json").stdout)
    (plugin,) = [p for p in plugins["plugins"] if p["name"] == "semantic_png"]
    assert plugin == {
        "name": "semantic_png",
        "distribution": "segconvert-semantic-png",
        "version": "0.1.0",
        "builtin": False,
        "formats": ["semantic-png"],
    }
    data = tmp_path / "semantic"
    (data / "masks").mkdir(parents=True)
    (data / "labels.txt").write_text("background\ncat\ndog\n")
    values = np.zeros((5, 7), np.uint8)
    values[:, 3:] = 2
    Image.fromarray(values).save(data / "masks" / "x.png")
    result = run(
        fresh_venv,
        "convert",
        str(data),
        str(tmp_path / "out"),
        "--from",
        "semantic-png",
        "--to",
        "nucleus",
    )
    assert result.returncode == 0, result.stderr
    (line,) = [
        json.loads(x) for x in (tmp_path / "out" / "annotations.jsonl").read_text().splitlines()
    ]
    assert [s["label"] for s in line["annotations"]] == ["background", "dog"]
    assert "semantic-png" not in run(fresh_venv, "--no-plugins", "formats").stdout


def test_the_wheel_reads_its_own_schemas(fresh_venv):
    python = fresh_venv / "venv" / "bin" / "python"
    code = (
        "import segconvert, segconvert.schemas as s; "
        "print(s.schema_dir()); print(segconvert.__file__); "
        "print(s.resolve('coco-panoptic').path()); print(s.load_schema('sa1b-image')['title'])"
    )
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=fresh_venv, check=True
    ).stdout.split()
    assert out[0] == str(Path(out[1]).parent / "schemas")
    assert "site-packages" in out[0]
    assert out[2] == str(
        Path(out[1]).parent / "formats/coco_panoptic/schemas/coco-panoptic.schema.json"
    )


SHADOW_TOP_LEVEL = {
    "pyproject.toml": """
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "segconvert-shadow-top-level"
version = "9.9"

[tool.hatch.build.targets.wheel]
packages = ["segconvert_nucleus"]
""",
    "segconvert_nucleus/__init__.py": 'raise RuntimeError("the shadowing package was imported")\n',
}
"""A distribution installing a top-level ``segconvert_nucleus`` (the old built-in's name)."""

SHADOW_NAMED = {
    "pyproject.toml": """
[build-system]
requires = ["hatchling>=1.18"]
build-backend = "hatchling.build"

[project]
name = "segconvert-nucleus"
version = "9.9"

[project.entry-points.segconvert]
nucleus = "community_nucleus"

[tool.hatch.build.targets.wheel]
packages = ["community_nucleus"]
""",
    "community_nucleus/__init__.py": """
from segconvert import Importer, hookimpl


def _scan(path, options):
    raise RuntimeError("the community nucleus importer ran")


@hookimpl
def segconvert_importers():
    return [Importer(name="nucleus", scan=_scan, load=_scan, description="community")]
""",
}
"""A distribution named ``segconvert-nucleus`` (the README's naming convention) with another
package, whose plugin claims the ``nucleus`` name."""


@pytest.fixture(scope="module")
def shadowed_venv(fresh_venv: Path) -> Path:
    python = fresh_venv / "venv" / "bin" / "python"
    for name, files in (("top-level", SHADOW_TOP_LEVEL), ("named", SHADOW_NAMED)):
        project = fresh_venv / f"shadow-{name}"
        for relative, text in files.items():
            (project / relative).parent.mkdir(parents=True, exist_ok=True)
            (project / relative).write_text(text.lstrip())
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(project),
            ],
            check=True,
            timeout=900,
        )
    return fresh_venv


def test_shadowing_distributions_leave_every_builtin_format_working(shadowed_venv, tmp_path):
    python = shadowed_venv / "venv" / "bin" / "python"
    probe = "import importlib.util as u; print(u.find_spec('segconvert_nucleus') is not None)"
    installed = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    assert installed.stdout.strip() == "True"  # the shadowing package really is there
    formats = run(shadowed_venv, "formats", "--json")
    assert formats.returncode == 0, formats.stderr
    rows = {(r["name"], r["direction"]): r["provider"] for r in json.loads(formats.stdout)}
    for name, package in (
        ("nucleus", "nucleus"),
        ("coco-panoptic", "coco_panoptic"),
        ("cityscapes", "cityscapes"),
        ("coco-rle", "coco_rle"),
    ):
        for direction in ("import", "export"):
            assert rows[(name, direction)] == f"segconvert.formats.{package}"
    assert "refused" in formats.stderr and "segconvert-nucleus" in formats.stderr
    source = (
        shadowed_venv / "checkout" / "fixtures/coco-panoptic/panopticapi/panoptic_examples.json"
    )
    steps = [
        ("coco-to-nucleus", str(source), str(tmp_path / "nucleus")),
        ("convert", str(tmp_path / "nucleus"), str(tmp_path / "coco"), "--to", "coco-panoptic"),
        ("convert", str(source), str(tmp_path / "cityscapes"), "--to", "cityscapes"),
        ("convert", str(source), str(tmp_path / "rle"), "--to", "coco-rle"),
        ("convert", str(tmp_path / "rle" / "instances.json"), str(tmp_path / "back"),
         "--from", "coco-rle", "--to", "nucleus"),
    ]  # fmt: skip
    for args in steps:
        result = run(shadowed_venv, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "2 converted, 0 failed" in result.stdout, (args, result.stdout)
    checked = run(shadowed_venv, "validate", str(tmp_path / "nucleus"), "--format", "nucleus")
    assert checked.returncode == 0, checked.stdout + checked.stderr
