from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from moa_lab import ConfigError, aggregator, proposer
from moa_lab.registry import Kind, build, lookup, names, register
from moa_lab.registry._kinds import BUILTINS


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown aggregator 'synthesise'; did you mean 'synthesize'\?"):
        build("aggregator", "synthesise")


def test_unknown_argument_names_its_path_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"layers\[0\]\.proposers\[1\]\.temprature: unknown argument 'temprature' of proposer 'plain'; did you mean 'temperature'"):
        build("proposer", "plain", {"temprature": 0.3}, where="layers[0].proposers[1]")


def test_missing_required_argument() -> None:
    with pytest.raises(ConfigError, match="needs argument 'k'"):
        build("selector", "first-k", {})


def test_decorated_factory_registers_and_receives_its_arguments() -> None:
    @proposer("echo-test")
    def echo(model: str = "x", times: int = 1) -> dict[str, object]:
        """Echo the query."""
        return {"model": model, "times": times}

    assert build("proposer", "echo-test", {"times": 3}) == {"model": "x", "times": 3}
    assert "echo-test" in names("proposer")
    assert lookup("proposer", "echo-test").summary == "Echo the query."


def test_an_unknown_kind_is_an_error_that_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown kind 'selecter'; did you mean 'selector'"):
        names("selecter")
    with pytest.raises(ConfigError, match=r"unknown kind 'agregator'; did you mean 'aggregator'"):
        register("agregator")
    with pytest.raises(ConfigError, match=r"unknown kind 'widget'; known: topology, proposer"):
        build("widget", "x")
    assert set(Kind) == set(BUILTINS)


def test_entry_point_plugins_are_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin package listed under the `moa_lab.plugins` entry-point group registers on lookup."""
    (tmp_path / "moa_plugin_demo.py").write_text(textwrap.dedent('''
        from moa_lab import aggregator

        @aggregator("plugin-first")
        def plugin_first():
            """Take the first proposal."""
            return object()
    '''))
    dist = tmp_path / "moa_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moa-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[moa_lab.plugins]\ndemo = moa_plugin_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import moa_lab.registry._registry as reg

    monkeypatch.setattr(reg, "_plugins_loaded", False)
    assert "plugin-first" in names("aggregator")
    sys.modules.pop("moa_plugin_demo", None)


def test_aggregator_decorator_is_the_registry_kind() -> None:
    @aggregator("agg-test")
    def agg() -> object:
        return object()

    assert "agg-test" in names("aggregator")
