"""Options belong to a format and a side; plugins cannot shadow options or built-in commands."""

from __future__ import annotations

import importlib.metadata
import json

import click
import pytest
from helpers import PANOPTICAPI, run_cli
from plugin_factory import install_fake_plugin

from segconvert import Importer, Option, build_registry, hookimpl
from segconvert.registry import Side

VERSION = importlib.metadata.version("segconvert")


def _importer_plugin(name: str, *options: Option):
    class Plugin:
        @hookimpl
        def segconvert_importers(self):
            def scan(path, opts):
                raise ValueError("cannot read this on purpose")

            return [Importer(name=name, scan=scan, load=lambda r, c: None, options=tuple(options))]

    return Plugin()


def test_convert_help_shows_options_under_per_format_headings(no_third_party):
    result = run_cli("convert", "--help")
    assert result.returncode == 0
    help_text = result.stdout
    for heading in (
        "coco-rle import options:",
        "coco-rle export options:",
        "nucleus export options:",
        "cityscapes import options:",
    ):
        assert heading in help_text, heading
    rle_import = help_text.split("coco-rle import options:")[1].split("options:")[0]
    assert "--overlap [smaller-on-top|later-on-top|score|error]" in rle_import
    assert "--mask-url-prefix" not in rle_import
    assert help_text.index("--jobs") < help_text.index("cityscapes import options:")


def test_a_fixed_pair_command_shows_only_its_formats_options(no_third_party):
    help_text = run_cli("coco-to-nucleus", "--help").stdout
    assert "coco-panoptic import options:" in help_text
    assert "nucleus export options:" in help_text
    assert "--overlap" not in help_text and "coco-rle" not in help_text


def test_formats_format_lists_one_formats_options_with_type_default_and_help(no_third_party):
    result = run_cli("formats", "coco-rle")
    assert result.returncode == 0
    assert "coco-rle import options:" in result.stdout
    assert "--overlap [smaller-on-top|later-on-top|score|error]" in result.stdout
    assert "[default: smaller-on-top]" in result.stdout
    assert "Which instance keeps an overlapping pixel." in result.stdout
    assert "nucleus" not in result.stdout
    rows = json.loads(run_cli("formats", "coco-instances", "--json").stdout)
    assert {r["direction"] for r in rows} == {"import", "export"}
    (overlap,) = [o for r in rows for o in r["options"] if o["name"] == "overlap"]
    assert overlap == {
        "name": "overlap",
        "side": "import",
        "type": "choice",
        "default": "smaller-on-top",
        "choices": ["smaller-on-top", "later-on-top", "score", "error"],
        "help": "Which instance keeps an overlapping pixel.",
    }


def test_formats_with_an_unknown_format_suggests_a_name(no_third_party):
    result = run_cli("formats", "coco-rl")
    assert result.returncode == 2
    assert "did you mean 'coco-rle'?" in result.stderr


def test_an_option_the_chosen_formats_do_not_take_names_the_formats_that_do(
    tmp_path, no_third_party
):
    result = run_cli(
        "convert",
        str(PANOPTICAPI / "panoptic_examples.json"),
        str(tmp_path / "out"),
        "--from",
        "coco-panoptic",
        "--to",
        "nucleus",
        "--overlap",
        "error",
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "segconvert: error: --overlap is not an option of coco-panoptic (import) or "
        "nucleus (export); it is an option of coco-rle (import)"
    )
    assert not (tmp_path / "out").exists()


def test_a_second_overlap_of_another_type_is_refused_naming_both_providers():
    plugin = _importer_plugin("my-format", Option("overlap", "pixels of overlap", type="int"))
    registry = build_registry(load_third_party=False, extra_plugins=[("my-plugin", plugin)])
    (problem,) = registry.problems
    assert problem == (
        "importer 'my-format' from plugin 'my-plugin' refused: its option --overlap (int) "
        "clashes with --overlap (choice smaller-on-top|later-on-top|score|error) of importer "
        f"'coco-rle' from plugin 'segconvert.formats.coco_rle' (segconvert {VERSION}); "
        "rename the option"
    )
    assert "my-format" not in [r.descriptor.name for r in registry.importers()]
    (taker,) = registry.takers("overlap")
    assert taker.format == "coco-rle" and taker.option.type == "choice"


