from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from moa_lab import ConfigError, TopologySpec, load_topology, preset
from moa_lab.registry import names
from moa_lab.topology import build_topology, to_yaml, validate

PRESETS = ["single", "moa", "moa-lite", "moa-strong-aggregator", "self-moa", "prompt-ensemble", "ranker"]


def test_all_presets_are_registered() -> None:
    assert set(PRESETS) <= set(names("topology"))


@pytest.mark.parametrize("name", PRESETS)
def test_presets_round_trip_through_yaml_exactly(name: str) -> None:
    spec = preset(name)
    text = to_yaml(spec)
    again = validate(TopologySpec, yaml.safe_load(text))
    assert again == spec
    assert to_yaml(again) == text
    build_topology(again)  # every preset builds


def test_paper_layer_counting() -> None:
    moa = preset("moa", n=6)
    assert len(moa.layers) == 2 and all(len(layer.proposers) == 6 for layer in moa.layers)
    assert moa.aggregator is not None and moa.aggregator.agent == "synthesize"
    assert len(preset("moa-lite").layers) == 1
    assert preset("ranker").aggregator.agent == "rank"  # type: ignore[union-attr]


def test_self_moa_samples_one_model_k_times_as_distinct_calls() -> None:
    topo = build_topology(preset("self-moa", model="local", k=4))
    assert [a.sample_index for a in topo.layers[0]] == [0, 1, 2, 3]
    assert len({a.spec for a in topo.layers[0]}) == 1


def test_prompt_ensemble_proposers_get_disjoint_examples() -> None:
    spec = preset("prompt-ensemble", k=5, per_proposer=5)
    sets = [tuple(map(tuple, p.args["examples"])) for p in spec.layers[0].proposers]
    flat = [e for s in sets for e in s]
    assert len(flat) == 25 and len(set(flat)) == 25
    assert spec.aggregator.agent == "vote"  # type: ignore[union-attr]
    assert preset("prompt-ensemble", aggregator="synthesize").aggregator.agent == "synthesize"  # type: ignore[union-attr]


def test_invalid_spec_names_the_yaml_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlayers:\n  - proposers: []\n  - proposerz: [{agent: plain}]\n")
    with pytest.raises(ConfigError) as err:
        load_topology(bad)
    message = str(err.value)
    assert "layers[0].proposers" in message and "at least 1" in message
    assert "layers[1].proposerz: unknown field" in message


def test_unknown_agent_in_yaml_says_where_and_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("layers:\n  - proposers:\n      - {agent: plane, model: local}\naggregator: {agent: vote}\n")
    with pytest.raises(ConfigError, match=r"layers\[0\]\.proposers\[0\]: unknown proposer 'plane'; did you mean 'plain'"):
        build_topology(load_topology(path))


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("layers:\n  - proposers: [\n")
    with pytest.raises(ConfigError, match=r"t.yaml: line \d+, column \d+: invalid YAML"):
        load_topology(path)


def test_unknown_preset_and_preset_argument() -> None:
    with pytest.raises(ConfigError, match="did you mean 'moa-lite'"):
        load_topology("moa-light")
    with pytest.raises(ConfigError, match="did you mean 'k'"):
        preset("self-moa", kk=3)


def test_several_final_proposers_need_an_aggregator() -> None:
    with pytest.raises(ConfigError, match="needs an aggregator"):
        load_topology({"layers": [{"proposers": [{"agent": "plain"}, {"agent": "plain"}]}]})


def test_spec_is_frozen_and_lists_models() -> None:
    spec = preset("moa-lite", proposers=["replay/a", "replay/b"], aggregator="openai/gpt-4o")
    assert spec.models() == ["replay/a", "replay/b", "openai/gpt-4o"]
    with pytest.raises(Exception):
        spec.name = "other"  # type: ignore[misc]
