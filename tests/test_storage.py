"""segconvert.storage and output ownership: safe input, atomic writes, locks, manifests, names.

Every failure class here must end as one line (CLI) or an item in the error report, never as a
traceback, a hang or a write outside the output folder.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    ImageSpec,
    default_spec,
    ids_to_rgb,
    paint_ids,
    read_jsonl,
    segconvert_command,
    write_coco_panoptic,
)
from PIL import Image

from segconvert import InputError, ItemError, OutputError, UsageError, convert, read_png
from segconvert.cli import main
from segconvert.journal import JOURNAL_NAME
from segconvert.ownership import LOCK_NAME, MANIFEST_NAME
from segconvert.storage import (
    NAME_MAX,
    STREAM_BATCH,
    JsonText,
    atomic_write_bytes,
    location,
    open_input,
    parse_storage_options,
    write_json_array_streamed,
    write_json_streamed,
)


def cli(capsys, *args: str) -> tuple[int, str]:
    """Run the CLI in-process; return (exit code, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(["--no-plugins", *args])
    return int(exited.value.code or 0), capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def nucleus(source: Path, out: Path, registry, **kw):
    return convert(
        source,
        out,
        to_format="nucleus",
        from_format=kw.pop("from_format", "coco-panoptic"),
        registry=registry,
        jobs=kw.pop("jobs", 1),
        **kw,
    )


# ---------------------------------------------------------------- safe input


def test_a_fifo_named_like_a_mask_fails_that_item_without_blocking(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    fifo = json_path.with_suffix("") / "b.png"
    fifo.unlink()
    os.mkfifo(fifo)
    started = time.monotonic()
    report = nucleus(json_path, tmp_path / "out", registry)
    assert time.monotonic() - started < 30
    assert report.converted == 1
    assert [(e["item"], e["rule"]) for e in report.errors] == [("b", "not-a-file")]


def test_a_device_behind_a_symlink_is_not_read(tmp_path):
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ItemError, match="not a regular file") as error:
        read_png(link, "rgb", item="z")
    assert error.value.rule == "not-a-file"


def test_a_folder_where_a_file_is_expected_is_one_line(tmp_path, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    (tmp_path / "cats").mkdir()
    code, err = cli(
        capsys,
        "convert",
        str(json_path),
        str(tmp_path / "out"),
        "--from",
        "coco-panoptic",
        "--to",
        "nucleus",
        "--categories",
        str(tmp_path / "cats"),
    )
    assert code != 0 and "is a folder, expected a file" in one_line(err)
    with pytest.raises(InputError, match="is a folder"):
        open_input(tmp_path / "cats")
    (tmp_path / "frames" / "gtFine").mkdir(parents=True)
    code, err = cli(
        capsys,
        "convert",
        str(tmp_path / "frames"),
        str(tmp_path / "o2"),
        "--from",
        "cityscapes",
        "--to",
        "nucleus",
        "--labels",
        str(tmp_path / "cats"),
    )
    assert code != 0 and "is a folder, expected a file" in one_line(err)


def png_with_trailing_bytes(path: Path, extra: int) -> np.ndarray:
    ids = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(ids).save(path)
    with path.open("r+b") as handle:  # sparse: costs no disk, but a whole read would be huge
        handle.truncate(path.stat().st_size + extra)
    return ids


def test_read_png_stops_at_iend_and_never_reads_trailing_bytes(tmp_path):
    path = tmp_path / "tail.png"
    ids = png_with_trailing_bytes(path, 4 << 30)  # a 4 GB file
    started = time.monotonic()
    assert np.array_equal(read_png(path, "gray8"), ids)
    assert time.monotonic() - started < 5


def test_a_declared_size_past_the_limit_is_refused_before_reading_on(tmp_path):
    from hostile import png_header_bomb

    path = tmp_path / "bomb.png"
    png_header_bomb(path)
    with path.open("r+b") as handle:
        handle.truncate(8 << 30)
    with pytest.raises(ItemError) as error:
        read_png(path, "rgb")
    assert error.value.rule == "png-too-large"


def test_a_grayscale_png_with_trns_is_valid_input(tmp_path):
    ids = np.arange(48, dtype=np.uint8).reshape(6, 8)
    path = tmp_path / "trns.png"
    Image.fromarray(ids).save(path, transparency=0)
    assert b"tRNS" in path.read_bytes()
    assert np.array_equal(read_png(path, "gray8"), ids)


def test_a_symlink_leaving_the_dataset_is_refused(tmp_path, registry):
    outside = tmp_path / "outside.png"
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    png = json_path.with_suffix("") / "b.png"
    png.rename(outside)
    png.symlink_to(outside)
    report = nucleus(json_path, tmp_path / "out", registry)
    assert [(e["item"], e["rule"]) for e in report.errors] == [("b", "unsafe-path")]


@pytest.mark.parametrize("file_name", ["/", ".", "a\x00b.png", "..", "x/../../y.png"])
def test_hostile_file_names_fail_their_item_only(tmp_path, registry, file_name):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    document = json.loads(json_path.read_text())
    document["annotations"][1]["file_name"] = file_name
    json_path.write_text(json.dumps(document))
    report = nucleus(json_path, tmp_path / "out", registry)
    assert report.converted == 1 and report.failed == 1, report.errors


def test_nul_in_a_path_on_the_command_line_is_one_line(tmp_path, capsys):
    with pytest.raises(UsageError, match="NUL"):
        location("a\x00b")
    code, err = cli(capsys, "convert", "src\x00x", str(tmp_path / "o"), "--to", "nucleus")
    assert code == 2 and "NUL" in one_line(err)


# ---------------------------------------------------------------- atomic writes


@pytest.fixture(params=["unnamed", "named"])
def write_mechanism(request, monkeypatch):
    """Both ways a local atomic write goes: an unnamed file named when complete (Linux
    ``O_TMPFILE``) and, where a file system has none, a named temporary file."""
    from segconvert import storage

    if request.param == "named":
        monkeypatch.setattr(storage, "_anonymous_files", False)
    elif not storage._anonymous_files:
        pytest.skip("this system has no O_TMPFILE")
    else:
        monkeypatch.setattr(storage.tempfile, "mkstemp", _no_named_temporary_files)
    return request.param


def _no_named_temporary_files(*args, **kwargs):
    raise AssertionError("an unnamed file was expected, not a named temporary one")


def _guarded(tmp_path: Path, replaceable: frozenset[str] = frozenset()):
    from segconvert.storage import OutputGuard, guard_output

    guard_output(OutputGuard(str(tmp_path.resolve()), replaceable=replaceable))


@pytest.fixture
def no_guard():
    from segconvert.storage import guard_output

    yield
    guard_output(None)


def test_an_atomic_write_leaves_only_the_file_and_replaces_a_replaceable_one(
    tmp_path, write_mechanism, no_guard
):
    _guarded(tmp_path, replaceable=frozenset({"a.bin"}))
    atomic_write_bytes(tmp_path / "a.bin", b"first")
    atomic_write_bytes(tmp_path / "a.bin", b"second")  # a resumed run's rewrite
    atomic_write_bytes(tmp_path / "masks" / "b.bin", b"b")
    assert (tmp_path / "a.bin").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.bin", "masks"]


def test_an_exclusive_write_onto_other_bytes_is_a_clash_and_onto_the_same_is_a_retry(
    tmp_path, write_mechanism, no_guard
):
    _guarded(tmp_path)
    atomic_write_bytes(tmp_path / "a.bin", b"item one")
    atomic_write_bytes(tmp_path / "a.bin", b"item one")  # a lost worker's item run again
    with pytest.raises(ItemError) as clash:
        atomic_write_bytes(tmp_path / "a.bin", b"item two")
    assert clash.value.rule == "duplicate-output-name"
    assert (tmp_path / "a.bin").read_bytes() == b"item one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_write_that_fails_midway_leaves_nothing_and_a_symlink_is_not_written_through(
    tmp_path, write_mechanism, no_guard
):
    from segconvert.storage import atomic_open

    _guarded(tmp_path, replaceable=frozenset({"link.bin"}))
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "half.bin", "wb") as handle:
        handle.write(b"half")
        raise RuntimeError("the encoder failed")
    target = tmp_path / "elsewhere.bin"
    target.write_bytes(b"keep")
    (tmp_path / "link.bin").symlink_to(target)
    with pytest.raises(OutputError, match="symlink or folder is in the way"):
        atomic_write_bytes(tmp_path / "link.bin", b"new")
    assert target.read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.bin", "link.bin"]


