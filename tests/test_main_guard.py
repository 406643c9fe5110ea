"""The API never hangs under spawn/forkserver: an unguarded script is refused at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import PANOPTICAPI

from segconvert.main_guard import _inside_main_guard, check_main_guard

SAMPLE = PANOPTICAPI / "panoptic_examples.json"


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "migrate.py"
    script.write_text(textwrap.dedent(body))
    return script


def _run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_an_unguarded_script_fails_at_once_with_one_line(tmp_path, method):
    script = _script(
        tmp_path,
        f"""
        import multiprocessing
        from segconvert import convert
        multiprocessing.set_start_method({method!r})
        convert({str(SAMPLE)!r}, {str(tmp_path / "out")!r}, to_format="nucleus", jobs=2)
        """,
    )
    result = _run(script)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    last = lines[0]
    assert last.startswith("segconvert: error: ")
    assert "migrate.py, whose line 5 starts this conversion outside" in last
    assert 'if __name__ == "__main__":' in last
    assert not (tmp_path / "out").exists()  # refused before anything was written


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_guarded_script_converts_under_the_start_method(tmp_path, method):
    script = _script(
        tmp_path,
        f"""
        import multiprocessing
        from segconvert import convert

        def main():
            report = convert({str(SAMPLE)!r}, {str(tmp_path / "out")!r}, to_format="nucleus",
                             jobs=2)
            print(report.summary())

        if __name__ == "__main__":
            multiprocessing.set_start_method({method!r})
            main()
        """,
    )
    result = _run(script)
    assert result.returncode == 0, result.stderr
    assert "2 converted, 0 failed" in result.stdout


def test_an_unguarded_script_with_one_job_needs_no_guard(tmp_path):
    script = _script(
        tmp_path,
        f"""
        import multiprocessing
        from segconvert import convert
        multiprocessing.set_start_method("spawn")
        print(convert({str(SAMPLE)!r}, {str(tmp_path / "out")!r}, to_format="nucleus",
                      jobs=1).summary())
        """,
    )
    result = _run(script)
    assert result.returncode == 0, result.stderr
    assert "2 converted" in result.stdout


@pytest.mark.parametrize(
    ("source", "line", "inside"),
    [
        ('if __name__ == "__main__":\n    run()\n', 2, True),
        ("if '__main__' == __name__:\n    run()\n", 2, True),
        ("run()\n", 1, False),
        ('if __name__ != "__main__":\n    run()\n', 2, False),
        ("if True:\n    run()\n", 2, False),
        ("def f():\n    run()\nf()\n", 3, False),
    ],
)
def test_the_guard_is_recognised_only_as_written(tmp_path, source, line, inside):
    script = tmp_path / "s.py"
    script.write_text(source)
    assert _inside_main_guard(script, line) is inside


def test_fork_needs_no_guard():
    check_main_guard("fork")  # never refuses: fork workers do not re-run the script


def test_under_pytest_spawn_is_allowed():
    check_main_guard("spawn")  # pytest's own entry point is guarded
