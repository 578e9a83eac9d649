"""With a budget every model needs a price: an unpriced one is refused before any call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moa_lab import Budget, ModelSet, Pipeline, preset
from moa_lab.cli import app
from moa_lab.core import ConfigError
from moa_lab.models import EndpointConfig, Price, PriceTable
from moa_lab.testing import OpenAITestServer


def test_an_unpriced_model_under_a_budget_is_refused_before_any_call(tmp_path: Path) -> None:
    with OpenAITestServer() as srv:
        exp = tmp_path / "exp.yaml"
        exp.write_text(f"""name: unpriced
topology: {{preset: single, model: srv/typo-model}}
queries: ["what is 2 + 2"]
endpoints: {{srv: {{kind: openai, base_url: "{srv.base_url}"}}}}
budget: {{usd: 0.000001}}
output: out
tracking: {{mlflow: false}}
""")
        res = CliRunner().invoke(app, ["eval", str(exp)], env={"MOA_LAB_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"})
        assert srv.calls == []
    said = res.output + str(res.exception)  # `moa-lab` prints a ConfigError as one line
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "no price for srv/typo-model" in said and "prices:" in said and "price: 0" in said
    # refused before anything is made: no run folder, no ledger, no call cache
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_an_unpriced_judge_under_a_budget_is_refused_before_any_call_or_folder(tmp_path: Path) -> None:
    with OpenAITestServer() as srv:
        (tmp_path / "q.jsonl").write_text('{"id": "q0", "input": "Say hi.", "reference": "Hi."}\n')
        exp = tmp_path / "exp.yaml"
        exp.write_text(f"""name: unpriced-judge
topology: {{preset: single, model: srv/priced}}
benchmark: {{kind: jsonl, path: q.jsonl}}
scorer: {{kind: judge-pairwise, model: srv/judge-typo}}
endpoints: {{srv: {{kind: openai, base_url: "{srv.base_url}"}}}}
prices: {{priced: {{input: 1, output: 2}}}}
budget: {{usd: 1.0}}
output: out
tracking: {{mlflow: false}}
""")
        res = CliRunner().invoke(app, ["eval", str(exp)], env={"MOA_LAB_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"})
        assert srv.calls == []
    assert isinstance(res.exception, ConfigError) and "no price for srv/judge-typo" in str(res.exception)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_free_endpoint_and_a_zero_price_are_accepted_under_a_budget(tmp_path: Path) -> None:
    with OpenAITestServer(responder=lambda body: "four") as srv:
        free = EndpointConfig(kind="openai", base_url=srv.base_url, price=0)
        paid = EndpointConfig(kind="openai", base_url=srv.base_url)
        models = ModelSet({"free": free, "srv": paid}, prices=PriceTable.from_mapping({"zero": 0}), budget=Budget(usd=0.01),
                          cache_dir=tmp_path)
        spec = preset("moa-lite", proposers=["free/anything", "srv/zero"], aggregator="free/agg", max_tokens=8)
        record = asyncio.run(Pipeline(spec, models).run_query(__import__("moa_lab").Sample("2 + 2?")))
        assert record.error is None and record.cost.paid_usd == 0 and len(srv.calls) == 3
        with pytest.raises(ConfigError, match="no price for srv/unknown"):
            Pipeline(preset("single", model="srv/unknown"), models)
    assert models.get("srv/zero").price.output_per_mtok == 0


def test_a_search_with_an_unpriced_pool_model_is_refused_before_its_study_is_made(tmp_path: Path) -> None:
    import json

    import yaml

    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": str(i), "input": f"q {i}", "target": "yes"}) + "\n" for i in range(3)))
    body = {"name": "s", "output": str(tmp_path / "out"), "benchmark": {"kind": "jsonl", "path": str(tmp_path / "q.jsonl")},
            "scorer": "exact", "tracking": {"mlflow": False}, "endpoints": {"srv": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "prices": {"priced": {"input": 1, "output": 2}},
            "search": {"trials": 2, "budget_usd": 1.0, "space": {"pool": ["srv/priced", "srv/typo"], "aggregators": ["vote"]}}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(body))
    res = CliRunner().invoke(app, ["search", str(tmp_path / "exp.yaml")], env={"MOA_LAB_CACHE_DIR": str(tmp_path / "cache")})
    assert isinstance(res.exception, ConfigError) and "no price for srv/typo" in str(res.exception)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # no study folder, ledger or cache
