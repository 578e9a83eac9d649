"""A trial written out to be run again: its topology as YAML, and an experiment that `moa-lab eval`
runs as is and that evaluates exactly what the trial evaluated (same samples, same specs).

The experiment keeps what the study's file says (fields left unset stay unset), minus the search;
its relative paths are rebased onto the folder it is written to, so the folder can move with the
project. Before returning, the written file is loaded back and checked against the trial.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moa_lab.core import ConfigError
from moa_lab.evaluation import Experiment, groups
from moa_lab.search._config import search_config
from moa_lab.search._trial import TrialResult, samples_hash
from moa_lab.topology import SelectorSpec, TopologySpec, to_yaml


@dataclass(frozen=True)
class ExportedTrial:
    """The files `export_best` wrote."""

    topologies: list[Path]
    """`best_topology.yaml`, or on built-in tasks one `best_topology.<task>.yaml` per task."""
    experiment: Path
    """`best_experiment.yaml`."""


def export_best(exp: Experiment, result: TrialResult, folder: Path) -> ExportedTrial:
    """Write `result`'s topology and an experiment reproducing it into `folder`; raises ConfigError
    when the written experiment would not evaluate the trial's samples with the trial's specs."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    topologies = []
    for task in result.tasks or (None,):
        path = folder / (f"best_topology.{task}.yaml" if task else "best_topology.yaml")
        path.write_text(to_yaml(result.evaluated(task)), encoding="utf-8")
        topologies.append(path)
    experiment = folder / "best_experiment.yaml"
    split = search_config(exp).split("search")
    judged = ""
    if split is not None:
        judged = "# Judged on the study's search split (benchmark.split, part: search)"
        judged += f"; part: holdout gives the {split.holdout:.0%} of questions the study never saw" if split.holdout else ""
        judged += f"; the {len(split.exclude)} questions its router was trained on are left out" if split.exclude else ""
        judged += ".\n"
    note = (f"# Trial {result.number} of the study {exp.spec.name!r} ({exp.source}), written by `moa-lab pareto`:\n"
            f"# `moa-lab eval` on this file evaluates what the trial evaluated. Relative paths are relative to this file.\n"
            + judged)
    body = yaml.safe_dump(_experiment_body(exp, result, folder), sort_keys=False, allow_unicode=True)
    experiment.write_text(note + body, encoding="utf-8")
    _check(experiment, result)
    return ExportedTrial(topologies, experiment)


def _experiment_body(exp: Experiment, result: TrialResult, folder: Path) -> dict[str, Any]:
    def rebased(value: str) -> str:
        return value if Path(value).expanduser().is_absolute() else os.path.relpath(exp.path(value), folder)

    kept = exp.spec.model_dump(mode="json", exclude_unset=True,
                               exclude={"name", "description", "search", "topology", "topologies", "output"})
    body = {"name": f"{exp.spec.name}-best",
            "description": (f"trial {result.number} of the study {exp.spec.name}: quality {result.values['quality']:.4f}, "
                            f"${result.values['cost_per_query_usd']:.3e} per query"), **kept}
    for section in ("benchmark", "dataset"):
        if body.get(section, {}).get("path"):
            body[section]["path"] = rebased(body[section]["path"])
    split = search_config(exp).split("search")
    if split is not None:
        body["benchmark"]["split"] = split.model_dump(mode="json")
    for endpoint in body.get("endpoints", {}).values():
        if endpoint.get("paths"):
            endpoint["paths"] = [rebased(p) for p in endpoint["paths"]]
        if endpoint.get("questions"):
            endpoint["questions"] = rebased(endpoint["questions"])
    if isinstance(exp.spec.cache, str) and exp.spec.cache != "memory" and not exp.spec.cache.startswith("redis://"):
        body["cache"] = rebased(exp.spec.cache)
    if exp.spec.output is not None:
        body["output"] = rebased(exp.spec.output)
    source = result.topology_source()
    router = ((exp.spec.search or {}).get("space") or {}).get("router")
    if router and router.get("path"):  # the stored spec holds the artifact's resolved path
        spec = source["topology"] if "preset" in source else source
        spec["selector"]["path"] = rebased(router["path"])
    body["topologies"] = {"best": source}
    return body


def _check(path: Path, result: TrialResult) -> None:
    """Load the written experiment back: its samples and, per group, its spec must be the trial's."""
    written = Experiment.load(path)
    benchmark = groups(written)
    if result.samples_hash is not None and samples_hash(benchmark) != result.samples_hash:
        raise ConfigError(f"{path}: its benchmark does not give the samples trial {result.number} was evaluated on "
                          "(the data changed since the study ran?)")
    for group in benchmark:
        if _canonical(written.topologies(group.task)["best"]) != _canonical(result.evaluated(group.task)):
            raise ConfigError(f"{path}: on {group.task or 'the benchmark'} it would not run the spec trial {result.number} ran")


def _canonical(spec: TopologySpec) -> TopologySpec:
    """`spec` with its selector's artifact path resolved (the same folder written two ways compares equal)."""
    if spec.selector is None or "path" not in spec.selector.args:
        return spec
    args = spec.selector.args | {"path": str(Path(spec.selector.args["path"]).resolve())}
    return spec.model_copy(update={"selector": SelectorSpec(kind=spec.selector.kind, **args)})
