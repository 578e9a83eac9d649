"""The held-out re-check: the front chosen on the search split, measured again on questions the study
never saw, with intervals, and the questions a user asks of it answered on those questions."""

from __future__ import annotations

from dataclasses import dataclass

from moa_lab.evaluation import Experiment, groups
from moa_lab.models import ModelSet
from moa_lab.scoring import Estimate, estimate
from moa_lab.search._config import SearchConfig, search_split, study_dir
from moa_lab.search._space import single_spec
from moa_lab.search._trial import TrialResult, evaluate_trial, trial_records
from moa_lab.topology import TopologySpec
from moa_lab.tracking import QueryRecord


@dataclass(frozen=True)
class Measured:
    """Quality (with its interval) and list $ per query of one configuration on one side of the split."""

    quality: Estimate
    usd_per_query: float

    @classmethod
    def of(cls, records: list[QueryRecord]) -> Measured:
        """From RunLog records (unscored samples left out of quality)."""
        scores = [r.score for r in records if r.score is not None]
        return cls(estimate(scores), sum(r.total_cost.list_usd for r in records) / max(1, len(records)))


@dataclass(frozen=True)
class Recheck:
    """One configuration: `trial` (a study trial) or a reference single model, on the search split
    and on the held-out split (None: the study keeps no held-out questions)."""

    label: str
    spec: TopologySpec
    search: Measured | None
    held: Measured | None
    trial: TrialResult | None = None

    @property
    def optimism(self) -> float | None:
        """Search-split quality minus held-out quality: how much choosing on the search split flattered it."""
        return self.search.quality.mean - self.held.quality.mean if self.search and self.held else None

    @property
    def judged(self) -> Measured:
        """What answers questions: the held-out side when there is one."""
        out = self.held or self.search
        assert out is not None
        return out


async def recheck(exp: Experiment, config: SearchConfig, models: ModelSet, results: list[TrialResult]) -> list[Recheck]:
    """Each trial of `results` on the search split (its own RunLogs) and on the held-out split
    (evaluated now, through the cache, into the study's `holdout/` folder; resumed when run again)."""
    return [await _measure(exp, config, models, f"trial {r.number}", r.spec, r.tasks, r.number, r) for r in results]


async def single(exp: Experiment, config: SearchConfig, models: ModelSet, model: str, trials: list[TrialResult]) -> Recheck:
    """`model` alone as the study's space would run it: the study's trial of it when there is one,
    else measured on the held-out split only."""
    spec = single_spec(config.space, model)
    for r in trials:
        if _same(r.spec, spec):
            return await _measure(exp, config, models, f"trial {r.number}", r.spec, r.tasks, r.number, r)
    tasks = trials[0].tasks if trials else ()
    return await _measure(exp, config, models, model.split("/")[-1], spec, tasks, f"single-{_slug(model)}", None)


async def _measure(exp: Experiment, config: SearchConfig, models: ModelSet, label: str, spec: TopologySpec,
                   tasks: tuple[str, ...], number: int | str, trial: TrialResult | None) -> Recheck:
    """One configuration re-checked; `number` names its held-out RunLogs."""
    search = Measured.of(trial_records(study_dir(exp), number)) if trial is not None else None
    held = None
    if config.holdout is not None:
        part = search_split(exp, config, "holdout")
        folder = study_dir(exp) / "holdout"
        await evaluate_trial(part, number, spec, tasks, models, folder, groups(part))
        held = Measured.of(trial_records(folder, number))
    return Recheck(label, spec, search, held, trial)


def best_single(results: list[TrialResult]) -> TrialResult | None:
    """The single-model trial with the best search-split quality (the reference a mixture must beat)."""
    singles = [r for r in results if len(r.spec.layers) == 1 and len(r.spec.layers[0].proposers) == 1 and r.spec.selector is None]
    return max(singles, key=lambda r: (r.values["quality"], -r.values["cost_per_query_usd"])) if singles else None


def cheapest_at_least(rows: list[Recheck], quality: float) -> Recheck | None:
    """The cheapest configuration whose judged quality reaches `quality`."""
    ok = [r for r in rows if r.judged.quality.mean >= quality]
    return min(ok, key=lambda r: (r.judged.usd_per_query, -r.judged.quality.mean)) if ok else None


def best_at_most(rows: list[Recheck], usd: float) -> Recheck | None:
    """The most accurate configuration whose judged $ per query is at most `usd`."""
    ok = [r for r in rows if r.judged.usd_per_query <= usd * (1 + 1e-9)]
    return max(ok, key=lambda r: (r.judged.quality.mean, -r.judged.usd_per_query)) if ok else None


def _same(a: TopologySpec, b: TopologySpec) -> bool:
    return a.model_dump(exclude={"name"}) == b.model_dump(exclude={"name"})


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model)

