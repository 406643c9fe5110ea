"""What a person at a terminal sees: bar, scan phase, summary, one-line errors, -V, completion."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from helpers import PANOPTICAPI, default_spec, write_coco_panoptic

from segconvert import json_sections
from segconvert.activity import listening_to_activity, report_activity
from segconvert.cli import main
from segconvert.terminal import ConversionDisplay, LiveLine, group_by_rule

SAMPLE = str(PANOPTICAPI / "panoptic_examples.json")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        main(["--no-plugins", *args])
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ live line and bar


def _redraws(stream: io.StringIO) -> list[str]:
    return [re.sub(r"\x1b\[K", "", part) for part in stream.getvalue().split("\r") if part]


def test_every_redraw_fits_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    stream = io.StringIO()
    display = ConversionDisplay("/a/very/long/path/to/the/source/panoptic_val2017.json", stream)
    display.line.min_interval = 0
    display.scanning("reading panoptic_val2017.json", 120_000_000, 343_000_000, "bytes")
    for done in range(1, 2001, 7):
        display.progress(done, 2000)
    display.progress(2000, 2000)
    display.close()
    redraws = _redraws(stream)
    assert len(redraws) > 100
    assert max(len(r) for r in redraws) <= 59
    assert "\n" not in stream.getvalue()  # nothing but in-place redraws
    assert any(r.startswith("scanning 120.0 MB / 343.0 MB") for r in redraws)
    assert any(r.startswith("converting [") and "2000/2000" in r for r in redraws)


def test_a_very_narrow_terminal_drops_the_bar_not_the_counts(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    stream = io.StringIO()
    display = ConversionDisplay("x", stream)
    display.progress(5, 10)
    (redraw,) = _redraws(stream)
    assert "[" not in redraw and redraw.startswith("converting 5/10") and len(redraw) <= 29


def test_the_live_line_is_erased_at_the_end():
    stream = io.StringIO()
    line = LiveLine(stream)
    line.show("working", force=True)
    line.clear()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_the_host_json_readers_report_the_scan(tmp_path):
    path = write_coco_panoptic(tmp_path, [default_spec(f"i{k}", seed=k) for k in range(300)])
    seen: list[tuple[str, int, int | None, str]] = []
    with listening_to_activity(lambda *report: seen.append(report)):
        json_sections(path, ("images", "categories"))
    assert seen and all(
        what == f"reading {path.name}" and unit == "bytes" for what, *_, unit in seen
    )
    assert seen[-1][1] == seen[-1][2] == path.stat().st_size


def test_activity_with_nobody_listening_is_a_no_op():
    report_activity("anything", 1, 2)


# ------------------------------------------------------------------ summary


def test_errors_are_grouped_by_rule_with_a_count_and_one_example():
    records = [{"rule": "png-missing", "item": f"i{k}", "message": "gone"} for k in range(5)]
    records.insert(2, {"rule": "mask-size", "item": "m", "message": "odd"})
    assert group_by_rule(records) == [
        ("png-missing", 5, records[0]),
        ("mask-size", 1, records[2]),
    ]


def test_the_summary_groups_failures_and_says_where_the_output_went(tmp_path, capsys):
    specs = [default_spec(f"img{k}", seed=k) for k in range(6)]
    source = write_coco_panoptic(tmp_path / "src", specs, skip_png={"img1", "img2", "img4"})
    out = tmp_path / "out"
    code, stdout, stderr = _cli(capsys, "coco-to-nucleus", str(source), str(out), "-j", "1")
    assert code == 3
    (group,) = [line for line in stderr.splitlines() if "[png-missing]" in line]
    assert "x3" in group and "img1" in group
    assert "img2" not in stderr  # one example per rule, not every item
    assert f"output: {out}" in stdout
    assert f"error report: {out / 'segconvert-errors.jsonl'}" in stderr
    assert "next: load" in stdout


def test_the_next_step_is_the_upload_to_the_mask_url_prefix(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _cli(
        capsys, "coco-to-nucleus", SAMPLE, str(out), "--mask-url-prefix", "s3://bucket/val"
    )
    assert code == 0
    assert f"next: upload {out / 'masks'}/ to s3://bucket/val/masks/" in stdout


def test_json_summary_counts_rules_and_lists_next_steps(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _cli(capsys, "coco-to-nucleus", SAMPLE, str(out), "--json")
    summary = json.loads(stdout)
    assert code == 0 and summary["errors_by_rule"] == {} and summary["next_steps"]


def test_an_interrupted_conversion_points_at_resume(tmp_path, capsys, monkeypatch):
    import segconvert.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "convert", interrupted)
    code, stdout, stderr = _cli(capsys, "coco-to-nucleus", SAMPLE, str(tmp_path / "o"))
    assert code == 130
    assert "--resume" in stderr and stderr.count("\n") == 1


# ------------------------------------------------------------------ errors, -V, completion


def test_fatal_errors_under_json_are_json(tmp_path, capsys):
    code, stdout, stderr = _cli(
        capsys, "convert", SAMPLE, str(tmp_path / "o"), "--to", "nope", "--json"
    )
    assert code == 2
    document = json.loads(stdout)
    assert document["exit_code"] == 2 and "no exporter named 'nope'" in document["error"]
    assert stderr.startswith("segconvert: error:") and stderr.count("\n") == 1


def test_click_usage_errors_are_one_line(capsys):
    code, _, stderr = _cli(capsys, "convert", SAMPLE)
    assert code == 2
    assert stderr.count("\n") == 1
    assert stderr.startswith("segconvert: error: Missing argument 'OUTPUT'")
    assert "segconvert convert --help" in stderr


def test_usage_errors_under_json_are_json(capsys):
    code, stdout, _ = _cli(capsys, "convert", SAMPLE, "--json")
    assert code == 2 and "Missing argument" in json.loads(stdout)["error"]


def test_capital_v_prints_the_version(capsys):
    from importlib.metadata import version

    code, stdout, _ = _cli(capsys, "-V")
    assert code == 0 and version("segconvert") in stdout


def test_mask_url_prefix_with_relative_mask_urls_is_refused(tmp_path, capsys):
    code, _, stderr = _cli(
        capsys,
        "coco-to-nucleus",
        SAMPLE,
        str(tmp_path / "o"),
        "--mask-url-prefix",
        "s3://b/x",
        "--relative-mask-urls",
    )
    assert code == 2
    assert "--relative-mask-urls and --mask-url-prefix cannot be used together" in stderr
    assert not (tmp_path / "o").exists()


def _complete(words: str, monkeypatch, capsys) -> list[str]:
    monkeypatch.setenv("_SEGCONVERT_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    with pytest.raises(SystemExit):
        main(["--no-plugins"])
    return [line.split(",", 1)[1] for line in capsys.readouterr().out.splitlines()]


def test_shell_completion_completes_export_format_names(monkeypatch, capsys):
    assert _complete("segconvert convert a b --to co", monkeypatch, capsys) == [
        "coco",
        "coco-instances",
        "coco-panoptic",
        "coco-rle",
        "coco_instances",
        "coco_panoptic",
    ]


def test_shell_completion_completes_import_format_names_for_validate(monkeypatch, capsys):
    assert "nucleus" in _complete("segconvert validate x --format n", monkeypatch, capsys)


# ------------------------------------------------------------------ a real terminal


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_2000_image_conversion_in_a_60_column_tmux_pane_leaves_a_few_lines(tmp_path):
    from helpers import segconvert_command

    specs = [default_spec(f"{k:06d}", seed=k % 50) for k in range(2000)]
    source = write_coco_panoptic(tmp_path / "src", specs)
    session = f"segconvert-test-{os.getpid()}"
    command = " ".join([*segconvert_command(), "coco-to-nucleus", str(source), str(tmp_path / "o")])
    done = tmp_path / "done"
    script = tmp_path / "run.sh"
    script.write_text(f'clear\n{command}\necho "rc=$?" > {done}\nsleep 60\n')
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "60", "-y", "15", f"bash {script}"],
        check=True,
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        deadline = time.monotonic() + 300
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert done.read_text().strip() == "rc=0"
        history = subprocess.run(
            ["tmux", "display", "-p", "-t", session, "#{history_size}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session, "-S", "-", "-E", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    used = [line for line in screen.splitlines() if line.strip()]
    assert int(history) == 0, screen
    assert len(used) <= 8, screen
    assert any("2000 converted, 0 failed" in line for line in used), screen
    assert not any(line.startswith("converting") for line in used), screen  # bar erased
    assert sys.executable  # the command ran with this interpreter's segconvert
