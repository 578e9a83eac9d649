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


async def single_model(exp: Experiment, config: SearchConfig, models: ModelSet, model: str, trials: list[TrialResult],
                 *, search: bool = False, held: bool = True) -> Recheck:
    """`model` alone as the study's space runs it: the study's trial of it when there is one, else
    measured on the held-out split (and, with `search`, on the search split too, into `singles/`)."""
    spec = single_spec(config.space, model)
    for r in trials:
        if _same(r.spec, spec):
            return await _measure(exp, config, models, f"trial {r.number}", r.spec, r.tasks, r.number, r, held=held)
    tasks = trials[0].tasks if trials else ()
    name = f"single-{_slug(model)}"
    measured = None
    if search:
        part = search_split(exp, config)
        await evaluate_trial(part, name, spec, tasks, models, study_dir(exp) / "singles", groups(part))
        measured = Measured.of(trial_records(study_dir(exp) / "singles", name))
    row = await _measure(exp, config, models, f"{model.split('/')[-1]} alone", spec, tasks, name, None, held=held)
    return Recheck(row.label, spec, measured, row.held, None)


async def best_single(exp: Experiment, config: SearchConfig, models: ModelSet, trials: list[TrialResult]) -> Recheck:
    """Every pool model alone on the search split (the study's own trial where it has one, the rest
    evaluated through the cache): the best there, re-checked on the held-out split."""
    rows = {m: await single_model(exp, config, models, m, trials, search=True, held=False) for m in config.space.pool}
    model = max(rows, key=lambda m: (rows[m].search.quality.mean, -rows[m].search.usd_per_query))  # type: ignore[union-attr]
    return await single_model(exp, config, models, model, trials, search=True)


async def _measure(exp: Experiment, config: SearchConfig, models: ModelSet, label: str, spec: TopologySpec,
                   tasks: tuple[str, ...], number: int | str, trial: TrialResult | None, *, held: bool = True) -> Recheck:
    """One configuration re-checked (on the held-out split unless `held` is false); `number` names its RunLogs."""
    search = Measured.of(trial_records(study_dir(exp), number)) if trial is not None else None
    out = None
    if held and config.holdout is not None:
        part = search_split(exp, config, "holdout")
        folder = study_dir(exp) / "holdout"
        await evaluate_trial(part, number, spec, tasks, models, folder, groups(part))
        out = Measured.of(trial_records(folder, number))
    return Recheck(label, spec, search, out, trial)


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

