"""Recordings of runs: every call of a run's RunLogs (all layers, judges included, any endpoint)
exported as a replay dataset, so the run can be handed over and replayed whole without its
endpoints or keys (`moa-lab record export`, then `moa-lab eval EXPERIMENT --replay DIR`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from moa_lab.core import ConfigError
from moa_lab.models import RecordedCall, write_recording
from moa_lab.tracking import read_runlogs


@dataclass(frozen=True)
class Recording:
    """What `export_recording` wrote and what it left out (every call of the RunLogs is one of:
    exported, a repeat of an exported request, failed, or not replayable)."""

    calls_file: Path
    runlogs: list[Path]
    queries: int
    calls: int
    """Calls written (a request made more than once without the cache is written once per time)."""
    models: dict[str, int]
    """Calls written per model ref (`<endpoint>/<model>`)."""
    repeats: int = 0
    """Cache hits on a written request with the same answer: what the cache gave, kept once."""
    conflicts: int = 0
    """Calls that repeat a written request with another answer (runs made without the cache): each
    is written in run order, and a replay serves them in that order."""
    failed: int = 0
    """Calls that failed: no answer was recorded, so a replay misses them as the run did."""
    unreplayable: dict[Path, int] = field(default_factory=dict)
    """Calls per RunLog written before moa-lab kept each call's sampling and sample index."""


def export_recording(runs: Iterable[str | Path], out: str | Path) -> Recording:
    """Write every call of the RunLogs in `runs` (RunLog files or run folders) to the recording
    folder `out`. Raises ConfigError, naming the RunLog and the fix, when no call can be replayed."""
    logs = read_runlogs(runs)
    written: dict[str, list[RecordedCall]] = {}
    models: Counter[str] = Counter()
    repeats = conflicts = failed = queries = 0
    unreplayable: Counter[Path] = Counter()
    for log in logs:
        for record in log.records:
            queries += 1
            for call in (*record.calls, *record.judge_calls):
                request = call.request
                if call.error is not None:
                    failed += 1
                elif request is None:
                    unreplayable[log.path] += 1
                else:
                    recorded = RecordedCall(request, call.output, call.usage, call.model.partition("/")[0])
                    answers = written.setdefault(recorded.key, [])
                    same = any(a.output == recorded.output for a in answers)
                    if call.cached and same:
                        repeats += 1
                        continue
                    # a request made again without the cache is another sample: kept in run order, so a
                    # replay answers a layer-2 proposer and an aggregator asking the same thing as the run did
                    conflicts += bool(answers) and not same
                    answers.append(recorded)
                    models[call.model] += 1
    if not written:
        if unreplayable:
            path = next(iter(unreplayable))
            raise ConfigError(f"{path}: its calls were recorded without their sampling and sample index (a RunLog from an "
                              "older moa-lab), so they cannot be replayed; run the experiment again and export the new run")
        raise ConfigError(f"{', '.join(str(log.path) for log in logs[:3])}: no call to export "
                          f"({failed} failed, {queries} queries); a recording holds answers that were received")
    rows = [call for answers in written.values() for call in answers]
    paths = [log.path.resolve() for log in logs]
    manifest = {
        "created": time.time(),
        "runlogs": [str(p) for p in paths],
        "queries": queries,
        "calls": len(rows),
        "models": dict(sorted(models.items())),
        "repeats": repeats,
        "conflicts": conflicts,
        "failed": failed,
        "unreplayable": {str(p): n for p, n in unreplayable.items()},
    }
    calls_file = write_recording(Path(out), rows, manifest)
    return Recording(calls_file, paths, queries, len(rows), dict(models), repeats, conflicts, failed, dict(unreplayable))
