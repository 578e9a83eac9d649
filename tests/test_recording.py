"""Recordings: `moa-lab record export` of a run, then the same experiment replayed from it with its
endpoint stopped: the same answers at every layer, nothing sent to a model."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from moa_lab import ModelSet, preset, run
from moa_lab.core import Answer, CallRecord, ConfigError, Cost, Message, ReplayMissing, Request, Sample, Sampling, Usage
from moa_lab.evaluation import export_recording
from moa_lab.models import EndpointConfig, RecordedCall, write_recording
from moa_lab.models.providers.replay import ReplayClient
from moa_lab.testing import OpenAITestServer, ScriptedClient
from moa_lab.tracking import QueryRecord, RunHeader, RunLogWriter, read_runlogs


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "MOA_LAB_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "moa_lab.cli", *args], capture_output=True, text=True, env=env, timeout=1200)


def _experiment(folder: Path, endpoints: str, model: str, aggregator: str, *, items: int, extra: str = "") -> Path:
    """MoA with 2 proposer layers of three identical proposers (so each layer's calls differ only by
    sample index) and a synthesizing aggregator, in chat form; and a prompt ensemble whose every
    layer sends completion-style prompts; on a built-in task."""
    exp = folder / "exp.yaml"
    exp.write_text(f"""name: recorded
benchmark: {{kind: builtin, tasks: [opposites], items: {items}}}
topologies:
  moa: {{preset: moa, proposers: [{model}, {model}, {model}], layers: 3, aggregator: {aggregator}, max_tokens: 8}}
  ensemble: {{preset: prompt-ensemble, model: {model}, k: 3, layers: 2, aggregator: synthesize, temperature: 0.7, max_tokens: 8}}
