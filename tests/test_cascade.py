"""Cascaded layers: proposers called in stages until their answers agree, traced per stage,
admitted on their worst case; the same rule ends a topology early (`exit`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from moa_lab import Budget, ModelSet, Pipeline, Sample, load_topology
from moa_lab.core import ConfigError, EndpointError, Request
from moa_lab.models import EndpointConfig, Price, PriceTable
from moa_lab.testing import OpenAITestServer, ScriptedClient
from moa_lab.topology import CascadeSpec, TopologySpec, for_task, to_yaml, validate
from moa_lab.tracking import QueryRecord

MODELS = [f"fake/p{i}" for i in range(5)]


def voted(answers: dict[str, str], cascade: dict, **extra) -> TopologySpec:  # type: ignore[no-untyped-def, type-arg]
    """Five proposers (p0..p4) in one cascaded layer, voted."""
    return load_topology({"layers": [{"proposers": [{"model": m} for m in MODELS], "cascade": cascade}],
                          "aggregator": {"agent": "vote"}, **extra})


def run(spec: TopologySpec, answers: dict[str, str], tmp_path: Path, **client: object) -> tuple[QueryRecord, ScriptedClient]:
    fake = ScriptedClient(responder=lambda r: answers.get(r.model, "?"), **client)  # type: ignore[arg-type]
    models = ModelSet(clients={"fake": fake}, cache_dir=tmp_path)
    [record] = asyncio.run(Pipeline(spec, models).run([Sample("capital of France?")]))
    return record, fake


def test_agreeing_first_stage_stops_the_layer(tmp_path: Path) -> None:
    answers = {"p0": "Paris", "p1": "paris.", "p2": "Lyon", "p3": "Lyon", "p4": "Lyon"}
    record, fake = run(voted(answers, {"stages": [2, 4], "threshold": 1.0}), answers, tmp_path)
    assert sorted(r.model for r in fake.requests) == ["p0", "p1"]
    assert [(c.layer, c.stage) for c in record.calls] == [(1, 1), (1, 1)]
    [stage] = record.stages
    assert (stage.layer, stage.stage, stage.proposals, stage.agreement, stage.agreed, stage.exited) == (1, 1, 2, 1.0, True, False)
    assert record.answer is not None and record.answer.text == "Paris" and record.answer.note == "2/2 votes"
    assert len(record.layers[0]) == 2


def test_disagreement_calls_the_next_stage_up_to_the_whole_layer(tmp_path: Path) -> None:
    answers = {"p0": "Paris", "p1": "Lyon", "p2": "Paris", "p3": "Paris", "p4": "Nice"}
    spec = voted(answers, {"stages": [2, 4], "threshold": 0.75})
    record, _ = run(spec, answers, tmp_path)
    assert [(s.stage, s.proposals, s.agreed) for s in record.stages] == [(1, 2, False), (2, 4, True)]
    assert [s.agreement for s in record.stages] == [0.5, 0.75]
    assert [c.stage for c in record.calls] == [1, 1, 2, 2] and len(record.calls) == 4
    # never agreeing: every stage, the last one the whole layer
    answers = {f"p{i}": city for i, city in enumerate(["Paris", "Lyon", "Nice", "Metz", "Paris"])}
    record, fake = run(spec, answers, tmp_path / "b")
    assert [(s.stage, s.proposals, s.agreed) for s in record.stages] == [(1, 2, False), (2, 4, False), (3, 5, False)]
    assert len(fake.requests) == 5 and record.answer is not None and record.answer.text == "Paris"


class Ordered(ScriptedClient):
    """Keeps the order in which calls start and end."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__(responder=lambda r: answers[r.model], latency=0.01)
        self.events: list[str] = []

    async def complete(self, request: Request):  # type: ignore[no-untyped-def]
        self.events.append(f"start {request.model}")
        try:
            return await super().complete(request)
        finally:
            self.events.append(f"end {request.model}")


def test_a_stage_calls_its_proposers_concurrently_and_only_after_the_previous_stage(tmp_path: Path) -> None:
    answers = {"p0": "x", "p1": "y", "p2": "x", "p3": "y", "p4": "z"}
    client = Ordered(answers)
    models = ModelSet(clients={"fake": client}, cache_dir=tmp_path)
    asyncio.run(Pipeline(voted(answers, {"stages": [2, 4]}), models).run([Sample("q")]))
    events = client.events
    stage = {"p0": 1, "p1": 1, "p2": 2, "p3": 2, "p4": 3}
    for earlier in stage:
        for later in stage:
            if stage[earlier] < stage[later]:
                assert events.index(f"end {earlier}") < events.index(f"start {later}")
            elif stage[earlier] == stage[later] and earlier != later:  # both in flight at once
                assert events.index(f"start {earlier}") < events.index(f"end {later}")