def test_a_write_past_the_file_size_limit_names_the_file_and_leaves_nothing(
    tmp_path, write_mechanism, no_guard
):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ: EFBIG
    try:
        with pytest.raises(OutputError) as refused:
            atomic_write_bytes(tmp_path / "a.bin", b"x" * 100_000, checked=False)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(refused.value)
    assert message.startswith(f"cannot write {tmp_path / 'a.bin'}: file too large"), message
    assert list(tmp_path.iterdir()) == []


def test_new_files_get_the_umask_permissions(tmp_path, write_mechanism):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        os.umask(0o027)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o640


def test_a_legal_name_too_long_for_the_temporary_suffix_is_written(tmp_path, registry):
    long_name = "n" * (NAME_MAX - len(".png"))  # 251 bytes + ".png" = 255, the limit
    atomic_write_bytes(tmp_path / f"{long_name}.png", b"x")
    assert (tmp_path / f"{long_name}.png").read_bytes() == b"x"
    ref = "r" * 244
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec(ref)])
    report = nucleus(json_path, tmp_path / "out", registry)
    assert report.exit_code == 0, report.errors
    assert (tmp_path / "out" / "masks" / f"{ref}.png").is_file()


def test_an_output_below_a_regular_file_is_one_line(tmp_path, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    (tmp_path / "file").write_text("x")
    code, err = cli(
        capsys, "convert", str(json_path), str(tmp_path / "file" / "out"), "--to", "nucleus"
    )
    assert code == 1 and "no folder" in one_line(err)


def test_a_dangling_symlink_output_is_one_line(tmp_path, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    code, err = cli(capsys, "convert", str(json_path), str(tmp_path / "out"), "--to", "nucleus")
    assert code == 1 and "dangling symlink" in one_line(err)


def small_tmpfs(path: Path, options: str) -> bool:
    path.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_read_only_output_is_one_line(tmp_path, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    target = tmp_path / "ro"
    mounted = small_tmpfs(target, "size=1m,ro")
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and cannot mount a read-only tmpfs here")
        target.chmod(0o555)
    try:
        code, err = cli(capsys, "convert", str(json_path), str(target / "out"), "--to", "nucleus")
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=True)
    line = one_line(err)
    assert code == 1 and ("read-only" in line or "permission denied" in line), line


def test_a_full_disk_is_one_line_and_leaves_a_resumable_output(tmp_path):
    specs = [
        ImageSpec(
            f"i{k}", width=200, height=200, segments=[(k + 1, 1, 0, (0, 200, 0, 100 + k % 50))]
        )
        for k in range(40)
    ]
    json_path = write_coco_panoptic(tmp_path / "src", specs)
    out = tmp_path / "out"
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            limit + "from segconvert.cli import main; main()",
            "--no-plugins",
            "convert",
            str(json_path),
            str(out),
            "--to",
            "nucleus",
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = one_line(result.stderr)
    assert result.returncode == 1 and "file too large" in line, line
    assert (out / JOURNAL_NAME).is_file() and not (out / "annotations.jsonl").exists()


def test_a_malformed_journal_is_one_line(tmp_path, registry, capsys):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out = tmp_path / "out"
    out.mkdir()
    (out / JOURNAL_NAME).write_text("{not json\n")
    code, err = cli(capsys, "convert", str(json_path), str(out), "--to", "nucleus", "--resume")
    assert code == 1 and "not a segconvert journal" in one_line(err)


def test_the_journal_is_plain_json_and_never_unpickled(tmp_path, registry):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec(f"i{k}", k) for k in range(3)], skip_png={"i2"}
    )
    out = tmp_path / "out"
    with pytest.raises(ItemError):
        nucleus(json_path, out, registry, fail_fast=True)
    lines = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    assert lines[1]["record"]["dataclass"] == "NucleusRecord"
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR."  # a pickle that runs a command
    lines[1]["record"] = {"value": payload}
    lines[2]["record"] = {"dataclass": "os.system", "fields": {"command": f"touch {marker}"}}
    (out / JOURNAL_NAME).write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(OutputError, match="line 3 is malformed"):
        nucleus(json_path, out, registry, resume=True)
    assert not marker.exists()


