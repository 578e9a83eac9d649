"""Version-1 RunLog lines (flat dicts with stored totals) turned into the typed records.

The only place outside the writer that reads RunLog fields by key: totals that version 1 stored
beside the calls are dropped, since the records compute them from the calls.
"""

from __future__ import annotations

from typing import Any

from moa_lab.core import Answer, CallRecord, Cost, Exchange, Message, Proposal, Sample, Usage
from moa_lab.tracking._records import QueryRecord, RunHeader


def header_from_v1(obj: dict[str, Any]) -> RunHeader:
    return RunHeader(
        created=float(obj.get("created", 0.0)),
        label=str(obj.get("label") or obj.get("experiment") or ""),
        experiment=str(obj.get("experiment") or ""),
        task=obj.get("task"),
        topology=obj["topology"],
        scorer=obj.get("scorer"),
        samples=int(obj.get("samples", 0)),
    )


def record_from_v1(obj: dict[str, Any]) -> QueryRecord:
    metadata = dict(obj.get("metadata") or {})
    history = tuple(Exchange(str(u), str(a)) for u, a in metadata.pop("history", ()))
    answer = None
    if obj.get("answer") is not None:
        answer = Answer(str(obj["answer"]), str(obj.get("answer_agent") or ""), note=obj.get("answer_note"))
    score = obj.get("score")
    return QueryRecord(
        sample=Sample(str(obj["input"]), obj.get("target"), str(obj["id"]), metadata, history),
        answer=answer,
        error=obj.get("error"),
        selected=obj.get("selected"),
        layers=[[Proposal(p["agent"], p.get("text") or "", p.get("error")) for p in layer] for layer in obj.get("layers") or []],
        calls=[_call(c) for c in obj.get("calls") or []],
        latency_s=float(obj.get("latency_s", 0.0)),
        started=float(obj.get("started", 0.0)),
        score=None if score is None or score != score else float(score),  # NaN: a judge could not decide
        score_explanation=str(obj.get("score_explanation") or ""),
        proposal_scores=obj.get("proposal_scores"),
        judge_calls=[_call(c) for c in obj.get("judge_calls") or []],
    )


def _call(c: dict[str, Any]) -> CallRecord:
    paid = float(c.get("cost_usd", 0.0))
    return CallRecord(
        agent=str(c.get("agent", "")),
        model=str(c["model"]),
        messages=tuple(Message(m["role"], m["content"]) for m in c.get("messages") or ()),
        output=str(c.get("output") or ""),
        usage=Usage(int(c.get("input_tokens", 0)), int(c.get("output_tokens", 0))),
        cost=Cost(paid, float(c.get("list_cost_usd", paid)), float(c.get("flops", 0.0))),
        latency_s=float(c.get("latency_s", 0.0)),
        cached=bool(c.get("cached", False)),
        attempts=int(c.get("attempts", 1)),
        error=c.get("error"),
        layer=int(c.get("layer", 0)),
        started=float(c.get("started", 0.0)),
        list_latency_s=float(c.get("list_latency_s", c.get("latency_s", 0.0))),
    )
