"""The command line: exit codes, one-line errors, formats/plugins listings, plugin commands."""

from __future__ import annotations

import json

import pytest
from helpers import PANOPTICAPI, default_spec, read_jsonl, run_cli, write_coco_panoptic
from plugin_factory import BROKEN_PLUGIN, COMMAND_PLUGIN, GOOD_PLUGIN, install_fake_plugin


def test_convert_with_from_and_to_exits_zero_and_prints_a_summary(tmp_path, no_third_party):
    result = run_cli(
        "convert",
        str(PANOPTICAPI / "panoptic_examples.json"),
        str(tmp_path / "o"),
        "--from",
        "coco-panoptic",
        "--to",
        "nucleus",
    )
    assert result.returncode == 0, result.stderr
    assert "2 converted, 0 failed" in result.stdout


def test_convert_detects_the_source_format_when_from_is_omitted(tmp_path, no_third_party):
    result = run_cli(
        "convert",
        str(PANOPTICAPI / "panoptic_examples.json"),
        str(tmp_path / "o"),
        "--to",
        "nucleus",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["from"] == "coco-panoptic" and summary["converted"] == 2


def test_unknown_format_is_a_usage_error_with_a_suggestion(tmp_path, no_third_party):
    result = run_cli("convert", str(PANOPTICAPI), str(tmp_path / "o"), "--to", "nucleos")
    assert result.returncode == 2
    assert "did you mean 'nucleus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_input_is_one_line_and_exit_one(tmp_path, no_third_party):
    bad = tmp_path / "panoptic.json"
    bad.write_text('{"annotations": [\n  {"image_id": 1,,}\n]}')
    (tmp_path / "panoptic").mkdir()
    result = run_cli("coco-to-nucleus", str(bad), str(tmp_path / "o"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("segconvert: error")]
    assert len(message) == 1 and message[0].endswith(
        f"{bad}:2:18: Expecting property name enclosed in double quotes"
    )


def test_traceback_flag_shows_the_traceback(tmp_path, no_third_party):
    result = run_cli("--traceback", "coco-to-nucleus", str(tmp_path), str(tmp_path / "o"))
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_non_empty_output_is_refused_without_overwrite(tmp_path, no_third_party):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("keep me")
    source = str(PANOPTICAPI / "panoptic_examples.json")
    refused = run_cli("coco-to-nucleus", source, str(tmp_path / "o"))
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    allowed = run_cli("coco-to-nucleus", source, str(tmp_path / "o"), "--overwrite")
    assert allowed.returncode == 0
    assert (tmp_path / "o" / "precious.txt").read_text() == "keep me"


def test_an_option_no_selected_format_takes_is_a_usage_error(tmp_path, no_third_party):
    result = run_cli("coco-to-nucleus", str(PANOPTICAPI), str(tmp_path / "o"), "--json-name", "x")
    assert result.returncode == 2 and "--json-name" in result.stderr


def test_all_items_failing_exits_one_with_the_report(tmp_path, no_third_party):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")], skip_png={"a"})
    result = run_cli("coco-to-nucleus", str(json_path), str(tmp_path / "o"))
    assert result.returncode == 1
    assert [e["rule"] for e in read_jsonl(tmp_path / "o" / "segconvert-errors.jsonl")] == [
        "png-missing"
    ]


def test_fail_fast_stops_at_the_first_bad_item(tmp_path, no_third_party):
    specs = [default_spec("a"), default_spec("b"), default_spec("c")]
    json_path = write_coco_panoptic(tmp_path / "src", specs, skip_png={"b"})
    result = run_cli(
        "coco-to-nucleus", str(json_path), str(tmp_path / "o"), "--fail-fast", "-j", "1"
    )
    assert result.returncode == 1
    assert "b:" in result.stderr and "png-missing" not in result.stdout
    assert not (tmp_path / "o" / "annotations.jsonl").exists()


def test_formats_lists_both_directions_with_provider(no_third_party):
    result = run_cli("formats", "--json")
    rows = json.loads(result.stdout)
    assert {(r["name"], r["direction"]) for r in rows} == {
        (name, direction)
        for name in ("nucleus", "coco-panoptic", "cityscapes", "coco-rle")
        for direction in ("import", "export")
    }
    assert all(r["missing_requirements"] == [] for r in rows)


@pytest.mark.slow
def test_a_broken_plugin_warns_once_and_formats_still_exits_zero(tmp_path):
    install_fake_plugin(tmp_path, "segconvert-broken", "segconvert_broken", BROKEN_PLUGIN)
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli("formats", env=env)
    assert result.returncode == 0
    assert result.stderr.count("segconvert_broken") == 1
    plugins = run_cli("plugins", "--json", env=env)
    failed = json.loads(plugins.stdout)["failed"]
    assert [f["name"] for f in failed] == ["segconvert_broken"]
    assert "broken on purpose" in failed[0]["error"]


def test_a_plugin_reusing_a_builtin_name_is_refused_naming_both(tmp_path):
    install_fake_plugin(
        tmp_path, "segconvert-clash", "segconvert_clash", GOOD_PLUGIN.format(name="coco-panoptic")
    )
    result = run_cli("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0
    assert (
        "segconvert_clash" in result.stdout and "segconvert.formats.coco_panoptic" in result.stdout
    )
    assert "refused" in result.stdout


@pytest.mark.slow
def test_no_plugins_flag_skips_third_party_plugins(tmp_path):
    install_fake_plugin(
        tmp_path, "segconvert-fake", "segconvert_fake", GOOD_PLUGIN.format(name="fake-format")
    )
    env = {"PYTHONPATH": str(tmp_path)}
    assert "fake-format" in run_cli("formats", env=env).stdout
    assert "fake-format" not in run_cli("--no-plugins", "formats", env=env).stdout


def test_plugins_can_register_commands(tmp_path):
    install_fake_plugin(tmp_path, "segconvert-cmd", "segconvert_cmd", COMMAND_PLUGIN)
    result = run_cli("hello", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0 and "hello from a plugin" in result.stdout


def test_validate_exits_one_and_names_the_problem(tmp_path, no_third_party):
    json_path = write_coco_panoptic(tmp_path / "src", [default_spec("a")])
    document = json.loads(json_path.read_text())
    document["annotations"][0]["segments_info"][0]["area"] = 1
    json_path.write_text(json.dumps(document))
    result = run_cli("validate", str(json_path), "--format", "coco-panoptic")
    assert result.returncode == 1
    assert "a: [area-mismatch]" in result.stdout


def test_progress_bar_on_a_terminal_shows_position_and_rate(tmp_path, no_third_party):
    import os
    import pty
    import subprocess

    from helpers import segconvert_command

    controller, terminal = pty.openpty()
    process = subprocess.run(
        [
            *segconvert_command(),
            "coco-to-nucleus",
            str(PANOPTICAPI / "panoptic_examples.json"),
            str(tmp_path / "o"),
            "-j",
            "1",
        ],
        stderr=terminal,
        stdout=subprocess.PIPE,
        timeout=120,
    )
    os.close(terminal)
    shown = os.read(controller, 65536).decode(errors="replace")
    os.close(controller)
    assert process.returncode == 0
    assert "converting" in shown and "2/2" in shown and "items/s" in shown


def test_no_progress_bar_on_a_non_terminal_by_default(tmp_path, no_third_party):
    result = run_cli(
        "coco-to-nucleus", str(PANOPTICAPI / "panoptic_examples.json"), str(tmp_path / "o")
    )
    assert "converting" not in result.stderr