# ---------------------------------------------------------------- ownership


def test_a_second_run_into_a_held_folder_is_refused_naming_the_pid(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": os.uname().nodename, "started": "now", "token": "t"}
        (out / LOCK_NAME).write_text(json.dumps(lock))
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            nucleus(json_path, out, registry)
    finally:
        holder.kill()
        holder.wait()
    report = nucleus(json_path, out, registry)  # the holder is gone: its stale lock is taken
    assert report.exit_code == 0 and not (out / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_concurrent_runs_the_second_refused_the_first_valid(tmp_path, registry):
    from test_resume import tiny_specs

    json_path = write_coco_panoptic(tmp_path / "src", tiny_specs(1500))
    out = tmp_path / "out"
    env = {**os.environ, "SEGCONVERT_DISABLE_PLUGINS": "1"}
    command = [*segconvert_command(), "convert", str(json_path), "--to", "nucleus", "--jobs", "1"]
    first = subprocess.Popen([*command, str(out), "--quiet"], env=env)
    deadline = time.monotonic() + 60
    while not (out / JOURNAL_NAME).is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(
        [*command, str(out), "--overwrite"], env=env, capture_output=True, text=True, timeout=120
    )
    assert first.wait(timeout=300) == 0
    assert second.returncode == 1
    assert f"in use by another segconvert run (pid {first.pid}" in one_line(second.stderr)
    from segconvert import validate_dataset

    assert validate_dataset(out, "nucleus", registry=registry, jobs=1) == (1500, [])
    assert len(read_jsonl(out / "annotations.jsonl")) == 1500


def test_overwrite_replaces_only_segconvert_files_and_removes_stale_items(tmp_path, registry):
    first = write_coco_panoptic(tmp_path / "one", [default_spec("a"), default_spec("old", 1)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "my-report.txt").write_text("mine")
    (out / "segconvert-errors.jsonl").write_text("my own file with our name\n")
    with pytest.raises(OutputError, match="not empty"):
        nucleus(first, out, registry)
    nucleus(first, out, registry, overwrite=True)
    assert (out / "masks" / "old.png").is_file()
    second = write_coco_panoptic(tmp_path / "two", [default_spec("a", 2)])
    nucleus(second, out, registry, overwrite=True)
    assert not (out / "masks" / "old.png").exists()  # stale item of the earlier run
    assert (out / "my-report.txt").read_text() == "mine"
    assert (out / "segconvert-errors.jsonl").read_text() == "my own file with our name\n"
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] is True
    assert set(manifest["foreign"]) == {"my-report.txt", "segconvert-errors.jsonl"}
    assert "masks/a.png" in manifest["files"] and "my-report.txt" not in manifest["files"]


def test_an_item_never_replaces_a_file_segconvert_did_not_write(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "b.png").write_bytes(b"the user's own file")
    report = nucleus(json_path, out, registry, overwrite=True)
    assert [(e["item"], e["rule"]) for e in report.errors] == [("b", "output-not-owned")]
    assert (out / "masks" / "b.png").read_bytes() == b"the user's own file"


@pytest.mark.parametrize("where", ["parent", "same", "inside"])
def test_an_output_containing_or_inside_the_source_is_refused(tmp_path, registry, where):
    from segconvert.formats.cityscapes import importer  # noqa: F401 - registered

    json_path = write_coco_panoptic(tmp_path / "data" / "src", [default_spec("a")])
    source = json_path if where != "inside" else json_path.with_suffix("")
    out = {
        "parent": tmp_path / "data",
        "same": json_path.parent,
        "inside": json_path.with_suffix("") / "out",
    }[where]
    before = sorted(p.name for p in out.rglob("*")) if out.exists() else None
    with pytest.raises(OutputError, match="source"):
        convert(
            source,
            out,
            to_format="nucleus",
            from_format="coco-panoptic",
            registry=registry,
            jobs=1,
            overwrite=True,
        )
    assert (sorted(p.name for p in out.rglob("*")) if out.exists() else None) == before


def test_a_kill_before_the_reports_leaves_an_incomplete_resumable_folder(
    tmp_path, registry, monkeypatch
):
    from segconvert import run

    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("a"), default_spec("b", 1)], skip_png={"b"}
    )
    out = tmp_path / "out"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "write_error_report", killed)
    with pytest.raises(KeyboardInterrupt):
        nucleus(json_path, out, registry)
    assert json.loads((out / MANIFEST_NAME).read_text())["complete"] is False
    assert (out / JOURNAL_NAME).is_file() and not (out / LOCK_NAME).exists()
    monkeypatch.undo()
    resumed = nucleus(json_path, out, registry, resume=True)
    assert [e["item"] for e in resumed.errors] == ["b"]
    assert read_jsonl(out / "segconvert-errors.jsonl")[0]["item"] == "b"
    assert json.loads((out / MANIFEST_NAME).read_text())["complete"] is True
    assert not (out / JOURNAL_NAME).exists()


