"""Interrupted runs: a SIGKILL leaves no truncated file; --resume finishes byte-identically."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import ImageSpec, default_spec, segconvert_command, write_coco_panoptic
from PIL import Image

from segconvert import ItemError, OutputError, convert
from segconvert.files import TEMPORARY_PREFIX
from segconvert.journal import JOURNAL_NAME


def tiny_specs(count: int) -> list[ImageSpec]:
    specs = []
    for k in range(count):
        spec = ImageSpec(
            f"img{k:05d}",
            width=12,
            height=8,
            segments=[
                (100 + k % 50, 184, 0, (0, 3, 0, 12)),
                (2000 + k, 3, 0, (4, 8, 0, 5)),
                (77, 1, k % 2, (4, 8, 6, 9)),
            ],
        )
        specs.append(spec)
    return specs


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_nothing_truncated(out: Path) -> None:
    """Every file with a final name is complete and valid; temporaries are marked as such."""
    for path in out.rglob("*"):
        if not path.is_file() or path.name.startswith(TEMPORARY_PREFIX):
            continue
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
                assert image.mode == "L"
        elif path.name == JOURNAL_NAME:
            for line in path.read_text().splitlines():
                json.loads(line)  # whole lines only
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
        elif path.suffix == ".json":
            json.loads(path.read_text())


@pytest.mark.slow
def test_sigkill_at_a_random_point_then_resume_gives_the_uninterrupted_output(tmp_path):
    json_path = write_coco_panoptic(tmp_path / "src", tiny_specs(2000))
    command = [*segconvert_command(), "coco-to-nucleus", str(json_path)]
    options = ["--relative-mask-urls", "--jobs", "2", "--quiet"]
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    reference = tmp_path / "reference"
    subprocess.run([*command, str(reference), *options], check=True, env=env, timeout=300)

    seed = int(os.environ.get("SEGCONVERT_KILL_SEED", random.randrange(1 << 30)))
    threshold = random.Random(seed).randrange(50, 1900)
    out = tmp_path / "out"
    process = subprocess.Popen([*command, str(out), *options], env=env, start_new_session=True)
    journal = out / JOURNAL_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") > threshold:
            break
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill (seed {seed})"
    assert_nothing_truncated(out)
    assert not (out / "annotations.jsonl").exists(), "aggregate files appear only when complete"

    refused = subprocess.run(
        [*command, str(out), *options], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    resumed = subprocess.run(
        [*command, str(out), *options, "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert tree_bytes(out) == tree_bytes(reference), f"seed {seed}"


def interrupted_at_i3(tmp_path, registry, options, to_format="nucleus"):
    """Six items, i3's PNG missing, a --fail-fast run stopped there: an interrupted output."""
    specs = [default_spec(f"i{k}", k) for k in range(6)]
    json_path = write_coco_panoptic(tmp_path / "src", specs, skip_png={"i3"})
    out = tmp_path / "o"
    with pytest.raises(ItemError):
        convert(
            json_path,
            out,
            from_format="coco-panoptic",
            to_format=to_format,
            options=options,
            registry=registry,
            jobs=1,
            fail_fast=True,
        )
    assert (out / JOURNAL_NAME).is_file() and not (out / "annotations.jsonl").exists()
    return specs, json_path, out


def test_resume_reuses_finished_items_and_retries_failed_ones(tmp_path, registry):
    options = {"relative_mask_urls": True}
    specs, json_path, out = interrupted_at_i3(tmp_path, registry, options)
    resumed = convert(
        json_path,
        out,
        from_format="coco-panoptic",
        to_format="nucleus",
        options=options,
        registry=registry,
        jobs=2,
        resume=True,
    )
    assert (resumed.converted, resumed.failed) == (5, 1)
    assert [e["item"] for e in resumed.errors] == ["i3"]  # retried, and still missing
    reference = tmp_path / "r"
    again = convert(
        json_path,
        reference,
        from_format="coco-panoptic",
        to_format="nucleus",
        options=options,
        registry=registry,
        jobs=1,
    )
    assert again.failed == 1
    assert tree_bytes(out) == tree_bytes(reference)


