"""The paper's topologies and their baselines as registered presets (kind "topology")."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from moa_lab.benchmarks import builtin_task
from moa_lab.core import ConfigError
from moa_lab.registry import build, register
from moa_lab.topology._io import validate
from moa_lab.topology._spec import AgentSpec, LayerSpec, TopologySpec

PAPER_PROPOSERS = (
    "together/Qwen/Qwen1.5-110B-Chat",
    "together/Qwen/Qwen1.5-72B-Chat",
    "together/microsoft/WizardLM-2-8x22B",
    "together/meta-llama/Llama-3-70b-chat-hf",
    "together/mistralai/Mixtral-8x22B-Instruct-v0.1",
    "together/databricks/dbrx-instruct",
)
"""The paper's six open proposers, as written for a Together endpoint named `together`."""


def preset(name: str, **args: Any) -> TopologySpec:
    """Build a preset topology: `preset("moa-lite", proposers=[...], aggregator="...")`."""
    spec = build("topology", name, args, where=f"topology {name}")
    assert isinstance(spec, TopologySpec)
    return spec


@cache
def qa_pool() -> tuple[str, tuple[tuple[str, str], ...]]:
    """The shipped generic Q/A example pool: (instruction, examples)."""
    data = yaml.safe_load(resources.files("moa_lab.topology").joinpath("qa_examples.yaml").read_text(encoding="utf-8"))
    return data["instruction"], tuple((str(q), str(a)) for q, a in data["examples"])


def _proposer(model: str, temperature: float, max_tokens: int, **extra: Any) -> AgentSpec:
    return AgentSpec(agent="plain", model=model, temperature=temperature, max_tokens=max_tokens, **extra)


def _layered(name: str, proposers: list[str], layers: int, aggregator: AgentSpec, temperature: float, max_tokens: int) -> TopologySpec:
    if layers < 2:
        raise ConfigError(f"{name}: layers counts the aggregator, so it must be at least 2")
    layer = LayerSpec(proposers=tuple(_proposer(m, temperature, max_tokens) for m in proposers))
    return TopologySpec(name=name, layers=(layer,) * (layers - 1), aggregator=aggregator)


def _models(proposers: list[str] | None, n: int, default: str) -> list[str]:
    """The proposers given, or `n` of `default` when none is given; an empty list is a mistake."""
    if proposers is not None and not proposers:
        raise ConfigError("proposers: [] names no proposer; list at least one, or leave proposers out for the preset's default")
    return list(proposers) if proposers is not None else [default] * n


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
        layers = (LayerSpec(proposers=tuple(
            AgentSpec(agent=a.agent, **{**a.args, **prompt}) if a.agent == "plain" else a for a in layers[0].proposers)),)
    aggregator = spec.aggregator
    if aggregator is not None and aggregator.agent == "synthesize":
        aggregator = task_aggregator(task, aggregator.args["model"], aggregator.args.get("max_tokens", 512))
    return spec.model_copy(update={"layers": layers, "aggregator": aggregator})


@register("topology", "for-task")
def for_task_preset(topology: dict[str, Any], task: str | None = None) -> TopologySpec:
    """A topology bound to the built-in task it is evaluated on (`for_task`): how a search over
    built-in tasks writes what its trials evaluated."""
    return for_task(validate(TopologySpec, topology, source="for-task.topology"), task)


@register("topology", "single")
def single(model: str = "local", temperature: float = 0.0, max_tokens: int = 512, task: str | None = None) -> TopologySpec:
    """One model, one call: the baseline every topology is compared with."""
    layer = LayerSpec(proposers=(_proposer(model, temperature, max_tokens, **task_prompt(task)),))
    return TopologySpec(name="single", layers=(layer,))


@register("topology", "moa")
def moa(
    proposers: list[str] | None = None,
    n: int = 6,
    layers: int = 3,
    aggregator: str = "local",
    temperature: float = 0.7,
    max_tokens: int = 512,
    language: str = "en",
) -> TopologySpec:
    """The paper's MoA: (layers - 1) layers of proposers, then a synthesizing aggregator."""
    agg = AgentSpec(agent="synthesize", model=aggregator, temperature=temperature, max_tokens=max_tokens, language=language)
    return _layered("moa", _models(proposers, n, "local"), layers, agg, temperature, max_tokens)