# ---------------------------------------------------------------- output names


@pytest.mark.parametrize(
    ("ids", "rule", "text"),
    [
        (["x/a", "x/./a", "x//a"], "duplicate-output-name", "names the same files"),
        (["Scene", "scene"], "duplicate-output-name", "differs only in case"),
        (["a", "a"], "duplicate-reference-id", "used by an earlier item"),
    ],
)
def test_reference_ids_naming_one_output_file_are_reported(tmp_path, registry, ids, rule, text):
    specs = [default_spec(f"img{k}", k) for k in range(len(ids))]
    json_path = write_coco_panoptic(tmp_path / "src", specs)
    document = json.loads(json_path.read_text())
    for image, annotation, ref in zip(
        document["images"], document["annotations"], ids, strict=True
    ):
        png = json_path.with_suffix("") / annotation["file_name"]
        image["file_name"] = f"{ref}.jpg"
        annotation["file_name"] = png.name
    json_path.write_text(json.dumps(document))
    report = nucleus(json_path, tmp_path / "out", registry)
    assert report.converted == 1 and report.failed == len(ids) - 1
    assert {e["rule"] for e in report.errors} <= {rule, "duplicate-reference-id"}
    assert any(text in e["message"] for e in report.errors) or rule == "duplicate-output-name"
    assert len(list((tmp_path / "out" / "masks").rglob("*.png"))) == 1


