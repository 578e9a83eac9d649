"""Built-in task sets sized for the embedded model, generated with their gold answers.

Each task has its own prompt format and a pool of worked examples split into disjoint sets, one per
proposer, so prompt-diverse proposers differ only in their examples. Word tasks come from lists
shipped in `tasks/*.yaml`; arithmetic items are generated. Items never appear among the examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import yaml

from moa_lab.core import ConfigError, Sample

TaskFormat = Literal["qa", "lines"]
WORD_TASKS = ("capitals", "plurals", "animal_legs", "opposites")
ARITHMETIC_TASKS = ("addition", "subtraction", "multiplication")
TASKS = WORD_TASKS + ARITHMETIC_TASKS
QA_INSTRUCTION = "Answer each question with one word or one number."


@dataclass(frozen=True)
class Task:
    """A generated task: items with gold answers, the format, and disjoint example sets."""

    name: str
    format: TaskFormat
    instruction: str | None
    items: tuple[Sample, ...]
    example_sets: tuple[tuple[tuple[str, str], ...], ...]
    numeric: bool
    aggregator_examples: tuple[dict[str, object], ...] = ()
    """Worked examples for an LLM aggregator: {input, proposals, output}, the gold among distractors."""

    @property
    def examples(self) -> tuple[tuple[str, str], ...]:
        """All examples, set after set (what `prompt-ensemble` splits again)."""
        return tuple(e for s in self.example_sets for e in s)


@cache
def _word_list(name: str) -> dict[str, object]:
    text = resources.files("moa_lab.benchmarks").joinpath("tasks", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _arithmetic_pairs(name: str) -> tuple[str, list[tuple[str, str]]]:
    digits = range(10)
    if name == "addition":
        return "{} + {} =", [(f"{a} + {b} =", str(a + b)) for a in digits for b in digits]
    if name == "subtraction":
        return "{} - {} =", [(f"{a} - {b} =", str(a - b)) for a in digits for b in digits if a >= b]
    return "{} x {} =", [(f"{a} x {b} =", str(a * b)) for a in range(1, 10) for b in range(1, 10)]


def builtin_task(name: str, *, items: int = 40, proposers: int = 5, per_proposer: int = 5, seed: int = 0) -> Task:
    """Generate a task: `proposers` disjoint sets of `per_proposer` examples, then up to `items` items."""
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, TASKS, n=1)
        raise ConfigError(f"unknown task {name!r}" + (f"; did you mean {close[0]!r}?" if close else f"; tasks: {', '.join(TASKS)}"))
    if name in WORD_TASKS:
        data = _word_list(name)
        question = str(data["question"])
        pairs = [(question.format(a), str(b)) for a, b in data["pairs"]]  # type: ignore[union-attr]
        fmt: TaskFormat = data["format"]  # type: ignore[assignment]
        instruction = data.get("instruction")
    else:
        _, pairs = _arithmetic_pairs(name)
        fmt, instruction = "lines", None
    rng = random.Random(f"{name}:{seed}")
    rng.shuffle(pairs)
    n_examples = proposers * per_proposer
    if len(pairs) <= n_examples:
        raise ConfigError(f"task {name}: {len(pairs)} pairs cannot give {n_examples} examples and any items")
    pool, rest = pairs[:n_examples], pairs[n_examples:]
    sets = tuple(tuple(pool[i * per_proposer:(i + 1) * per_proposer]) for i in range(proposers))
    numeric = all(b.lstrip("-").isdigit() for _, b in pairs)
    samples = tuple(
        Sample(q, a, f"{name}-{i}", {"task": name}) for i, (q, a) in enumerate(rest[:items])
    )
    return Task(name, fmt, None if instruction is None else str(instruction), samples, sets, numeric, _aggregator_examples(pool, rng))


def _aggregator_examples(pool: list[tuple[str, str]], rng: random.Random, n: int = 4, k: int = 5) -> tuple[dict[str, object], ...]:
    """Examples whose proposals hold the gold 2 to 4 times among answers of other items."""
    out = []
    answers = sorted({a for _, a in pool})
    for i, (question, gold) in enumerate(pool[:n]):
        right = 2 + i % 3
        wrong = rng.sample([a for a in answers if a != gold], k - right)
        proposals = [gold] * right + wrong
        rng.shuffle(proposals)
        out.append({"input": question, "proposals": proposals, "output": gold})
    return tuple(out)
