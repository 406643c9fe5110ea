"""The hostile corpus (``tests/hostile/cases_*.py``) through the command line, as a user runs
it, under ``prlimit --as=2G`` with ``--jobs 1`` and ``--jobs 2``: no hang, no traceback, the
documented exit code, and each bad item in the error report with the rule naming its cause."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import segconvert_command
from hostile import Case, discover

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) absent"),
]
ADDRESS_SPACE = 2 << 30
TIMEOUT = 120
CORPUS = discover()


def test_the_corpus_is_discovered_from_every_owner_module():
    assert len(CORPUS) >= 10
    assert len({case.name for case in CORPUS}) == len(CORPUS)
    print(f"hostile corpus: {len(CORPUS)} cases x 2 job counts")


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_a_hostile_input_is_refused_cleanly_under_a_memory_limit(tmp_path, case: Case, jobs):
    arguments = case.build(tmp_path)
    out = tmp_path / "out"
    command = [
        "prlimit",
        f"--as={ADDRESS_SPACE}",
        *segconvert_command(),
        "convert",
        arguments[0],
        str(out),
        *arguments[1:],
        "--jobs",
        str(jobs),
        "--no-progress",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.name}: no answer within {TIMEOUT}s (a hang)")
    assert "Traceback" not in done.stderr, done.stderr
    assert "MemoryError" not in done.stderr, done.stderr
    assert done.returncode in case.exit_codes, (done.returncode, done.stderr)
    if case.error is not None:
        errors = [line for line in done.stderr.splitlines() if line.startswith("segconvert:")]
        assert len(errors) == 1 and case.error in errors[0], done.stderr
    if case.rules:
        report = Path(out) / "segconvert-errors.jsonl"
        found = {r["item"]: r["rule"] for r in map(json.loads, report.read_text().splitlines())}
        assert {item: found.get(item) for item in case.rules} == dict(case.rules)