def test_a_resumed_coco_rle_export_writes_the_bytes_of_one_run(tmp_path, registry):
    """The way back's records (encoded annotations) come back from the journal as they were."""
    _, json_path, out = interrupted_at_i3(tmp_path, registry, {}, to_format="coco-rle")
    lines = (out / JOURNAL_NAME).read_text().splitlines()[1:]
    finished = [json.loads(line) for line in lines if '"status": "ok"' in line]
    assert len(finished) == 3
    assert all(entry["record"]["fields"]["bodies"][0].startswith("{") for entry in finished)
    common = {"from_format": "coco-panoptic", "to_format": "coco-rle", "registry": registry}
    resumed = convert(json_path, out, jobs=2, resume=True, **common)
    reference = convert(json_path, tmp_path / "r", jobs=1, **common)
    assert (resumed.converted, resumed.failed) == (reference.converted, reference.failed) == (5, 1)
    written = (out / "instances.json").read_bytes()
    assert written == (tmp_path / "r" / "instances.json").read_bytes()
    assert len(json.loads(written)["annotations"]) > 5


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("remove", "removed panoptic_val/i0.png"),
        ("add", "added panoptic_val/i3.png"),
        ("edit", "changed panoptic_val/i1.png"),
        ("json", "changed panoptic_val.json"),
    ],
)
def test_resume_refuses_a_changed_source_naming_what_changed(tmp_path, registry, change, named):
    from helpers import ids_to_rgb, paint_ids

    options = {"relative_mask_urls": True}
    specs, json_path, out = interrupted_at_i3(tmp_path, registry, options)
    png_dir = json_path.with_suffix("")
    if change == "remove":
        (png_dir / "i0.png").unlink()
    elif change == "add":
        Image.fromarray(ids_to_rgb(paint_ids(specs[3]))).save(png_dir / "i3.png")
    elif change == "edit":
        Image.fromarray(ids_to_rgb(paint_ids(specs[2]))).save(png_dir / "i1.png")
        os.utime(png_dir / "i1.png", (1, 1))
    else:
        json_path.write_text(json_path.read_text() + " ")
    with pytest.raises(OutputError, match=f"source changed.*{named}"):
        convert(
            json_path,
            out,
            from_format="coco-panoptic",
            to_format="nucleus",
            options=options,
            registry=registry,
            jobs=1,
            resume=True,
        )
    assert (out / JOURNAL_NAME).is_file()  # still resumable once the source is put back


def in_process(json_path: Path, out: Path, registry, **flags: bool) -> None:
    """A COCO panoptic -> Nucleus conversion into ``out`` in this process (``resume=True``,
    ``overwrite=True``...)."""
    convert(
        json_path,
        out,
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
        **flags,
    )


def test_resume_with_other_options_is_refused(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out = tmp_path / "o"
    out.mkdir()
    from segconvert.journal import Journal

    Journal.open(out, {"source": "elsewhere"}, resume=False).close(completed=False)
    with pytest.raises(OutputError, match="other sources or options"):
        in_process(json_path, out, registry, resume=True)


def test_a_journal_of_another_version_is_refused_naming_both_versions(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out = tmp_path / "o"
    out.mkdir()
    (out / JOURNAL_NAME).write_text(json.dumps({"segconvert_journal": 2, "params": {}}) + "\n")
    with pytest.raises(OutputError, match=r"another segconvert version \(journal format 2; "):
        in_process(json_path, out, registry, resume=True)


def test_resume_without_a_journal_refuses_a_non_empty_folder(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="no interrupted conversion"):
        in_process(json_path, tmp_path / "o", registry, resume=True)


def test_stale_temporaries_are_removed_but_foreign_files_kept(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out = tmp_path / "o"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / f"{TEMPORARY_PREFIX}a.png.xyz.tmp").write_bytes(b"half")
    (out / "notes.txt").write_text("user file")
    in_process(json_path, out, registry, overwrite=True)
    assert not list(out.rglob(f"{TEMPORARY_PREFIX}*"))
    assert (out / "notes.txt").read_text() == "user file"