def test_two_plugins_declaring_one_option_alike_share_it_and_each_gets_its_value(tmp_path):
    first = _importer_plugin("first-format", Option("depth", "bits", type="int", default=8))
    second = _importer_plugin("second-format", Option("depth", "bit depth", type="int"))
    registry = build_registry(
        load_third_party=False, extra_plugins=[("first", first), ("second", second)]
    )
    assert registry.problems == []
    assert [(t.format, t.side) for t in registry.takers("depth")] == [
        ("first-format", Side.IMPORT),
        ("second-format", Side.IMPORT),
    ]
    from segconvert.plan import split_options

    nucleus = registry.exporter("nucleus")
    for name in ("first-format", "second-format"):
        import_options, _ = split_options(registry.importer(name), nucleus, {"depth": 16})
        assert import_options == {"depth": 16}


def test_an_option_named_like_a_host_option_is_refused():
    plugin = _importer_plugin("jobs-format", Option("jobs", "my own jobs", type="int"))
    registry = build_registry(load_third_party=False, extra_plugins=[("p", plugin)])
    assert registry.problems == [
        "importer 'jobs-format' from plugin 'p' refused: --jobs is one of segconvert's own options"
    ]


class _ConvertReplacer:
    @hookimpl
    def segconvert_register_commands(self, cli):
        @cli.command("convert")
        def hijacked():
            click.echo("hijacked")

        @cli.command("hello")
        def hello():
            click.echo("hello from a plugin")


def test_a_plugin_convert_command_is_refused_naming_the_plugin(tmp_path):
    registry = build_registry(
        load_third_party=False, extra_plugins=[("hijack", _ConvertReplacer())]
    )
    result = run_cli("convert", "--help", registry=registry)
    assert result.returncode == 0
    assert "Convert SOURCE" in result.stdout and "hijacked" not in result.stdout
    assert (
        "segconvert: warning: plugin 'hijack' tried to replace the command 'convert'; refused"
        in result.stderr
    )
    assert run_cli("hello", registry=registry).stdout == "hello from a plugin\n"


def test_a_plugin_whose_scan_raises_is_one_line_naming_it_and_exit_one(tmp_path):
    registry = build_registry(
        load_third_party=False, extra_plugins=[("scan-fails", _importer_plugin("failing"))]
    )
    (tmp_path / "src").mkdir()
    args = ["convert", str(tmp_path / "src"), str(tmp_path / "o"), "--from", "failing"]
    result = run_cli(*args, "--to", "nucleus", registry=registry)
    assert result.returncode == 1
    assert result.stderr == (
        "segconvert: error: plugin 'scan-fails' failed in scan of format 'failing': "
        "ValueError: cannot read this on purpose\n"
    )
    shown = run_cli("--traceback", *args, "--to", "nucleus", registry=registry)
    assert "Traceback (most recent call last)" in shown.stderr
    assert "raise ValueError" in shown.stderr


@pytest.mark.parametrize("bad", ["Overlap", "my_option", "-x"])
def test_an_option_name_that_is_not_kebab_case_is_refused(bad):
    plugin = _importer_plugin("bad-option", Option(bad, "?"))
    registry = build_registry(load_third_party=False, extra_plugins=[("p", plugin)])
    assert registry.problems == [
        f"importer 'bad-option' from plugin 'p' refused: option {bad!r} is not kebab-case"
    ]


def test_options_of_one_format_are_listed_by_side():
    registry = build_registry(load_third_party=False)
    sides = {(e.side, e.option.name) for e in registry.format_options([("coco-rle", Side.EXPORT)])}
    assert sides == {
        (Side.EXPORT, "json-name"),
        (Side.EXPORT, "things-only"),
        (Side.EXPORT, "per-image"),
    }


HIJACKING_PLUGIN = """
import click
from segconvert import hookimpl

@hookimpl
def segconvert_register_commands(cli):
    @cli.command("convert")
    def convert():
        click.echo("hijacked")
"""


def test_an_installed_plugin_replacing_convert_is_refused_naming_its_distribution(tmp_path):
    install_fake_plugin(tmp_path, "segconvert-hijack", "segconvert_hijack", HIJACKING_PLUGIN)
    result = run_cli("convert", "--help", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0 and "hijacked" not in result.stdout
    assert (
        "plugin 'segconvert_hijack' (segconvert-hijack 1.0) tried to replace the command "
        "'convert'; refused" in result.stderr
    )


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        (Option("ratio", "?", type="float"), "--ratio has type 'float', not one of str, path, int"),  # type: ignore[arg-type]
        (Option("pick", "?", type="choice"), "--pick is a choice with no choices"),
    ],
)
def test_an_option_the_cli_cannot_parse_is_refused_and_the_cli_still_builds(option, reason):
    plugin = _importer_plugin("odd-option", option)
    registry = build_registry(load_third_party=False, extra_plugins=[("p", plugin)])
    (problem,) = registry.problems
    assert problem.startswith("importer 'odd-option' from plugin 'p' refused: " + reason)
    assert run_cli("convert", "--help", registry=registry).returncode == 0
