"""The paper's topologies and their baselines as registered presets (kind "topology")."""

from __future__ import annotations

from typing import Any

from moa_lab.benchmarks import builtin_task
from moa_lab.core import ConfigError
from moa_lab.registry import build, register
from moa_lab.topology._io import validate
from moa_lab.topology._spec import AgentSpec, LayerSpec, TopologySpec
from moa_lab.topology._tasks import for_task, qa_pool, task_aggregator, task_prompt, task_ranker

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


@register("topology", "for-task")
def for_task_preset(topology: dict[str, Any], task: str | None = None) -> TopologySpec:
    """A topology bound to the built-in task it is evaluated on (`for_task`): how a search over
    built-in tasks writes what its trials evaluated.

    Args:
        topology: the topology spec (a mapping, as in a topology YAML file).
        task: the built-in task whose prompt format, examples and few-shot aggregator it gets.
    """
    return for_task(validate(TopologySpec, topology, source="for-task.topology"), task)


@register("topology", "single")
def single(model: str = "local", temperature: float = 0.0, max_tokens: int = 512, task: str | None = None) -> TopologySpec:
    """One model, one call: the baseline every topology is compared with.

    Args:
        model: the model, `<endpoint>/<model>` (`local` is the embedded model).
        temperature: sampling temperature.
        max_tokens: the reply's token limit.
        task: a built-in task: the call gets its prompt format, instruction and examples.
    """
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
    """The paper's MoA: (layers - 1) layers of proposers, then a synthesizing aggregator.

    Args:
        proposers: the proposer models, one per proposer (every proposer layer has them all); when
            empty, `n` copies of the embedded model.
        n: the number of proposers when `proposers` is not given.
        layers: all layers, the aggregator's included: `layers: 3` (the paper's MoA, "3 layers") is
            2 proposer layers + the aggregator; `layers: 2` is MoA-Lite.
        aggregator: the aggregator's model.
        temperature: every call's sampling temperature (the paper: 0.7).
        max_tokens: every call's reply token limit.
        language: the language of the aggregate-and-synthesize prompt (`en`, or a shipped translation).
    """
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
    """MoA-Lite: one layer of proposers, then the aggregator (2 layers).

    Args:
        proposers: the proposer models; when empty, `n` copies of the embedded model.
        n: the number of proposers when `proposers` is not given.
        aggregator: the aggregator's model.
        temperature: every call's sampling temperature (the paper: 0.7).
        max_tokens: every call's reply token limit.
        language: the language of the aggregate-and-synthesize prompt.
    """
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
    """MoA with a strong final aggregator ("MoA w/ GPT-4o" in the paper).

    Args:
        proposers: the proposer models; when empty, `n` copies of the embedded model.
        n: the number of proposers when `proposers` is not given.
        layers: all layers, the aggregator's included (see `moa`).
        aggregator: the final aggregator's model (default GPT-4o on the `openai` endpoint).
        temperature: every call's sampling temperature.
        max_tokens: every call's reply token limit.
    """
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
    a model name, or `vote`).

    Args:
        model: the one proposer model, sampled `k` times.
        k: the number of samples (proposers).
        temperature: the proposers' sampling temperature (the aggregator uses 0).
        aggregator: the aggregator's model (default: `model`), or `vote` for a majority vote.
        max_tokens: every call's reply token limit.
        task: a built-in task: its prompt for the proposers and its few-shot aggregator.
    """
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
    layers: int = 1,
) -> TopologySpec:
    """One model, k proposers that differ only in their few-shot examples (disjoint slices of the
    pool, or of a built-in task's pool), then `vote`, an LLM aggregator (`synthesize`) or an LLM
    ranker that only picks one answer (`rank`). With `layers` > 1, each later layer has k proposers
    that see the previous layer's answers: on a built-in task through the task's aggregator prompt,
    its worked examples rotated per proposer so they differ; otherwise through the chat prompt.

    Args:
        model: the one model every proposer (and a `synthesize` aggregator) calls.
        k: the number of proposers.
        examples: the example pool, `[question, answer]` pairs (default: the shipped Q/A pool).
        instruction: the system instruction (default: the shipped pool's, when `examples` is not given).
        per_proposer: examples per proposer: proposer i gets pool slice i.
        format: the prompt format: `qa` (a completion prompt) or `chat`.
        aggregator: `vote` (majority of the answers), `synthesize` (the model combines them) or `rank`
            (the model picks one answer).
        layers: proposer layers; each after the first sees the previous layer's answers.
        temperature: the proposers' sampling temperature.
        max_tokens: every call's reply token limit.
        task: a built-in task whose instruction, format and example pool replace the above.
    """
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
    refine = tuple(_refining_layer(task, model, k, temperature, max_tokens) for _ in range(layers - 1))
    if aggregator == "vote":
        agg = AgentSpec(agent="vote")
    elif aggregator == "rank":
        agg = task_ranker(task, model) if task else AgentSpec(agent="rank", model=model)
    elif aggregator == "synthesize":
        agg = task_aggregator(task, model, max_tokens) if task else AgentSpec(
            agent="synthesize", model=model, temperature=0.0, max_tokens=max_tokens, format="chat" if format == "chat" else "qa", system=instruction)
    else:
        raise ConfigError(f"prompt-ensemble: aggregator must be 'vote', 'synthesize' or 'rank', not {aggregator!r}")
    return TopologySpec(name="prompt-ensemble", layers=(LayerSpec(proposers=proposers), *refine), aggregator=agg)


def _refining_layer(task: str | None, model: str, k: int, temperature: float, max_tokens: int) -> LayerSpec:
    if task is None:
        return LayerSpec(proposers=tuple(_proposer(model, temperature, max_tokens) for _ in range(k)))
    base = task_aggregator(task, model, max_tokens).args
    examples = list(base["examples"])
    return LayerSpec(proposers=tuple(
        _proposer(model, temperature, max_tokens, format="qa", system=base["system"],
                  examples=examples[i % len(examples):] + examples[:i % len(examples)])
        for i in range(k)))


@register("topology", "ranker")
def ranker(
    proposers: list[str] | None = None, n: int = 6, model: str = "local", temperature: float = 0.7, max_tokens: int = 512
) -> TopologySpec:
    """The paper's LLM-ranker baseline: one layer of proposers, then a model that picks one answer.

    Args:
        proposers: the proposer models; when empty, `n` copies of the embedded model.
        n: the number of proposers when `proposers` is not given.
        model: the ranking model, which picks one of the answers.
        temperature: the proposers' sampling temperature.
        max_tokens: the proposers' reply token limit.
    """
    layer = LayerSpec(proposers=tuple(_proposer(m, temperature, max_tokens) for m in _models(proposers, n, "local")))
    return TopologySpec(name="ranker", layers=(layer,), aggregator=AgentSpec(agent="rank", model=model))