def cityscapes_ids_in_two_folders(root: Path) -> Path:
    """A COCO panoptic source in ``root`` (its PNGs in ``root/src``) whose images ``x/000001``
    and ``y/000001`` name the same Cityscapes files (the format drops the folder part), with
    other pixels in each: a second write of the very same bytes would be no clash (it is how
    a retried item, after its worker was lost, writes its files again)."""
    specs = [default_spec("x/000001"), default_spec("y/000001", 1)]
    specs[1].segments[1] = (1002, 3, 0, (12, 22, 2, 16))
    json_path = root / "src.json"
    for spec in specs:
        png = root / "src" / f"{spec.name.replace('/', '_')}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids_to_rgb(paint_ids(spec))).save(png)
    document = json.loads(write_coco_panoptic(root / "tmp", specs[:0]).read_text())
    from helpers import CATEGORIES

    document["images"] = [
        {"id": k, "file_name": f"{s.name}.jpg", "width": 40, "height": 30}
        for k, s in enumerate(specs, 1)
    ]
    document["annotations"] = [
        {
            "image_id": k,
            "file_name": f"{s.name.replace('/', '_')}.png",
            "segments_info": [
                {"id": seg, "category_id": cat, "iscrowd": crowd}
                for seg, cat, crowd, _ in s.segments
            ],
        }
        for k, s in enumerate(specs, 1)
    ]
    document["categories"] = CATEGORIES
    json_path.write_text(json.dumps(document))
    return json_path


def test_cityscapes_ids_in_two_folders_do_not_write_the_same_files(tmp_path, registry):
    json_path = cityscapes_ids_in_two_folders(tmp_path)
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="cityscapes",
        registry=registry,
        jobs=1,
        options={"png_dir": str(tmp_path / "src")},
    )
    assert report.converted == 1 and [e["rule"] for e in report.errors] == ["duplicate-output-name"]
    written = sorted(p.name for p in (tmp_path / "out").rglob("*.png"))
    assert len(written) == len(set(written)) == 3  # one frame's three PNGs, written once


