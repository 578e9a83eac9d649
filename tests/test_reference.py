"""The references generated from the code are current, and `topologies` shows every argument."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from moa_lab.cli import app
from moa_lab.cli._reference import cli_markdown, describe
from moa_lab.registry import names

ROOT = Path(__file__).resolve().parents[1]


def test_docs_presets_md_is_current() -> None:
    # a fresh process: other tests register agents of their own in this one
    code = "import sys; from moa_lab.cli._reference import presets_markdown; sys.stdout.write(presets_markdown())"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert (ROOT / "docs" / "presets.md").read_text() == fresh, "run python scripts/make_docs.py"


def test_docs_cli_md_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == cli_markdown(app), "run python scripts/make_docs.py"


def test_every_preset_argument_has_a_meaning() -> None:
    for name in names("topology"):
        doc = describe("topology", name)
        assert doc.description, name
        assert [a.name for a in doc.arguments if not a.meaning] == [], name


def test_topologies_show_lists_the_arguments_and_the_list_keeps_whole_descriptions() -> None:
    shown = CliRunner().invoke(app, ["topologies", "--show", "moa"])
    assert shown.exit_code == 0, shown.output
    for arg in ("proposers", "n", "layers", "aggregator", "temperature", "max_tokens", "language"):
        assert f"\n#   {arg} " in shown.output
    assert "2 proposer layers + the aggregator" in shown.output
    listed = CliRunner().invoke(app, ["topologies"], env={"COLUMNS": "400"})
    assert describe("topology", "self-moa").description in listed.output


def test_the_cli_reference_has_every_command() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    for command in ("ask", "run", "eval", "compare", "ui", "topologies", "search", "pareto", "router train", "router eval",
                    "data list", "data pull"):
        assert f"## `moa-lab {command}`" in text, command
