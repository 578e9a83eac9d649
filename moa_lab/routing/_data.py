"""Training data for routers: each query × proposer with its score, extracted answer, tokens and $."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moa_lab.benchmarks import load_gsm8k, load_recorded_responses
from moa_lab.core import ConfigError, Message, Usage
from moa_lab.models import PriceTable, estimate_prompt_tokens, estimate_tokens
from moa_lab.registry import build
from moa_lab.scoring import Match
from moa_lab.topology import TopologySpec, validate
from moa_lab.tracking import QueryRecord, read_runlog


@dataclass
class RoutingData:
    """A (queries × proposers) table. Missing cells (a proposer that was not called) are NaN in
    `scores`, `cost` and `tokens`, and -1 in `answers` (the id of the extracted answer within its query, which
    is how an offline vote is replayed). `graded` tables (judge verdicts) train on the score itself, a
    quality in [0, 1], instead of success; `left_out` names the source's proposers not in the table
    and why."""

    ids: list[str]
    queries: list[str]
    proposers: list[dict[str, Any]]
    names: list[str]
    scores: np.ndarray
    answers: np.ndarray
    cost: np.ndarray
    tokens: np.ndarray
    source: str
    graded: bool = False
    left_out: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        q, m = len(self.ids), len(self.proposers)
        for name in ("scores", "answers", "cost", "tokens"):
            if getattr(self, name).shape != (q, m):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({q}, {m})")

    @property
    def success(self) -> np.ndarray:
        """1.0 where a proposer's answer scored at least 0.5, 0.0 below, NaN where not called."""
        return np.where(np.isnan(self.scores), np.nan, (self.scores >= 0.5).astype(float))

    @property
    def quality(self) -> np.ndarray:
        """What a router learns to predict: the score of a graded table, success otherwise."""
        return self.scores if self.graded else self.success

    def rows(self, index: Sequence[int] | np.ndarray) -> RoutingData:
        index = np.asarray(index, int)
        return RoutingData(
            [self.ids[i] for i in index], [self.queries[i] for i in index], self.proposers, self.names,
            self.scores[index], self.answers[index], self.cost[index], self.tokens[index], self.source,
            self.graded, self.left_out,
        )

    def columns(self, index: Sequence[int] | np.ndarray) -> RoutingData:
        """The same queries with only the proposers at `index` (a sub-pool), in that order. Answer ids
        stay comparable within a query, so votes replay as before."""
        index = np.asarray(index, int)
        return RoutingData(
            self.ids, self.queries, [self.proposers[j] for j in index], [self.names[j] for j in index],
            self.scores[:, index], self.answers[:, index], self.cost[:, index], self.tokens[:, index], self.source,
        )

    def fingerprint(self) -> str:
        """sha256 of everything a router learns from: ids, queries, pool, scores, answers and costs."""
        h = hashlib.sha256()
        for text in (*self.ids, *self.queries, *(repr(sorted(p.items())) for p in self.proposers)):
            h.update(text.encode())
            h.update(b"\0")
        for array in (self.scores, self.answers, self.cost):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def split(self, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train rows, test rows): a seeded split by query, the same for every method evaluated."""
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test fraction must be between 0 and 1, not {test_fraction}")
        order = np.random.default_rng(seed).permutation(len(self.ids))
        n_test = max(1, round(len(order) * test_fraction))
        return np.sort(order[n_test:]), np.sort(order[:n_test])


def from_recorded(
    folder: str | Path,
    *,
    endpoint: str = "replay",
    scorer: str = "numeric",
    extractor: str = "answer",
    prices: PriceTable | None = None,
    models: Sequence[str] | None = None,
) -> RoutingData:
    """A recorded dataset in the GSM8K layout (`questions.jsonl.gz` with id/question/answer and
    `responses/<model>.jsonl.gz` with id/output), scored with a registered pure scorer and priced
    like the replay endpoint prices it: prompt tokens estimated from the question, output tokens
    from the recorded answer, at list price. Proposer i is `{agent: plain, model: <endpoint>/<model>}`."""
    samples = load_gsm8k(folder)
    replies = load_recorded_responses(folder, list(models) if models else None)
    match = _pure_scorer(scorer)
    extract = build("extractor", extractor, where="extractor")
    prices = prices or PriceTable.default()
    names = list(replies)
    q, m = len(samples), len(names)
    scores = np.full((q, m), np.nan)
    cost = np.full((q, m), np.nan)
    tokens = np.full((q, m), np.nan)
    texts: list[list[str | None]] = [[None] * m for _ in range(q)]
    prompts = [estimate_prompt_tokens((Message("user", s.input),)) for s in samples]
    unpriced = [f"{endpoint}/{name}" for name in names if prices.find(f"{endpoint}/{name}") is None]
    if unpriced:  # a router trades quality against $: a free-by-mistake proposer breaks every curve
        raise ConfigError(f"no price for {', '.join(unpriced)} (a router weighs quality against cost, so every proposer "
                          f"needs one): give a price file with --prices (`models: {{{unpriced[0].partition('/')[2]}: "
                          f"{{input: 0.5, output: 1.5}}}}`, $ per million tokens; `0` for a free model)")
    for j, name in enumerate(names):
        price = prices.get(f"{endpoint}/{name}")
        for i, sample in enumerate(samples):
            output = replies[name].get(sample.id)
            if output is None:
                continue
            scores[i, j] = 1.0 if match(output, str(sample.target)) else 0.0
            usage = Usage(prompts[i], estimate_tokens(output))
            cost[i, j], tokens[i, j] = price.cost(usage).list_usd, usage.input_tokens + usage.output_tokens
            texts[i][j] = output
    proposers = [{"agent": "plain", "model": f"{endpoint}/{name}"} for name in names]
    return RoutingData(
        [s.id for s in samples], [s.input for s in samples], proposers, names,
        scores, _answer_ids(texts, extract), cost, tokens, f"recorded:{Path(folder)}",
    )


def from_runlogs(paths: Iterable[str | Path], *, extractor: str = "normalized") -> RoutingData:
    """Evaluation RunLogs of topologies with the same layer-1 pool (written with proposal scores):
    each layer-1 proposal's score, extracted answer, and the list $ of that proposer's calls."""
    extract = build("extractor", extractor, where="extractor")
    pool: list[dict[str, Any]] | None = None
    rows: dict[str, dict[str, Any]] = {}
    sources = []
    for path in paths:
        runlog = read_runlog(path)
        sources.append(str(path))
        topology = validate(TopologySpec, runlog.header.topology, source=f"{path}: header")
        if not topology.layers:
            raise ConfigError(f"{path}: the RunLog header names no topology layers")
        this_pool = [p.model_dump(mode="json") for p in topology.layers[0].proposers]
        if pool is None:
            pool = this_pool
        elif this_pool != pool:
            raise ConfigError(f"{path}: its layer-1 proposers differ from {sources[0]}'s; train on one pool at a time")
        for record in runlog.records:
            if record.proposal_scores is None:
                raise ConfigError(f"{path}: record {record.id!r} has no proposal_scores (evaluate with a pure scorer)")
            row = rows.setdefault(record.id, {"query": record.sample.input, "cells": {}})
            selected = record.selected or list(range(len(pool)))
            spend = _layer1_spend(record)
            for position, proposal, score in zip(selected, record.layers[0], record.proposal_scores):
                usd, used = spend.get(proposal.agent, (0.0, 0))
                row["cells"][position] = (0.0 if proposal.error else float(score), proposal.text, usd, used)
    if pool is None:
        raise ConfigError("no RunLogs given")
    ids = list(rows)
    q, m = len(ids), len(pool)
    scores, cost, tokens = np.full((q, m), np.nan), np.full((q, m), np.nan), np.full((q, m), np.nan)
    texts: list[list[str | None]] = [[None] * m for _ in range(q)]
    for i, key in enumerate(ids):
        for j, (score, text, usd, used) in rows[key]["cells"].items():
            scores[i, j], cost[i, j], tokens[i, j], texts[i][j] = score, usd, used, text
    names = _short_names(pool)
    return RoutingData(ids, [rows[k]["query"] for k in ids], pool, names, scores, _answer_ids(texts, extract), cost,
                       tokens, "runlogs:" + ",".join(sources))


def load_routing_data(source: str | Path, **kwargs: Any) -> RoutingData:
    """A recorded-dataset folder, a folder of AlpacaEval judge verdicts (graded, see
    `moa_lab.routing._verdicts`) or a RunLog file (`.jsonl`), whichever `source` is. `prices` may be
    a PriceTable or a YAML file of `{model: {input, output}}` ($ per million tokens), merged over
    the shipped table."""
    from moa_lab.routing._verdicts import from_verdicts, is_verdict_folder

    path = Path(source)
    if isinstance(kwargs.get("prices"), (str, Path)):
        kwargs["prices"] = read_prices(kwargs["prices"])
    if is_verdict_folder(path):
        return from_verdicts(path, **{k: v for k, v in kwargs.items() if k in ("endpoint", "prices")})
    if path.is_dir():
        return from_recorded(path, **{k: v for k, v in kwargs.items() if k in ("endpoint", "scorer", "extractor", "prices", "models")})
    if path.is_file():
        return from_runlogs([path], **{k: v for k, v in kwargs.items() if k == "extractor"})
    raise ConfigError(f"routing data not found: {path} (give a recorded-dataset folder or a RunLog .jsonl)")


def read_prices(path: str | Path) -> PriceTable:
    """The shipped price table with a YAML file's entries (`models:` mapping, or a bare mapping) on top."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"price file not found: {file}")
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    table = data.get("models", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: expected a mapping of model -> {{input, output}}")
    return PriceTable.default().merged(PriceTable.from_mapping(table, where=str(file)))


def _pure_scorer(name: str) -> Callable[[str, str], bool]:
    built = build("scorer", name, where="scorer")
    if not isinstance(built, Match):
        raise ConfigError(f"scorer {name!r} calls models; recorded-data training needs a pure scorer (numeric, exact, choice)")
    return built.match


def _answer_ids(texts: list[list[str | None]], extract: Callable[[str], str]) -> np.ndarray:
    """Per query, equal extracted answers share an id; nothing extracted (or no answer) is -1."""
    out = np.full((len(texts), len(texts[0]) if texts else 0), -1, dtype=np.int32)
    for i, row in enumerate(texts):
        seen: dict[str, int] = {}
        for j, text in enumerate(row):
            key = extract(text) if text else ""
            if key:
                out[i, j] = seen.setdefault(key, len(seen))
    return out


def _layer1_spend(record: QueryRecord) -> dict[str, tuple[float, int]]:
    """Per layer-1 agent: the list $ and the tokens of its calls in this record."""
    spend: dict[str, tuple[float, int]] = {}
    for call in record.calls:
        if call.layer == 1:
            usd, used = spend.get(call.agent, (0.0, 0))
            spend[call.agent] = (usd + call.cost.list_usd, used + call.usage.total_tokens)
    return spend


def _short_names(pool: list[dict[str, Any]]) -> list[str]:
    """`2:plain(local,temperature=0.7,examples#1a2b)`: the model and the arguments that tell this
    proposer from the rest of the pool (long values hashed)."""
    differing = [k for k in dict.fromkeys(k for p in pool for k in p)
                 if k not in ("agent", "model") and len({repr(p.get(k)) for p in pool}) > 1]
    names = []
    for j, spec in enumerate(pool):
        parts = [str(spec.get("model", "")).rsplit("/", 1)[-1]]
        for key in differing:
            value = spec.get(key)
            short = isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 12)
            parts.append(f"{key}={value}" if short else f"{key}#{hashlib.sha256(repr(value).encode()).hexdigest()[:4]}")
        names.append(f"{j + 1}:{spec.get('agent', 'plain')}({','.join(p for p in parts if p)})")
    return names
