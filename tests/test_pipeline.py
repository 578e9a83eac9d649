"""The engine over the scripted client: concurrency, failure policy, aggregators, selectors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from moa_lab import ModelSet, Pipeline, Sample, load_topology, preset
from moa_lab.core import Completion, EndpointError, Request
from moa_lab.models import MemoryCache
from moa_lab.testing._scripted import ScriptedClient
from moa_lab.topology import SelectorSpec


def _run(spec, models, samples):  # type: ignore[no-untyped-def]
    return asyncio.run(Pipeline(spec, models).run(samples, concurrency=16))


class _LayerGate(ScriptedClient):
    """Answers a proposer only once all six of its layer are in flight (a cyclic barrier): a layer
    run one call after another never gets past it. Deterministic however busy the machine is."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Barrier(6)

    async def complete(self, request: Request) -> Completion:
        if request.model != "agg":
            await asyncio.wait_for(self.gate.wait(), timeout=60)
        return await super().complete(request)


def test_proposers_of_a_layer_run_concurrently(tmp_path: Path) -> None:
    client = _LayerGate()
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    spec = preset("moa", proposers=[f"fake/p{i}" for i in range(6)], aggregator="fake/agg")
    [result] = _run(spec, models, [Sample("q")])
    assert result.error is None and len(result.calls) == 13 and not any(c.error for c in result.calls)


def test_later_layers_see_every_previous_answer(tmp_path: Path) -> None:
    client = ScriptedClient(responder=lambda r: f"from {r.model}")
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    [result] = _run(preset("moa", proposers=["fake/a", "fake/b"], aggregator="fake/agg"), models, [Sample("q")])
    last = client.requests[-1]
    assert last.model == "agg"
    assert last.messages[0].content.endswith("Responses from models:\n1. from a\n2. from b")
    assert result.answer is not None and result.answer.text == "from agg"


def _failing(models_that_fail: set[str]) -> ScriptedClient:
    def fail(request: Request, attempt: int) -> EndpointError | None:
        return EndpointError("HTTP 503", status=503, retryable=True) if request.model in models_that_fail else None

    return ScriptedClient(fail=fail)


def test_failed_proposer_is_recorded_and_aggregator_proceeds(tmp_path: Path) -> None:
    client = _failing({"b"})
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    for m in ("fake/a", "fake/b", "fake/agg"):
        models.get(m).retry = type(models.get(m).retry)(attempts=2, backoff_s=0.001)
    [result] = _run(preset("moa-lite", proposers=["fake/a", "fake/b"], aggregator="fake/agg"), models, [Sample("q")])
    assert result.error is None
    assert [p.ok for p in result.layers[0]] == [True, False]
    assert "HTTP 503" in (result.layers[0][1].error or "")
    assert client.requests[-1].messages[0].content.endswith("Responses from models:\n1. a answer")
    failed = [c for c in result.calls if c.error]
    assert len(failed) == 1 and failed[0].attempts == 2


def test_fail_policy_fails_the_query(tmp_path: Path) -> None:
    client = _failing({"b"})
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    models.get("fake/b").retry = type(models.get("fake/b").retry)(attempts=1)
    spec = preset("moa-lite", proposers=["fake/a", "fake/b"], aggregator="fake/agg").model_copy(update={"on_proposer_error": "fail"})
    [result] = _run(spec, models, [Sample("q")])
    assert result.answer is None and "layer 1" in (result.error or "")
    assert all(r.model != "agg" for r in client.requests)


def test_vote_picks_the_majority_without_a_model_call(tmp_path: Path) -> None:
    answers = {"a": "Paris", "b": "paris.", "c": "Lyon"}
    client = ScriptedClient(responder=lambda r: answers[r.model])
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    spec = load_topology({"layers": [{"proposers": [{"agent": "plain", "model": f"fake/{m}"} for m in "cab"]}], "aggregator": {"agent": "vote"}})
    [result] = _run(spec, models, [Sample("capital of France?")])
    assert result.answer is not None and result.answer.text == "Paris" and result.answer.note == "2/3 votes"
    assert len(client.requests) == 3


def test_number_extractor_votes_on_values(tmp_path: Path) -> None:
    answers = {"a": "The answer is 1,200.", "b": "#### 1200", "c": "12"}
    client = ScriptedClient(responder=lambda r: answers[r.model])
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    spec = load_topology({"layers": [{"proposers": [{"agent": "plain", "model": f"fake/{m}"} for m in "cab"]}],
                          "aggregator": {"agent": "vote", "extractor": "number"}})
    [result] = _run(spec, models, [Sample("q")])
    assert result.answer is not None and result.answer.text == "The answer is 1,200."


def test_ranker_returns_the_chosen_proposal_verbatim(tmp_path: Path) -> None:
    def respond(r: Request) -> str:
        return "2" if r.model == "judge" else f"answer of {r.model}"

    models = ModelSet(clients={"fake": ScriptedClient(responder=respond)}, cache_dir=tmp_path)
    [result] = _run(preset("ranker", proposers=["fake/a", "fake/b", "fake/c"], model="fake/judge"), models, [Sample("q")])
    assert result.answer is not None and result.answer.text == "answer of b" and result.answer.chosen == 1


def test_selector_limits_the_layer_one_calls(tmp_path: Path) -> None:
    client = ScriptedClient()
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    spec = preset("moa-lite", proposers=[f"fake/p{i}" for i in range(5)], aggregator="fake/agg").model_copy(
        update={"selector": SelectorSpec(kind="first-k", k=2)})
    [result] = _run(spec, models, [Sample("q")])
    assert result.selected == [0, 1]
    assert sorted(r.model for r in client.requests) == ["agg", "p0", "p1"]


def test_results_keep_input_order_and_totals_add_up(tmp_path: Path) -> None:
    client = ScriptedClient(latency=0.01)
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path, cache=MemoryCache())
    samples = [Sample(f"question {i}", id=str(i)) for i in range(30)]
    results = _run(preset("moa-lite", proposers=["fake/a", "fake/b"], aggregator="fake/agg"), models, samples)
    assert [r.sample.id for r in results] == [str(i) for i in range(30)]
    assert all(r.usage.input_tokens == sum(c.usage.input_tokens for c in r.calls) for r in results)