def test_a_failed_proposal_agrees_with_none(tmp_path: Path) -> None:
    answers = {"p0": "Paris", "p1": "Paris", "p2": "Paris", "p3": "Lyon", "p4": "Lyon"}

    def fail(request: Request, attempt: int) -> EndpointError | None:
        return EndpointError("HTTP 400", status=400, retryable=False) if request.model == "p1" else None

    record, _ = run(voted(answers, {"stages": [2], "threshold": 0.9}), answers, tmp_path, fail=fail)
    assert [s.agreement for s in record.stages] == [0.5, 0.4]  # 1 of 2, then 2 of 5 (p0, p2)
    assert record.answer is not None and record.answer.text == "Paris"


def test_stages_apply_to_the_proposers_the_selector_chose(tmp_path: Path) -> None:
    answers = {"p0": "x", "p1": "y", "p2": "x", "p3": "x", "p4": "x"}
    spec = voted(answers, {"stages": [2, 4], "threshold": 1.0}, selector={"kind": "first-k", "k": 3})
    record, fake = run(spec, answers, tmp_path)
    assert record.selected == [0, 1, 2] and sorted(r.model for r in fake.requests) == ["p0", "p1", "p2"]
    assert [(s.stage, s.proposals) for s in record.stages] == [(1, 2), (2, 3)]


def moa(cascade: dict) -> TopologySpec:  # type: ignore[type-arg]
    """The paper's 3-layer MoA (two proposer layers, then a synthesizing aggregator), cascaded."""
    return load_topology({"preset": "moa", "proposers": MODELS[:3], "aggregator": "fake/agg", "cascade": cascade})


def test_exit_answers_with_the_agreeing_answer_and_skips_later_layers(tmp_path: Path) -> None:
    answers = {"p0": "Paris", "p1": "Paris", "p2": "Paris", "agg": "Lyon"}
    record, fake = run(moa({"stages": [2], "threshold": 1.0, "exit": True}), answers, tmp_path)
    assert sorted(r.model for r in fake.requests) == ["p0", "p1"]  # no third proposer, no layer 2, no aggregator
    assert len(record.layers) == 1 and record.stages[-1].exited
    assert record.answer is not None and record.answer.text == "Paris" and record.answer.agent == "L1.1 plain(fake/p0)"
    assert record.answer.note == "cascade exit after layer 1: agreement 1.00 >= 1"
    # without agreement the topology runs in full, each proposer layer in its stages
    answers = {"p0": "Paris", "p1": "Lyon", "p2": "Nice", "agg": "Lyon"}
    record, fake = run(moa({"stages": [2], "threshold": 1.0, "exit": True}), answers, tmp_path / "b")
    assert len(fake.requests) == 7 and [len(layer) for layer in record.layers] == [3, 3]
    assert [(s.layer, s.stage) for s in record.stages] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert not any(s.exited for s in record.stages) and record.answer is not None and record.answer.text == "Lyon"


def test_similarity_cascade_on_open_ended_answers(tmp_path: Path) -> None:
    long = "The sky looks blue because air scatters short wavelengths of sunlight more than long ones."
    answers = {"p0": long, "p1": long.replace("looks", "is"), "p2": "Because of the ocean.", "agg": "agg answer"}
    spec = moa({"stages": [2], "threshold": 0.8, "measure": "similarity", "exit": True})
    record, fake = run(spec, answers, tmp_path)
    assert record.stages[0].agreement > 0.8 and record.stages[0].exited and len(fake.requests) == 2
    assert record.answer is not None and record.answer.text in (answers["p0"], answers["p1"])
    hashed = moa({"stages": [2], "threshold": 0.99, "measure": "similarity", "embedder": "hash"})
    record, fake = run(hashed, answers, tmp_path / "b")
    assert 0 < record.stages[0].agreement < 0.99 and len(fake.requests) == 7  # cosines of hashed embeddings


def test_the_record_keeps_its_stages_through_a_runlog_line(tmp_path: Path) -> None:
    answers = {"p0": "x", "p1": "y", "p2": "x", "p3": "x", "p4": "z"}
    record, _ = run(voted(answers, {"stages": [2, 3], "threshold": 0.6}), answers, tmp_path)
    again = QueryRecord.model_validate_json(record.model_dump_json())
    assert again.stages == record.stages and [c.stage for c in again.calls] == [1, 1, 2]
    assert QueryRecord.model_validate({"sample": {"input": "q"}}).stages == []  # records written before cascades


