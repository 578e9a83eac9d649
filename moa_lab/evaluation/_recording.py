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
    """Distinct requests written."""
    models: dict[str, int]
    """Calls written per model ref (`<endpoint>/<model>`)."""
    repeats: int = 0
    """Calls that repeat a written request with the same answer (a cache hit, a re-run): kept once."""
    conflicts: int = 0
    """Calls that repeat a written request with another answer (runs made without the cache): the
    first answer is kept, so a replay gives it to every such request."""
    failed: int = 0
    """Calls that failed: no answer was recorded, so a replay misses them as the run did."""
    unreplayable: dict[Path, int] = field(default_factory=dict)
    """Calls per RunLog written before moa-lab kept each call's sampling and sample index."""


def export_recording(runs: Iterable[str | Path], out: str | Path) -> Recording:
    """Write every call of the RunLogs in `runs` (RunLog files or run folders) to the recording
    folder `out`. Raises ConfigError, naming the RunLog and the fix, when no call can be replayed."""
    logs = read_runlogs(runs)
    written: dict[str, RecordedCall] = {}
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
                    first = written.setdefault(recorded.key, recorded)
                    if first is recorded:
                        models[call.model] += 1
                    elif first.output == recorded.output:
                        repeats += 1
                    else:
                        conflicts += 1
    if not written:
        if unreplayable:
            path = next(iter(unreplayable))
            raise ConfigError(f"{path}: its calls were recorded without their sampling and sample index (a RunLog from an "
                              "older moa-lab), so they cannot be replayed; run the experiment again and export the new run")
        raise ConfigError(f"{', '.join(str(log.path) for log in logs[:3])}: no call to export "
                          f"({failed} failed, {queries} queries); a recording holds answers that were received")
    paths = [log.path.resolve() for log in logs]
    manifest = {
        "created": time.time(),
        "runlogs": [str(p) for p in paths],
        "queries": queries,
        "calls": len(written),
        "models": dict(sorted(models.items())),
        "repeats": repeats,
        "conflicts": conflicts,
        "failed": failed,
        "unreplayable": {str(p): n for p, n in unreplayable.items()},
    }
    calls_file = write_recording(Path(out), written.values(), manifest)
    return Recording(calls_file, paths, queries, len(written), dict(models), repeats, conflicts, failed, dict(unreplayable))
