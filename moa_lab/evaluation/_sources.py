"""Where an experiment's samples come from (inline queries, a JSONL file, a benchmark loader) and
how each group of them is scored."""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from typing import Any

from moa_lab.benchmarks import DATA_PREFIX, builtin_task, from_queries, load_alpaca_eval, load_gsm8k, load_jsonl, load_mt_bench
from moa_lab.core import ConfigError, Sample
from moa_lab.evaluation._evaluate import check_unique
from moa_lab.evaluation._experiment import Experiment
from moa_lab.registry import build
from moa_lab.scoring import Scorer

DEFAULT_TASKS = ("opposites", "addition", "animal_legs", "subtraction")


@dataclass(frozen=True)
class Group:
    """Samples scored the same way: one built-in task, or a whole dataset (task None). `scorer` is
    None when the samples have no targets: the run is traced, not scored."""

    task: str | None
    samples: list[Sample]
    scorer: Scorer | None


def build_scorer(source: str | dict[str, Any], *, numeric: bool = False) -> Scorer:
    """A scorer by name or `{kind: NAME, ...arguments}`; `auto` is numeric or exact by the data."""
    if source == "auto":
        source = "numeric" if numeric else "exact"
    if isinstance(source, str):
        return build("scorer", source, where="scorer")
    args = {k: v for k, v in source.items() if k != "kind"}
    return build("scorer", str(source.get("kind")), args, where="scorer")


def groups(exp: Experiment) -> list[Group]:
    """The experiment's groups of samples, each with its scorer (one side of `benchmark.split`, if
    given); two samples of a group with one id are refused, naming both. Loaded once per Experiment:
    the command line checks its inputs before it makes anything, and the run then uses the same."""
    loaded = _LOADED.get(exp)
    if loaded is None:
        loaded = _LOADED[exp] = _checked(exp)
    return loaded


_LOADED: weakref.WeakKeyDictionary[Experiment, list[Group]] = weakref.WeakKeyDictionary()


def _checked(exp: Experiment) -> list[Group]:
    out = _groups(exp)
    for group in out:
        check_unique(group.samples, f"{exp.source}" + (f" (task {group.task})" if group.task else ""))
    split = exp.spec.benchmark.split if exp.spec.benchmark is not None else None
    if split is None:
        return out
    left_out = set(split.exclude)
    sides = [split_samples([s for s in g.samples if s.id not in left_out], split.holdout, split.seed) for g in out]
    return [Group(g.task, held if split.part == "holdout" else kept, g.scorer) for g, (kept, held) in zip(out, sides)]


def split_samples(samples: list[Sample], holdout: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(search, held-out): `round(holdout * n)` samples held out, chosen by a seeded hash of their
    ids (the same samples whatever their order), each side in the original order."""
    def key(s: Sample) -> str:
        return hashlib.sha256(f"{seed}\0{s.id}".encode()).hexdigest()

    held = {id(s) for s in sorted(samples, key=key)[: round(holdout * len(samples))]}
    return [s for s in samples if id(s) not in held], [s for s in samples if id(s) in held]


def _groups(exp: Experiment) -> list[Group]:
    scorer, bench = _data_paths(exp, exp.spec.scorer), exp.spec.benchmark
    if exp.spec.queries is not None:
        if bench is not None:
            raise ConfigError(f"{exp.source}: give either queries or benchmark, not both")
        return [_scored(None, from_queries(list(exp.spec.queries)), scorer)]
    if bench is None:
        raise ConfigError(f"{exp.source}: give the samples: queries (inline) or benchmark (a dataset)")
    if bench.kind == "builtin":
        tasks = [builtin_task(name, items=bench.items, seed=bench.seed) for name in bench.tasks or DEFAULT_TASKS]
        return [Group(t.name, list(t.items), build_scorer(scorer, numeric=t.numeric)) for t in tasks]
    if bench.path is None:
        raise ConfigError(f"{exp.source}: benchmark.path is required for kind {bench.kind}")
    path = exp.path(bench.path)
    if bench.kind == "gsm8k":
        return [Group(None, load_gsm8k(path, limit=bench.limit), build_scorer(scorer, numeric=True))]
    if bench.kind == "alpaca_eval":
        return [Group(None, load_alpaca_eval(path, limit=bench.limit), build_scorer(scorer))]
    if bench.kind == "jsonl":
        return [_scored(None, load_jsonl(path, limit=bench.limit), scorer)]
    folder = path if path.is_dir() else path.parent  # mt_bench
    questions = folder / "question.jsonl" if path.is_dir() else path
    refs = folder / "reference_answer_gpt-4.jsonl"
    samples = load_mt_bench(questions, references=refs if refs.exists() else None, limit=bench.limit)
    return [Group("turn1", samples, build_scorer("none" if scorer == "auto" else scorer))]


def _data_paths(exp: Experiment, scorer: str | dict[str, Any]) -> str | dict[str, Any]:
    """A scorer's `data:NAME/...` arguments (a judge's prompts file) as the dataset file's path."""
    if isinstance(scorer, str):
        return scorer
    return {k: str(exp.path(v)) if isinstance(v, str) and v.startswith(DATA_PREFIX) else v for k, v in scorer.items()}


def _scored(task: str | None, samples: list[Sample], scorer: str | dict[str, Any]) -> Group:
    """`auto` scores numeric targets as numbers, other targets exactly, and no targets not at all."""
    targets = [s.target for s in samples if s.target is not None]
    if scorer == "auto" and not targets:
        return Group(task, samples, None)
    return Group(task, samples, build_scorer(scorer, numeric=bool(targets) and all(_is_number(t) for t in targets)))


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def dataset_hash(samples: list[Sample]) -> str:
    """A short fingerprint of the samples (ids, inputs, targets), logged with every run."""
    payload = json.dumps([[s.id, s.input, s.target] for s in samples], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
