"""The docs tell the truth: marked examples run, the CLI reference is the app's help, the site
builds, the README is short and its set-up commands come first."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from segconvert.cli import main
from segconvert.cli_reference import MARKER, command_helps, reference_markdown

DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCK = re.compile(r"^<!-- test: run -->\n```(\w+)\n(.*?)```", re.S | re.M)
MARK_LINE = re.compile(r"^<!-- test: run -->$", re.M)
SPAWN_PREAMBLE = 'import multiprocessing\nmultiprocessing.set_start_method("spawn", force=True)\n'


def marked_blocks(page: Path) -> list[tuple[str, str]]:
    """``(language, code)`` of every block marked to run, in page order."""
    text = page.read_text()
    blocks = BLOCK.findall(text)
    marks = len(MARK_LINE.findall(text))
    assert len(blocks) == marks, f"{page}: a run mark not followed by a block"
    return blocks


PAGES_WITH_EXAMPLES = [p for p in [README, *PAGES] if marked_blocks(p)]


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "fixtures").symlink_to(REPO / "fixtures")
    return work


def _run_block(language: str, code: str, work: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    if language == "bash":
        for line in code.strip().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            result = subprocess.run(
                line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=300
            )
            assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
    elif language == "python":
        script = work / "example.py"
        script.write_text(SPAWN_PREAMBLE + code)
        result = subprocess.run(
            [sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, f"{code}\n{result.stdout}{result.stderr}"
    else:  # pragma: no cover - a new kind of block needs a runner
        raise AssertionError(f"no runner for {language} blocks")


@pytest.mark.slow  # a subprocess per line, the SDK's import, spawn workers: seconds per page
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_marked_examples_of_each_page_run(page, tmp_path):
    work = _workdir(tmp_path)
    for language, code in marked_blocks(page):
        _run_block(language, code, work)


def test_the_label_map_example_is_marked_and_changes_the_taxonomy(tmp_path):
    import json

    usage = (DOCS / "usage.md").read_text()
    (language, code), *_ = [b for b in marked_blocks(DOCS / "usage.md") if "label-map" in b[1]]
    assert "--label-map" in usage and language == "bash"
    work = _workdir(tmp_path)
    _run_block(language, code, work)
    names = {c["name"] for c in json.loads((work / "out/mapped/taxonomy.json").read_text())[
        "categories"
    ]}  # fmt: skip
    assert "pedestrian" in names and "person" not in names and "truck" not in names
    assert "sports ball" not in names


def _readme_python_example() -> str:
    (code,) = [c for lang, c in marked_blocks(README) if lang == "python"]
    return code


@pytest.mark.slow  # spawn workers start a fresh interpreter each
def test_the_readme_python_example_has_the_guard_and_runs_under_spawn(tmp_path):
    code = _readme_python_example()
    assert 'if __name__ == "__main__":' in code
    work = _workdir(tmp_path)
    _run_block("python", code, work)
    assert (work / "out" / "from-python" / "annotations.jsonl").is_file()


def test_the_readme_python_example_without_the_guard_stops_at_once_under_spawn(tmp_path):
    lines = _readme_python_example().splitlines()
    guard = lines.index('if __name__ == "__main__":')
    unguarded = "\n".join(lines[:guard] + [line[4:] for line in lines[guard + 1 :]]) + "\n"
    work = _workdir(tmp_path)
    script = work / "example.py"
    script.write_text(SPAWN_PREAMBLE + unguarded)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # the one-line explanation, no traceback
    assert "outside 'if __name__ == \"__main__\":'" in lines[0]
    assert not (work / "out").exists()


# ------------------------------------------------------------------ the CLI reference


def test_the_cli_reference_holds_every_command_help_exactly(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    reference = reference_markdown()
    for title, text in command_helps().items():
        args = [*title.split()[1:], "--help"]
        try:
            main(["--no-plugins", *args])
        except SystemExit as exit:  # pragma: no cover - --help exits 0 without raising
            assert exit.code == 0
        printed = capsys.readouterr().out
        assert printed.rstrip("\n") == text.rstrip("\n"), title
        assert f"## `{title}`\n\n```text\n{text}\n```" in reference


def test_the_cli_page_keeps_the_marker_and_documents_completion():
    page = (DOCS / "cli.md").read_text()
    assert MARKER in page
    assert "_SEGCONVERT_COMPLETE=bash_source segconvert" in page


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_builds_strictly_with_the_generated_reference(tmp_path):
    import html

    site = tmp_path / "site"
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    built = html.unescape((site / "cli" / "index.html").read_text())
    for text in command_helps().values():
        first_option = next(line for line in text.splitlines() if line.strip().startswith("-"))
        assert first_option.strip() in built
    assert MARKER not in built


# ------------------------------------------------------------------ the README


def test_the_readme_is_short_and_its_two_setup_commands_come_first():
    text = README.read_text()
    assert len(text.splitlines()) <= 90
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    first, second = blocks[0].strip(), blocks[1].strip()
    assert first.startswith("pip install -e . && segconvert coco-to-nucleus fixtures/")
    assert first.endswith("--overwrite")  # runs any number of times
    assert second == 'pip install -e ".[test]" && pytest'


def test_the_readme_first_command_runs_twice_in_a_fresh_folder(tmp_path):
    first = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)[0].strip()
    conversion = shlex.split(first.split("&&", 1)[1])
    assert conversion[0] == "segconvert"
    work = _workdir(tmp_path)
    for _ in range(2):
        cwd = os.getcwd()
        os.chdir(work)
        try:
            main(["--no-plugins", *conversion[1:], "-q"])
        except SystemExit as exit:
            assert exit.code == 0
        finally:
            os.chdir(cwd)
    assert (work / "out" / "nucleus" / "annotations.jsonl").is_file()


def test_the_readme_links_every_docs_page():
    text = README.read_text()
    for page in PAGES:
        assert f"(docs/{page.relative_to(DOCS).as_posix()})" in text, page


def test_every_docs_page_is_in_the_mkdocs_nav():
    nav = (REPO / "mkdocs.yml").read_text()
    for page in PAGES:
        assert f" {page.relative_to(DOCS).as_posix()}" in nav, page