endpoints: {endpoints}
concurrency: 4
output: out
tracking: {{mlflow: false}}
{extra}""")
    return exp


def _runs(folder: Path) -> dict[str, dict[str, QueryRecord]]:
    return {log.path.name: {r.id: r for r in log.records} for log in read_runlogs([folder])}


def _assert_replayed(original: dict[str, dict[str, QueryRecord]], replayed: dict[str, dict[str, QueryRecord]]) -> int:
    """Every query has the same answer, proposals and call outputs; no replayed call failed. Returns the calls."""
    assert original.keys() == replayed.keys() and original
    calls = 0
    for name, records in original.items():
        assert records.keys() == replayed[name].keys()
        for sid, before in records.items():
            after = replayed[name][sid]
            assert before.error is None and after.error is None, (name, sid, after.error)
            assert after.answer is not None and before.answer is not None and after.answer.text == before.answer.text
            assert [[p.text for p in layer] for layer in after.layers] == [[p.text for p in layer] for layer in before.layers]
            key = lambda c: (c.layer, c.agent)  # noqa: E731 - calls of one layer finish in any order
            assert [(c.agent, c.output, c.usage) for c in sorted(after.calls, key=key)] == \
                   [(c.agent, c.output, c.usage) for c in sorted(before.calls, key=key)]
            assert all(c.error is None and not c.cached for c in after.calls)
            assert after.cost.list_usd == pytest.approx(before.cost.list_usd)
            calls += len(after.calls)
    return calls


def test_a_moa_run_on_an_http_endpoint_replays_whole_from_its_export(tmp_path: Path) -> None:
    counter = itertools.count(1)
    # every answer differs, so identical requests (one per sample index) get distinct answers
    server = OpenAITestServer(responder=lambda body: f"answer {next(counter)}")
    base_url = server.start()
    exp = _experiment(tmp_path, f'{{srv: {{kind: openai, base_url: "{base_url}"}}}}', "srv/m", "srv/agg", items=3,
                      extra="prices: {m: {input: 1.0, output: 2.0}, agg: {input: 3.0, output: 4.0}}\nbudget: {usd: 5.0}\n")
    wrong = _cli("eval", str(exp), "--replay", str(tmp_path / "nowhere"), cache=tmp_path / "cache")
    assert wrong.returncode == 2 and f"{tmp_path / 'nowhere'}: not a recording (no calls.jsonl in it)" in wrong.stderr
    assert not (tmp_path / "out").exists()  # refused before a run folder was made
    first = _cli("eval", str(exp), cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-2000:] + first.stdout[-2000:]
    served = len(server.calls)
    original = _runs(tmp_path / "out" / "recorded" / "latest")
    moa = original["moa__opposites.jsonl"]
    assert all(len({p.text for p in layer}) == 3 for r in moa.values() for layer in r.layers), "Self-MoA samples differ"
    ensemble_calls = [c for r in original["ensemble__opposites.jsonl"].values() for c in r.calls]
    assert ensemble_calls and all(c.prompt_form for c in ensemble_calls) and {c.layer for c in ensemble_calls} == {1, 2, 3}
    assert served == sum(len(r.calls) for records in original.values() for r in records.values())

    export = _cli("record", "export", str(tmp_path / "out" / "recorded" / "latest"), "--out", str(tmp_path / "rec"), cache=tmp_path / "cache")
    assert export.returncode == 0, export.stderr
    assert f"{served} calls of 6 queries from 2 RunLogs" in export.stdout
    server.stop()

    again = _cli("eval", str(exp), "--replay", str(tmp_path / "rec"), cache=tmp_path / "cache2")
    assert again.returncode == 0, again.stderr[-2000:] + again.stdout[-2000:]
    assert f"replay: {served} calls looked up in {tmp_path / 'rec'}; no model was called" in again.stdout
    replayed = _runs(tmp_path / "out" / "recorded" / "latest")
    assert _assert_replayed(original, replayed) == served
    assert len(server.calls) == served  # nothing reached the (stopped) endpoint

    exp.write_text(exp.read_text().replace("items: 3", "items: 4"))  # one more item: its calls were never made
    more = _cli("eval", str(exp), "--replay", str(tmp_path / "rec"), cache=tmp_path / "cache2")
    assert more.returncode == 3, more.stderr[-2000:]
    miss = next(line for line in more.stdout.splitlines() if "not in the recording" in line)
    assert re.search(r"the first: ReplayMissing: (m|agg): no recording in .*rec/calls.jsonl of this request \((chat of|completion prompt)", miss)


def test_a_replay_endpoint_serves_an_exported_moa_at_every_layer(tmp_path: Path) -> None:
    counter = itertools.count(1)
    fake = ScriptedClient(responder=lambda r: f"{r.model} {next(counter)}")
    samples = [Sample(f"Question {i}?", id=f"q{i}") for i in range(3)]
    topology = lambda e: preset("moa", proposers=[f"{e}/m"] * 3, layers=3, aggregator=f"{e}/agg")  # noqa: E731
    original = run(topology("fake"), samples, ModelSet(clients={"fake": fake}, cache_dir=tmp_path))
    header = RunHeader(label="moa", topology=topology("fake").model_dump(mode="json"), samples=3)
    with RunLogWriter(tmp_path / "moa.jsonl", header, original):
        pass
    assert export_recording([tmp_path / "moa.jsonl"], tmp_path / "rec").calls == 3 * 7
    endpoint = EndpointConfig(kind="replay", paths=(str(tmp_path / "rec"),))
    replayed = run(topology("rec"), samples, ModelSet({"rec": endpoint}, cache_dir=tmp_path))
    assert [r.answer.text for r in replayed if r.answer] == [r.answer.text for r in original if r.answer] and len(replayed) == 3
    assert [[p.text for p in layer] for r in replayed for layer in r.layers] == [[p.text for p in layer] for r in original for layer in r.layers]
    assert len(fake.requests) == 3 * 7  # the replay called nothing


def _call(output: str, index: int, *, content: str = "Say hi", kept: bool = True, cached: bool = False) -> CallRecord:
    sampling = Sampling(0.7, 16) if kept else None
    return CallRecord("L1.1 plain(e/m)", "e/m", (Message("user", content),), output, Usage(3, 2), Cost(), 0.1, cached, layer=1,
                      sampling=sampling, sample_index=index if kept else None, prompt_form=False if kept else None)


def _runlog(path: Path, *calls: CallRecord) -> Path:
    header = RunHeader(label="t", topology={"name": "t", "layers": []}, samples=1)
    with RunLogWriter(path, header) as writer:
        writer.write(QueryRecord(sample=Sample("Say hi", id="q1"), answer=Answer("x", "a"), calls=list(calls)))
    return path


async def test_identical_requests_replay_their_own_answers_by_sample_index(tmp_path: Path) -> None:
    log = _runlog(tmp_path / "run.jsonl", _call("first", 0), _call("second", 1), _call("third", 2), _call("first", 0, cached=True))
    done = export_recording([log], tmp_path / "rec")
    assert (done.calls, done.repeats, done.conflicts) == (3, 1, 0)
    client = ReplayClient([tmp_path / "rec"])
    answers = [(await client.complete(Request("m", (Message("user", "Say hi"),), Sampling(0.7, 16), None, i))).text for i in (2, 0, 1)]
    assert answers == ["third", "first", "second"]
    got = await client.complete(Request("m", (Message("user", "Say hi"),), Sampling(0.7, 16), None, 1))
    assert got.usage == Usage(3, 2) and not got.usage_estimated  # what the endpoint reported


async def test_a_request_made_again_without_the_cache_replays_its_answers_in_run_order(tmp_path: Path) -> None:
    """A layer-2 proposer and the aggregator can send the same request (same references, model and
    sample index); made without the cache they get two answers, and the replay gives each its own."""
    log = _runlog(tmp_path / "run.jsonl", _call("Always", 0), _call("always", 0), _call("always", 0, cached=True), _call("Always", 0))
    done = export_recording([log], tmp_path / "rec")
    assert (done.calls, done.repeats, done.conflicts) == (3, 1, 1)
    client = ReplayClient([tmp_path / "rec"])
    request = Request("m", (Message("user", "Say hi"),), Sampling(0.7, 16), None, 0)
    answers = [(await client.complete(request)).text for _ in range(4)]
    assert answers == ["Always", "always", "Always", "Always"]  # in run order, then again from the first


async def test_an_unrecorded_request_is_one_line_naming_it_and_the_recording(tmp_path: Path) -> None:
    export_recording([_runlog(tmp_path / "run.jsonl", _call("hi", 0))], tmp_path / "rec")
    client = ReplayClient([tmp_path / "rec"])
    cases = [
        Request("m", (Message("user", "Say hi"),), Sampling(0.7, 16), None, 3),  # another sample
        Request("m", (Message("user", "Say hi"),), Sampling(0.0, 16)),  # other sampling
        Request("m", (Message("system", "refs"), Message("user", "Say hi"))),  # a later layer's request
        Request("m", (), Sampling(0.7, 16), "Q: Say hi\nA:"),  # a completion prompt
    ]
    for request in cases:
        with pytest.raises(ReplayMissing) as err:
            await client.complete(request)
        message = str(err.value)
        assert "\n" not in message and message.startswith("m: no recording in ") and str(tmp_path / "rec" / "calls.jsonl") in message
        assert f"sample {request.sample_index}, temperature {request.sampling.temperature}" in message
    # a later layer is planned before its references exist: the bound is the longest recorded answer
    assert client.output_bound(cases[2]) == 2


def test_calls_of_an_older_runlog_are_named_as_not_replayable(tmp_path: Path) -> None:
    old = _runlog(tmp_path / "old.jsonl", _call("hi", 0, kept=False))
    with pytest.raises(ConfigError, match=r"old.jsonl: its calls were recorded without their sampling and sample index"):
        export_recording([old], tmp_path / "rec")
    mixed = _runlog(tmp_path / "mixed.jsonl", _call("hi", 0, kept=False), _call("there", 0, content="Say there"))
    done = export_recording([mixed], tmp_path / "rec")
    assert done.calls == 1 and done.unreplayable == {mixed: 1}
    manifest = json.loads((tmp_path / "rec" / "recording.json").read_text())
    assert manifest["schema"] == "moa-lab/recording" and manifest["unreplayable"] == {str(mixed): 1}


def test_export_never_overwrites_a_folder_that_is_not_a_recording(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a recording; give --out a new or empty folder"):
        write_recording(tmp_path / "rec", [RecordedCall(Request("m", (Message("user", "x"),)), "y", Usage())], {})


@pytest.mark.slow
def test_an_embedded_moa_run_replays_whole_with_the_model_stopped(tmp_path: Path, cache_dir: Path) -> None:
    """Must show: the embedded model's MoA (2 proposer layers + aggregator) exported, then replayed
    in a process whose cache has no model file: the same answers, and the model never starts."""
    exp = _experiment(tmp_path, "{}", "local", "local", items=2)
    first = _cli("eval", str(exp), "--no-cache", cache=cache_dir)
    assert first.returncode == 0, first.stderr[-2000:] + first.stdout[-2000:]
    original = _runs(tmp_path / "out" / "recorded" / "latest")
    calls = sum(len(r.calls) for records in original.values() for r in records.values())
    export = _cli("record", "export", str(tmp_path / "out" / "recorded" / "latest"), "--out", str(tmp_path / "rec"), cache=cache_dir)
    assert export.returncode == 0, export.stderr

    empty = tmp_path / "no-model"
    again = _cli("eval", str(exp), "--replay", str(tmp_path / "rec"), cache=empty)
    assert again.returncode == 0, again.stderr[-2000:] + again.stdout[-2000:]
    assert _assert_replayed(original, _runs(tmp_path / "out" / "recorded" / "latest")) == calls
    assert not (empty / "models").exists() and not (empty / "logs").exists(), "the embedded model was started"
