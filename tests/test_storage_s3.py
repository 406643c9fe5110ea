"""Sources and outputs on object storage, against a real S3 server (moto) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import (
    PANOPTICAPI,
    run_cli,
    segconvert_command,
    synthetic_instance_ids,
    write_coco_panoptic,
    write_gtfine_frame,
)
from s3server import S3Server
from test_resume import tiny_specs, tree_bytes

from segconvert import OutputError, convert, validate_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def local_run(source: Path, out: Path, registry, from_format: str, prefix: str, **kw):
    """A local run whose mask_urls name the remote objects, for byte comparisons."""
    report = convert(
        source,
        out,
        from_format=from_format,
        to_format="nucleus",
        options={"mask_url_prefix": prefix},
        registry=registry,
        jobs=1,
        **kw,
    )
    assert report.exit_code == 0, report.errors
    return tree_bytes(out)


def mask_urls(s3: S3Server, url: str) -> list[str]:
    lines = s3.tree(url)["annotations.jsonl"].decode().splitlines()
    return [json.loads(line)["mask_url"] for line in lines]


@pytest.mark.slow
def test_coco_panoptic_to_nucleus_on_s3_writes_every_object_as_a_local_run(s3, registry, tmp_path):
    s3.bucket("src")
    s3.bucket("out")
    s3.upload(PANOPTICAPI, "s3://src")
    result = run_cli(
        "convert",
        "s3://src/panoptic_examples.json",
        "s3://out/run1",
        "--from",
        "coco-panoptic",
        "--to",
        "nucleus",
        "--jobs",
        "2",
        env={"SEGCONVERT_DISABLE_PLUGINS": "1"},
    )
    assert result.returncode == 0, result.stderr
    remote = s3.tree("s3://out/run1")
    urls = mask_urls(s3, "s3://out/run1")
    assert len(urls) == 2
    for url in urls:  # each mask_url is the object written
        assert url.startswith("s3://out/run1/masks/")
        assert url.removeprefix("s3://out/run1/") in remote
    expected = local_run(
        PANOPTICAPI / "panoptic_examples.json",
        tmp_path / "local",
        registry,
        "coco-panoptic",
        "s3://out/run1",
    )
    assert remote == expected
    assert validate_dataset("s3://out/run1", "nucleus", registry=registry, jobs=1) == (2, [])
    assert not Path("s3:").exists() and not (Path.cwd() / "s3:").exists()

    # ... and the way back from s3://out/run1 equals the way back from the local output.
    back = convert(
        "s3://out/run1",
        tmp_path / "back",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0, back.errors
    local_back = convert(
        tmp_path / "local",
        tmp_path / "local-back",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert local_back.exit_code == 0
    assert tree_bytes(tmp_path / "back") == tree_bytes(tmp_path / "local-back")
    source = json.loads((PANOPTICAPI / "panoptic_examples.json").read_text())
    returned = json.loads(next((tmp_path / "back").glob("*.json")).read_text())
    assert [a["file_name"] for a in returned["annotations"]] == [
        a["file_name"] for a in source["annotations"]
    ]
    assert [[s["id"] for s in a["segments_info"]] for a in returned["annotations"]] == [
        [s["id"] for s in a["segments_info"]] for a in source["annotations"]
    ]


@pytest.mark.slow
def test_cityscapes_source_on_s3_converts_like_a_local_one(s3, registry, tmp_path):
    root = tmp_path / "cityscapes"
    write_gtfine_frame(root, "val", "aachen", "aachen_000000_000019", synthetic_instance_ids(0))
    write_gtfine_frame(root, "val", "aachen", "aachen_000001_000019", synthetic_instance_ids(1))
    s3.bucket("city")
    s3.upload(root, "s3://city/data")
    report = convert(
        "s3://city/data",
        "s3://city/nucleus",
        from_format="cityscapes",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.exit_code == 0 and report.converted == 2, report.errors
    expected = local_run(root, tmp_path / "local", registry, "cityscapes", "s3://city/nucleus")
    assert s3.tree("s3://city/nucleus") == expected


@pytest.mark.slow
def test_coco_rle_source_on_s3_converts_like_a_local_one(s3, registry, tmp_path):
    rle = tmp_path / "rle"
    made = convert(
        PANOPTICAPI / "panoptic_examples.json",
        rle,
        from_format="coco-panoptic",
        to_format="coco-rle",
        registry=registry,
        jobs=1,
    )
    assert made.exit_code == 0
    s3.bucket("rle")
    s3.upload(rle / "instances.json", "s3://rle/instances.json")
    report = convert(
        "s3://rle/instances.json",
        "s3://rle/nucleus",
        from_format="coco-rle",
        to_format="nucleus",
        registry=registry,
        jobs=2,
    )
    assert report.exit_code == 0 and report.converted == 2, report.errors
    expected = local_run(
        rle / "instances.json", tmp_path / "local", registry, "coco-rle", "s3://rle/nucleus"
    )
    assert s3.tree("s3://rle/nucleus") == expected


@pytest.mark.slow
def test_a_second_run_into_a_locked_remote_output_is_refused_naming_the_holder(
    s3, registry, tmp_path
):
    s3.bucket("busy")
    s3.upload(PANOPTICAPI, "s3://busy/src")
    s3.fs.pipe_file(
        "busy/out/.segconvert-lock",
        b'{"pid": 4242, "host": "worker-7", "started": "then", "token": "x"}',
    )
    with pytest.raises(OutputError, match="pid 4242 on worker-7"):
        convert(
            "s3://busy/src/panoptic_examples.json",
            "s3://busy/out",
            from_format="coco-panoptic",
            to_format="nucleus",
            registry=registry,
            jobs=1,
        )


@pytest.mark.slow
def test_a_remote_run_killed_midway_resumes_to_the_same_bytes(s3, tmp_path):
    json_path = write_coco_panoptic(tmp_path / "src", tiny_specs(300))
    s3.bucket("kill")
    s3.upload(json_path.parent, "s3://kill/src")
    source = f"s3://kill/src/{json_path.name}"
    command = [*segconvert_command(), "coco-to-nucleus", source]
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    options = ["--jobs", "2", "--quiet"]
    subprocess.run([*command, "s3://kill/reference", *options], check=True, env=env, timeout=300)

    process = subprocess.Popen(
        [*command, "s3://kill/out", *options], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 120
    parts = "kill/out/.segconvert-journal.d"
    while time.monotonic() < deadline and process.poll() is None:
        fs = s3.fs
        if fs.exists(parts) and len(fs.ls(parts)) >= 3:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert "annotations.jsonl" not in s3.tree("s3://kill/out")  # not complete
    resumed = subprocess.run(
        [*command, "s3://kill/out", *options, "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    expected = {
        k: v.replace(b"s3://kill/reference/", b"s3://kill/out/")
        for k, v in s3.tree("s3://kill/reference").items()
    }
    assert s3.tree("s3://kill/out") == expected


def test_s3_without_the_driver_is_one_line_naming_the_extra(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "s3fs.py").write_text("raise ImportError('No module named s3fs')\n")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from segconvert.cli import main; main()",
            "convert",
            "s3://src/panoptic_examples.json",
            "s3://out/run1",
            "--from",
            "coco-panoptic",
            "--to",
            "nucleus",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(blocked), "SEGCONVERT_DISABLE_PLUGINS": "1"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "segconvert[s3]"' in lines[0], result.stderr
    assert not (tmp_path / "s3:").exists()