def test_per_image_categories_is_never_overwritten_by_an_image(tmp_path, registry):
    json_path = write_coco_panoptic(
        tmp_path / "src", [default_spec("a"), default_spec("categories", 1)]
    )
    report = convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="coco-rle",
        registry=registry,
        jobs=1,
        options={"per_image": True},
    )
    assert [(e["item"], e["rule"]) for e in report.errors] == [
        ("categories", "duplicate-output-name")
    ]
    assert "categories" in json.loads((tmp_path / "out" / "categories.json").read_text())


@pytest.mark.parametrize("name", ["../x", "/tmp/elsewhere", "a/../../b"])
def test_a_json_name_leaving_the_output_is_refused(tmp_path, registry, name):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    with pytest.raises(UsageError, match="inside the output folder"):
        convert(
            json_path,
            tmp_path / "out",
            from_format="coco-panoptic",
            to_format="coco-panoptic",
            registry=registry,
            jobs=1,
            options={"json_name": name},
        )
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "out").exists()


def test_an_output_symlink_to_elsewhere_sends_nothing_outside(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "panoptic").symlink_to(elsewhere, target_is_directory=True)
    report = convert(
        json_path,
        out,
        from_format="coco-panoptic",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
        overwrite=True,
    )
    assert [e["rule"] for e in report.errors] == ["unsafe-path"]
    assert list(elsewhere.iterdir()) == []


def test_a_folder_swapped_for_a_symlink_between_runs_is_caught_by_the_next_run(tmp_path, registry):
    """Folders are resolved once per run (for speed), never remembered from an earlier run."""
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    how = dict(from_format="coco-panoptic", to_format="coco-panoptic", registry=registry, jobs=1)
    assert convert(json_path, out, **how).errors == []  # resolves out/panoptic as a folder
    shutil.rmtree(out / "panoptic")
    elsewhere.mkdir()
    (out / "panoptic").symlink_to(elsewhere, target_is_directory=True)
    report = convert(json_path, out, overwrite=True, **how)
    assert [e["rule"] for e in report.errors] == ["unsafe-path"]
    assert list(elsewhere.iterdir()) == []


