"""One MLflow trace per query: a root span for the query, a span per call, and a span per cascade
stage holding the calls that stage made (with the agreement that stopped the layer, or did not).

`mlflow` is imported inside the function only (see `_mlflow`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from moa_lab.core import CallRecord, Stage
from moa_lab.core._redact import redact
from moa_lab.tracking._records import QueryRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient


def log_trace(client: MlflowClient, experiment_id: str, run_id: str, record: QueryRecord) -> None:
    """Write `record`'s trace into the run: the query (inputs, answer, tokens, $), each call as a
    chat-model span (model, layer, stage, tokens, $, cache hit, error), under its stage's span when
    the layer was cascaded, else under the query."""
    from mlflow.entities import SpanType

    start = record.started or time.time() - record.latency_s
    root = client.start_trace(
        "query",
        span_type=SpanType.CHAIN,
        inputs={"input": redact(record.sample.input)},
        attributes={"id": record.id, "target": record.sample.target, "score": record.score,
                    "selected": record.selected},  # which layer-1 proposers the selector called
        tags={"moa.query_id": record.id},
        experiment_id=experiment_id,
        start_time_ns=_ns(start),
        run_id=run_id,
    )
    trace_id = root.trace_id
    staged = {(s.layer, s.stage) for s in record.stages}
    for call in record.calls:
        if (call.layer, call.stage) not in staged:
            _call_span(client, trace_id, root.span_id, call, start)
    for stage in record.stages:
        calls = [c for c in record.calls if (c.layer, c.stage) == (stage.layer, stage.stage)]
        _stage_span(client, trace_id, root.span_id, stage, calls, start)
    usage = record.usage
    client.end_trace(
        trace_id,
        outputs={"answer": redact(record.answer.text) if record.answer else None},
        attributes={"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "paid_usd": record.cost.paid_usd, "list_usd": record.cost.list_usd, "error": redact(record.error),
                    "calls": len(record.calls)},
        status="ERROR" if record.error else "OK",
        end_time_ns=_ns(start + record.latency_s),
    )


def _stage_span(client: MlflowClient, trace_id: str, parent: str, stage: Stage, calls: list[CallRecord], start: float) -> None:
    """A stage of a cascaded layer, spanning its calls, with the agreement measured after it."""
    from mlflow.entities import SpanType

    begin = min((c.started or start for c in calls), default=start)
    end = max(((c.started or start) + c.latency_s for c in calls), default=begin)
    span = client.start_span(
        f"layer {stage.layer} stage {stage.stage}",
        trace_id=trace_id,
        parent_id=parent,
        span_type=SpanType.CHAIN,
        inputs={"calls": [c.agent for c in calls]},
        attributes={"layer": stage.layer, "stage": stage.stage, "proposals": stage.proposals,
                    "agreement": stage.agreement, "agreed": stage.agreed, "exited": stage.exited},
        start_time_ns=_ns(begin),
    )
    for call in calls:
        _call_span(client, trace_id, span.span_id, call, start)
    client.end_span(trace_id, span.span_id, outputs={"agreement": stage.agreement, "stopped": stage.agreed},
                    end_time_ns=_ns(end))


def _call_span(client: MlflowClient, trace_id: str, parent: str, call: CallRecord, start: float) -> None:
    from mlflow.entities import SpanType
    from mlflow.tracing.constant import SpanAttributeKey as Key

    c_start = call.started or start
    tin, tout = call.usage.input_tokens, call.usage.output_tokens
    attributes: dict[str, Any] = {
        "model": call.model, "layer": call.layer, "stage": call.stage,
        "input_tokens": tin, "output_tokens": tout,
        "paid_usd": call.cost.paid_usd, "list_usd": call.cost.list_usd,
        "cached": call.cached, "attempts": call.attempts, "error": redact(call.error),
        # MLflow's own keys: the UI sums them per trace, and a set cost stops MLflow
        # from pricing the model itself.
        Key.CHAT_USAGE: {"input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout},
        Key.LLM_COST: {"total_cost": call.cost.paid_usd},
    }
    span = client.start_span(
        call.agent,
        trace_id=trace_id,
        parent_id=parent,
        span_type=SpanType.CHAT_MODEL,
        inputs={"messages": redact([m.to_dict() for m in call.messages])},
        attributes=attributes,
        start_time_ns=_ns(c_start),
    )
    client.end_span(trace_id, span.span_id, outputs=redact(call.output), status="ERROR" if call.error else "OK",
                    end_time_ns=_ns(c_start + call.latency_s))


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)
