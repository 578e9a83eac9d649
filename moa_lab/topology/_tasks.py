"""Binding a topology to a built-in task: the task's prompt format, instruction and worked
examples for proposers, and its few-shot aggregator and ranker."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from moa_lab.benchmarks import builtin_task
from moa_lab.topology._spec import AgentSpec, TopologySpec


@cache
def qa_pool() -> tuple[str, tuple[tuple[str, str], ...]]:
    """The shipped generic Q/A example pool: (instruction, examples)."""
    data = yaml.safe_load(resources.files("moa_lab.topology").joinpath("qa_examples.yaml").read_text(encoding="utf-8"))
    return data["instruction"], tuple((str(q), str(a)) for q, a in data["examples"])


def task_prompt(task: str | None) -> dict[str, Any]:
    """Proposer arguments for a built-in task: its format, instruction and first example set."""
    if task is None:
        return {}
    t = builtin_task(task)
    return {"format": t.format, "system": t.instruction, "examples": [list(e) for e in t.example_sets[0]]}


def task_aggregator(task: str | None, model: str, max_tokens: int) -> AgentSpec:
    """A synthesize aggregator; for a built-in task, few-shot with `Proposed answers:` examples."""
    if task is None:
        return AgentSpec(agent="synthesize", model=model, temperature=0.0, max_tokens=max_tokens)
    t = builtin_task(task)
    instruction = "Each question comes with proposed answers, some of them wrong. Give the correct answer."
    return AgentSpec(agent="synthesize", model=model, temperature=0.0, max_tokens=max_tokens, format="qa",
                     system=instruction, examples=[dict(e) for e in t.aggregator_examples])


def for_task(spec: TopologySpec, task: str | None) -> TopologySpec:
    """`spec` as it runs on a built-in task: in a one-layer topology the `plain` proposers get the
    task's prompt format, instruction and first example set (later layers see references, so they
    keep the chat format), and a `synthesize` aggregator becomes the task's few-shot aggregator with
    the same model and max_tokens. Without a task, `spec` itself."""
    if task is None:
        return spec
    layers = spec.layers
    if len(layers) == 1:
        prompt = task_prompt(task)
        layers = (layers[0].model_copy(update={"proposers": tuple(
            AgentSpec(agent=a.agent, **{**a.args, **prompt}) if a.agent == "plain" else a for a in layers[0].proposers)}),)
    aggregator = spec.aggregator
    if aggregator is not None and aggregator.agent == "synthesize":
        aggregator = task_aggregator(task, aggregator.args["model"], aggregator.args.get("max_tokens", 512))
    return spec.model_copy(update={"layers": layers, "aggregator": aggregator})


def task_ranker(task: str, model: str) -> AgentSpec:
    """The paper's LLM ranker for a built-in task: few-shot, it answers the number of a right proposal."""
    examples = [{"input": e["input"], "proposals": e["proposals"],
                 "output": str(list(e["proposals"]).index(e["output"]) + 1)}  # type: ignore[call-overload]
                for e in builtin_task(task).aggregator_examples]
    instruction = "Each question comes with proposed answers, some of them wrong. Give the position (1 for the first) of a correct one."
    return AgentSpec(agent="rank", model=model, format="qa", system=instruction, examples=examples, max_tokens=4)