@register("topology", "moa-lite")
def moa_lite(
    proposers: list[str] | None = None,
    n: int = 6,
    aggregator: str = "local",
    temperature: float = 0.7,
    max_tokens: int = 512,
    language: str = "en",
) -> TopologySpec:
    """MoA-Lite: one layer of proposers, then the aggregator (2 layers)."""
    spec = moa(proposers, n, 2, aggregator, temperature, max_tokens, language)
    return spec.model_copy(update={"name": "moa-lite"})


@register("topology", "moa-strong-aggregator")
def moa_strong_aggregator(
    proposers: list[str] | None = None,
    n: int = 6,
    layers: int = 3,
    aggregator: str = "openai/gpt-4o",
    temperature: float = 0.7,
    max_tokens: int = 512,
) -> TopologySpec:
    """MoA with a strong final aggregator ("MoA w/ GPT-4o" in the paper)."""
    spec = moa(proposers, n, layers, aggregator, temperature, max_tokens)
    return spec.model_copy(update={"name": "moa-strong-aggregator"})


@register("topology", "self-moa")
def self_moa(
    model: str = "local",
    k: int = 5,
    temperature: float = 0.7,
    aggregator: str | None = None,
    max_tokens: int = 512,
    task: str | None = None,
) -> TopologySpec:
    """Self-MoA: one model sampled k times, then aggregated by the same model (or `aggregator`:
    a model name, or `vote`)."""
    layer = LayerSpec(proposers=(_proposer(model, temperature, max_tokens, **task_prompt(task)),) * k)
    agg = AgentSpec(agent="vote") if aggregator == "vote" else task_aggregator(task, aggregator or model, max_tokens)
    return TopologySpec(name="self-moa", layers=(layer,), aggregator=agg)


@register("topology", "prompt-ensemble")
def prompt_ensemble(
    model: str = "local",
    k: int = 5,
    examples: list[Any] | None = None,
    instruction: str | None = None,
    per_proposer: int = 5,
    format: str = "qa",
    aggregator: str = "vote",
    temperature: float = 0.0,
    max_tokens: int = 16,
    task: str | None = None,
) -> TopologySpec:
    """One model, k proposers that differ only in their few-shot examples (disjoint slices of the
    pool, or of a built-in task's pool), then `vote` or an LLM aggregator (`synthesize`)."""
    if task is not None:
        t = builtin_task(task, proposers=k, per_proposer=per_proposer)
        examples, instruction, format = [list(e) for e in t.examples], t.instruction, t.format
    default_instruction, default_pool = qa_pool()
    pool = list(examples) if examples is not None else list(default_pool)
    if len(pool) < k * per_proposer:
        raise ConfigError(f"prompt-ensemble: {k} proposers x {per_proposer} examples need {k * per_proposer}; the pool has {len(pool)}")
    instruction = default_instruction if instruction is None and examples is None else instruction
    proposers = tuple(
        _proposer(model, temperature, max_tokens, format=format, system=instruction,
                  examples=[list(e) if isinstance(e, (list, tuple)) else e for e in pool[i * per_proposer:(i + 1) * per_proposer]])
        for i in range(k)
    )
    if aggregator == "vote":
        agg = AgentSpec(agent="vote")
    elif aggregator == "synthesize":
        agg = task_aggregator(task, model, max_tokens) if task else AgentSpec(
            agent="synthesize", model=model, temperature=0.0, max_tokens=max_tokens, format="chat" if format == "chat" else "qa", system=instruction)
    else:
        raise ConfigError(f"prompt-ensemble: aggregator must be 'vote' or 'synthesize', not {aggregator!r}")
    return TopologySpec(name="prompt-ensemble", layers=(LayerSpec(proposers=proposers),), aggregator=agg)


@register("topology", "ranker")
def ranker(
    proposers: list[str] | None = None, n: int = 6, model: str = "local", temperature: float = 0.7, max_tokens: int = 512
) -> TopologySpec:
    """The paper's LLM-ranker baseline: one layer of proposers, then a model that picks one answer."""
    layer = LayerSpec(proposers=tuple(_proposer(m, temperature, max_tokens) for m in _models(proposers, n, "local")))
    return TopologySpec(name="ranker", layers=(layer,), aggregator=AgentSpec(agent="rank", model=model))