def test_the_worst_case_is_every_stage_and_what_is_not_called_is_released(tmp_path: Path) -> None:
    """Admission plans all five proposers though the cascade calls two: a cap below that worst case
    refuses the query before any call; a cap of exactly it admits it, and the stages' unused part
    comes back (over a real HTTP server)."""
    with OpenAITestServer(responder=lambda body: "Paris") as srv:
        prices = PriceTable({m.split("/")[1]: Price(10.0, 30.0) for m in MODELS})
        endpoint = EndpointConfig(kind="openai", base_url=srv.base_url, concurrency=8)
        flat = load_topology({"layers": [{"proposers": [{"model": m.replace("fake", "srv"), "max_tokens": 20} for m in MODELS]}],
                              "aggregator": {"agent": "vote"}})
        cascaded = flat.model_copy(update={"layers": (flat.layers[0].model_copy(update={"cascade": CascadeSpec(stages=(2,))}),)})
        probe = ModelSet({"srv": endpoint}, prices=prices, cache_dir=tmp_path)
        worst = asyncio.run(Pipeline(cascaded, probe).plan(Sample("q")))
        assert worst.usd == asyncio.run(Pipeline(flat, probe).plan(Sample("q"))).usd > 0
        assert len(worst.calls) == 5

        short = Budget(usd=worst.usd * 0.99)
        [refused] = asyncio.run(Pipeline(cascaded, ModelSet({"srv": endpoint}, prices=prices, budget=short, cache_dir=tmp_path)).run([Sample("q")]))
        assert (refused.error or "").startswith("BudgetExceeded: query not started") and srv.calls == []

        exact = Budget(usd=worst.usd)
        [record] = asyncio.run(Pipeline(cascaded, ModelSet({"srv": endpoint}, prices=prices, budget=exact, cache_dir=tmp_path)).run([Sample("q")]))
        assert record.error is None and len(srv.calls) == 2 and record.stages[0].agreed
    assert exact.reserved_usd == pytest.approx(0, abs=1e-12)
    assert exact.spent_usd == pytest.approx(record.cost.paid_usd) and 0 < exact.spent_usd < worst.usd * 2 / 5


def test_cascade_spec_is_checked_and_serialises() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        voted({}, {"stages": [1, 3]})
    with pytest.raises(ConfigError, match="must increase"):
        voted({}, {"stages": [3, 2]})
    with pytest.raises(ConfigError, match="more proposers than the layer's 5"):
        voted({}, {"stages": [2, 6]})
    with pytest.raises(ConfigError, match="embedder is for measure: similarity"):
        voted({}, {"embedder": "hash"})
    with pytest.raises(ConfigError, match="threshold"):
        voted({}, {"threshold": 1.5})
    with pytest.raises(ConfigError, match="extractor"):
        Pipeline(voted({}, {"extractor": "nope"}), ModelSet(clients={"fake": ScriptedClient()}))
    spec = voted({}, {"stages": [2, 4], "threshold": 0.6, "exit": True})
    assert validate(TopologySpec, yaml.safe_load(to_yaml(spec))) == spec
    assert CascadeSpec(stages=(2, 4)).bounds(5) == [2, 4, 5] and CascadeSpec(stages=(2, 4)).bounds(3) == [2, 3]
    assert CascadeSpec().bounds(5) == [5]


def test_cascade_beside_a_preset_stages_every_proposer_layer_and_survives_task_binding() -> None:
    spec = load_topology({"preset": "prompt-ensemble", "k": 5, "layers": 2, "task": "addition",
                          "cascade": {"stages": [3], "threshold": 1.0}})
    assert [layer.cascade for layer in spec.layers] == [CascadeSpec(stages=(3,), threshold=1.0)] * 2
    single = load_topology({"preset": "self-moa", "k": 4, "aggregator": "vote", "cascade": {"stages": [2]}})
    bound = for_task(single, "opposites")
    assert bound.layers[0].cascade == CascadeSpec(stages=(2,)) and "examples" in bound.layers[0].proposers[0].args
    with pytest.raises(ConfigError, match=r"topology.cascade: stages"):
        load_topology({"preset": "self-moa", "cascade": {"stages": "two"}})


@pytest.mark.slow
def test_on_the_embedded_model_a_unanimous_majority_stage_saves_calls_and_changes_no_answer(cache_dir: Path) -> None:
    """Five prompt variants of the embedded model on 12 addition items: the full vote, then the
    cascade that stops when the first three agree, over the same call cache (so both see the same
    proposer answers). Three equal answers of five win the vote anyway, so every answer is the
    full vote's, with fewer calls wherever the three agree; each call carries its stage."""
    from moa_lab.benchmarks import builtin_task
    from moa_lab.models import SqliteCache

    samples = list(builtin_task("addition", items=12).items)
    full = load_topology({"preset": "prompt-ensemble", "k": 5, "aggregator": "vote", "temperature": 0.0, "max_tokens": 8,
                          "task": "addition"})
    cascaded = load_topology({"preset": "prompt-ensemble", "k": 5, "aggregator": "vote", "temperature": 0.0, "max_tokens": 8,
                              "task": "addition", "cascade": {"stages": [3], "threshold": 1.0}})

    async def both() -> tuple[list[QueryRecord], list[QueryRecord]]:
        async with ModelSet(cache=SqliteCache(cache_dir / "calls.sqlite"), cache_dir=cache_dir, local_slots=5) as models:
            return await Pipeline(full, models).run(samples), await Pipeline(cascaded, models).run(samples)

    plain, staged = asyncio.run(both())
    assert all(r.error is None for r in plain + staged)
    assert [r.answer.text for r in staged] == [r.answer.text for r in plain]  # type: ignore[union-attr]
    stopped = [r for r in staged if r.stages[0].agreed]
    assert stopped, "the first three variants never agreed on a single-digit sum"
    assert sum(len(r.calls) for r in staged) == 5 * len(samples) - 2 * len(stopped)
    assert all({c.stage for c in r.calls} == ({1} if r.stages[0].agreed else {1, 2}) for r in staged)