def test_mask_url_prefixes_are_percent_encoded(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a#1 b")])
    convert(
        json_path,
        tmp_path / "out",
        from_format="coco-panoptic",
        to_format="nucleus",
        registry=registry,
        jobs=1,
        options={"mask_url_prefix": "s3://bucket/run"},
    )
    (line,) = read_jsonl(tmp_path / "out" / "annotations.jsonl")
    assert line["mask_url"] == "s3://bucket/run/masks/a%231%20b.png"


# ---------------------------------------------------------------- locations


def test_storage_options_parse_typed_and_nested_values():
    assert parse_storage_options(
        [
            "anon=true",
            "endpoint_url=http://127.0.0.1:9",
            "client_kwargs.region_name=eu-west-1",
            "retries=3",
        ]
    ) == {
        "anon": True,
        "endpoint_url": "http://127.0.0.1:9",
        "client_kwargs": {"region_name": "eu-west-1"},
        "retries": 3,
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_storage_options(["novalue"])


def test_memory_urls_round_trip_through_every_format(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a"), default_spec("b", 1)])
    local = nucleus(json_path, tmp_path / "local", registry)
    remote = convert(
        json_path,
        "memory://seg/out",
        to_format="nucleus",
        from_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert remote.converted == local.converted == 2
    back = convert(
        "memory://seg/out",
        tmp_path / "back",
        from_format="nucleus",
        to_format="coco-panoptic",
        registry=registry,
        jobs=1,
    )
    assert back.exit_code == 0, back.errors
    assert not Path("memory:").exists()


def test_the_next_step_of_a_remote_nucleus_output_names_the_masks_written_there(tmp_path, registry):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    how = dict(to_format="nucleus", from_format="coco-panoptic", registry=registry, jobs=1)
    remote = convert(json_path, "memory://steps/out", **how)
    assert len(remote.next_steps) == 1 and "local files" not in remote.next_steps[0]
    assert "memory://steps/out/masks/" in remote.next_steps[0]
    local = convert(json_path, tmp_path / "local", **how)
    assert local.next_steps[0].endswith("its mask_urls are local files")


# ---------------------------------------------------------------- streamed aggregates


@pytest.mark.parametrize("count", [0, 1, 5, 512, 513, 1200])
def test_a_streamed_json_document_has_the_bytes_of_json_dump(tmp_path, count):
    from segconvert.storage import write_json_streamed

    images = [{"id": k, "file_name": f"é{k}.jpg", "score": k / 3} for k in range(count)]
    document = {"info": {"v": [1, 2]}, "images": [], "annotations": [], "categories": [{"id": 1}]}
    write_json_streamed(
        tmp_path / "d.json", document, {"images": iter(images), "annotations": iter([])}
    )
    expected = json.dumps({**document, "images": images}) + "\n"
    assert (tmp_path / "d.json").read_text() == expected


@pytest.mark.parametrize("count", [0, 1, 512, 1030])
def test_a_streamed_json_array_has_the_bytes_of_json_dump(tmp_path, count):
    from segconvert.storage import write_json_array_streamed

    items = [{"image_id": k, "score": [k, k / 7]} for k in range(count)]
    write_json_array_streamed(tmp_path / "r.json", iter(items))
    assert (tmp_path / "r.json").read_text() == json.dumps(items) + "\n"


def test_spooled_image_ids_are_those_assign_ids_gives(tmp_path):
    from segconvert import Spool, assign_ids
    from segconvert.formats.coco_panoptic.exporter import spooled_image_ids

    raw = [None, 3, 3, "x", None, 1, 7, 1, None, "x"]
    expected = [{"id": v} for v in raw]
    assign_ids(expected)
    with Spool() as spool:
        for value in raw:
            spool.add([{"id": value}, {}])
        ids = spooled_image_ids(spool)
        assert [ids(k, image) for k, (image, _) in enumerate(spool)] == [e["id"] for e in expected]


def test_a_cityscapes_file_symlinked_out_of_the_dataset_is_refused(tmp_path, registry):
    from helpers import synthetic_instance_ids, write_gtfine_frame

    root = tmp_path / "cs"
    write_gtfine_frame(root, "val", "aachen", "aachen_000000_000019", synthetic_instance_ids(0))
    write_gtfine_frame(
        root, "val", "aachen", "aachen_000001_000019", synthetic_instance_ids(1), label_ids=False
    )
    secret = tmp_path / "secret.png"
    frame = root / "gtFine" / "val" / "aachen" / "aachen_000001_000019_gtFine_instanceIds.png"
    frame.rename(secret)
    frame.symlink_to(secret)
    (root / "gtFine" / "val" / "aachen" / "aachen_000002_000019_gtFine_labelIds.png").symlink_to(
        "/dev/zero"
    )
    report = convert(
        root,
        tmp_path / "out",
        from_format="cityscapes",
        to_format="nucleus",
        registry=registry,
        jobs=1,
    )
    assert report.converted == 1
    assert sorted((e["item"], e["rule"]) for e in report.errors) == [
        ("aachen_000001_000019", "unsafe-path"),
        ("aachen_000002_000019", "unsafe-path"),
    ]


def test_a_spool_reads_back_equal_fresh_copies_in_every_pass(tmp_path):
    from segconvert import Spool

    records = [[{"id": k, "counts": "x" * k}, [{"score": 0.5}]] for k in range(50)]
    with Spool() as spool:
        for record in records[:25]:
            spool.add(record)
        first = list(spool)
        first[0][0]["id"] = "changed"  # a pass's copies are its own
        for record in records[25:]:
            spool.add(record)  # adding after a pass appends
        assert list(spool) == records
        assert spool.count == 50


def walked(root: Path) -> dict[str, tuple[int, float]]:
    """The listing ``os.walk`` gives (what the output and fingerprint listings always were)."""
    listed = {}
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            info = os.lstat(full)
            relative = os.path.relpath(full, root).replace(os.sep, "/")
            listed[relative] = (info.st_size, info.st_mtime)
    return listed


def test_files_are_listed_in_name_order_as_os_walk_finds_them(tmp_path):
    from segconvert.storage import iter_files, list_files

    for relative in ["a.txt", "a/x", "a0", "a-b/c", "b/ü/é.png", "b/z", "c/d/e/f", "A", "a/y/z"]:
        path = tmp_path / "tree" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative)
    os.symlink(tmp_path / "tree" / "b", tmp_path / "tree" / "linked-folder")  # not followed
    os.symlink(tmp_path / "tree" / "a0", tmp_path / "tree" / "linked-file")
    expected = walked(tmp_path / "tree")
    names = [name for name, _, _ in iter_files(tmp_path / "tree")]
    assert names == sorted(expected)  # a.txt < a/x < a0: the order of the full names
    assert list_files(tmp_path / "tree") == expected
    assert "linked-file" in names and not any(n.startswith("linked-folder") for n in names)


def test_the_streamed_manifest_has_the_bytes_of_the_manifest(tmp_path):
    from segconvert.ownership import (
        MANIFEST_NAME,
        Manifest,
        write_complete_manifest,
        write_manifest,
    )

    for foreign, files in [([], []), (["x"], ["a", "b/ü", 'q"uote']), (["é", "d"], [])]:
        write_manifest(tmp_path, Manifest(foreign, files, complete=True))
        whole = (tmp_path / MANIFEST_NAME).read_bytes()
        write_complete_manifest(tmp_path, foreign, iter(sorted(files)))
        assert (tmp_path / MANIFEST_NAME).read_bytes() == whole


@pytest.mark.parametrize("complete", [True, False])
def test_a_manifest_has_the_bytes_of_json_dumps_of_its_document(tmp_path, complete):
    from segconvert.ownership import MANIFEST_NAME, Manifest, write_manifest

    for foreign, files in [([], []), (["x"], ["b/ü", "a", 'q"uote']), (["é", "d"], [])]:
        manifest = Manifest(foreign, files, complete=complete)
        write_manifest(tmp_path, manifest)
        expected = json.dumps(manifest.to_json(), indent=1) + "\n"
        assert (tmp_path / MANIFEST_NAME).read_text() == expected


def test_the_streamed_fingerprint_is_the_digest_of_the_sorted_listing(tmp_path):
    import hashlib

    from segconvert.journal import source_fingerprint

    source = tmp_path / "panoptic.json"
    source.write_text("{}")
    for name in ["b.png", "a.png", "sub/c.png"]:
        (tmp_path / "panoptic" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "panoptic" / name).write_text(name)
    info = source.stat()
    entries = {"panoptic.json": [info.st_size, info.st_mtime]}
    entries |= {f"panoptic/{k}": list(v) for k, v in walked(tmp_path / "panoptic").items()}
    digest = hashlib.sha256(json.dumps(sorted(entries.items())).encode()).hexdigest()
    assert source_fingerprint(source) == {"count": 4, "digest": digest, "files": entries}


def test_the_journal_header_lists_the_source_files_as_one_json_line(tmp_path):
    from segconvert.journal import JOURNAL_NAME, VERSION, Journal, source_fingerprint

    source = tmp_path / "panoptic.json"
    source.write_text("{}")
    for name in ["b.png", "a.png", 'q"uote.png']:
        (tmp_path / "panoptic").mkdir(exist_ok=True)
        (tmp_path / "panoptic" / name).write_text(name)
    out = tmp_path / "out"
    out.mkdir()
    Journal.open(out, {"source": "x"}, False, source=source).close(completed=False)
    first = (out / JOURNAL_NAME).read_text().splitlines()[0]
    header = {
        "segconvert_journal": VERSION,
        "params": {"source": "x"},
        "source": source_fingerprint(source),
    }
    assert first == json.dumps(header)


@pytest.mark.parametrize("count", [0, 1, 3, STREAM_BATCH, STREAM_BATCH * 2 + 5])
def test_json_text_elements_are_written_as_they_are_among_encoded_values(tmp_path, count):
    """A streamed array of values and pre-encoded texts, in any mix and across batches, has
    exactly the bytes json.dump gives for the decoded values."""
    values = [{"id": k, "s": '\\"' * (k % 3), "f": k / 7} for k in range(count)]
    items = [JsonText(json.dumps(v)) if k % 3 else v for k, v in enumerate(values)]
    write_json_array_streamed(tmp_path / "a.json", iter(items))
    write_json_streamed(tmp_path / "d.json", {"x": 1, "items": []}, {"items": iter(items)})
    assert (tmp_path / "a.json").read_text() == json.dumps(values) + "\n"
    assert (tmp_path / "d.json").read_text() == json.dumps({"x": 1, "items": values}) + "\n"
