"""Fuzzing every importer: random bytes and mutations of the real fixtures (the panopticapi
COCO sample, and the same two images converted into every other built-in format) never
produce a traceback, a hang or an allocation past a limit.

Each example rewrites one file of a dataset (bytes flipped, truncated, spliced with random
bytes, or replaced by random bytes) and converts it in-process: the result must be a report
(bad items in it) or a :class:`SegconvertError` with a one-line message. The default run
tries a few examples per importer; the ``slow`` campaign tries many. Both print how many ran.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import PANOPTICAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segconvert import SegconvertError, build_registry, convert

REGISTRY = build_registry(load_third_party=False)
SOURCE_JSON = PANOPTICAPI / "panoptic_examples.json"
MEMORY_LIMIT = 1 << 30
"""Peak Python/numpy allocation allowed for one example (the inputs are a few hundred KB)."""
FORMATS = ["coco-panoptic", "nucleus", "cityscapes", "coco-rle"]
RAN: Counter[str] = Counter()


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _source_for(format_name: str, root: Path) -> tuple[Path, str]:
    """The real sample in ``format_name`` under ``root``; returns (source path, relative)."""
    if format_name == "coco-panoptic":
        shutil.copy(SOURCE_JSON, root / SOURCE_JSON.name)
        shutil.copytree(PANOPTICAPI / "panoptic_examples", root / "panoptic_examples")
        return root / SOURCE_JSON.name, SOURCE_JSON.name
    convert(
        SOURCE_JSON,
        root / "data",
        from_format="coco-panoptic",
        to_format=format_name,
        jobs=1,
        registry=REGISTRY,
        options={"relative_mask_urls": True} if format_name == "nucleus" else {},
    )
    if format_name == "cityscapes":
        tree = next((root / "data").glob("gt*"))
        return tree, str(tree.relative_to(root))
    return root / "data", "data"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, tuple[dict[str, bytes], str]]:
    """Every format's files (relative path -> bytes) and the source's relative path."""
    found = {}
    for format_name in FORMATS:
        root = tmp_path_factory.mktemp(format_name)
        _, relative = _source_for(format_name, root)
        found[format_name] = (files_of(root), relative)
    return found


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.integers(0, 1 << 20), min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("replace"), st.binary(max_size=512)),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind = mutation[0]
    if kind == "replace":
        return mutation[1]
    if not data:
        return data
    if kind == "flip":
        buffer = bytearray(data)
        for position in mutation[1]:
            buffer[position % len(buffer)] ^= 0xFF
        return bytes(buffer)
    if kind == "truncate":
        return data[: mutation[1] % len(data)]
    position = mutation[1] % len(data)
    return data[:position] + mutation[2] + data[position:]


def convert_mutated(format_name: str, corpus, file_choice: int, mutation: tuple) -> None:
    files, relative = corpus
    names = sorted(files)
    target = names[file_choice % len(names)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(mutate(data, mutation) if name == target else data)
        to_format = "coco-panoptic" if format_name == "nucleus" else "nucleus"
        tracemalloc.start()
        try:
            report = convert(
                root / relative,
                root / "out",
                from_format=format_name,
                to_format=to_format,
                jobs=1,
                registry=REGISTRY,
            )
        except SegconvertError as exc:
            message = str(exc)
            assert message and "\n" not in message, message
            report = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        RAN[format_name] += 1
        assert peak < MEMORY_LIMIT, f"{target}: {peak} bytes allocated"
        if report is not None:
            internal = [e for e in report.errors if e["rule"] == "internal-error"]
            assert not internal, internal  # a crash inside a format, not a named rule


def fuzz(examples: int):
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=30),  # a hang fails the example
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=examples < 20,  # the default run is the same every time
    )


@pytest.mark.parametrize("format_name", FORMATS)
@fuzz(4)
@given(file_choice=st.integers(0, 1000), mutation=MUTATIONS)
def test_mutated_fixtures_never_trace_back(corpora, format_name, file_choice, mutation):
    convert_mutated(format_name, corpora[format_name], file_choice, mutation)


@pytest.mark.slow
@pytest.mark.parametrize("format_name", FORMATS)
@fuzz(120)
@given(file_choice=st.integers(0, 1000), mutation=MUTATIONS)
def test_fuzz_campaign(corpora, format_name, file_choice, mutation):
    convert_mutated(format_name, corpora[format_name], file_choice, mutation)


@pytest.fixture(scope="module", autouse=True)
def report_cases_run(request):
    """Print how many fuzz cases ran (past pytest's output capture)."""
    yield
    if RAN:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(RAN.items()))
        terminal = request.config.pluginmanager.getplugin("terminalreporter")
        line = f"fuzz: {sum(RAN.values())} cases run ({counts})"
        if terminal is not None:
            terminal.write_line(line)
        else:  # pragma: no cover - without the terminal plugin
            sys.stderr.write(line + "\n")
