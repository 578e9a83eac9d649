"""What every analysis shares: RunLogs gathered from files and run folders, and the result type
(a table, a matplotlib Figure object and notes) written as a PNG and a CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moa_lab.topology import TopologySpec, validate
from moa_lab.tracking import RunLog, read_runlogs

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Analysis:
    """One analysis's result: its rows (the CSV), its figure (the PNG) and what it says in words."""

    name: str
    title: str
    rows: list[dict[str, Any]]
    figure: Figure
    notes: list[str] = field(default_factory=list)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """`<name>.png` and `<name>.csv` in `folder`; returns both paths."""
        folder.mkdir(parents=True, exist_ok=True)
        png, table = folder / f"{self.name}.png", folder / f"{self.name}.csv"
        self.figure.savefig(png, dpi=110, bbox_inches="tight")
        write_csv(table, self.rows)
        return png, table


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV, the columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


runlogs = read_runlogs
"""Every RunLog named (`moa_lab.tracking.read_runlogs`)."""


def scored(run: RunLog) -> bool:
    """True when the run's answers were scored."""
    return any(r.score is not None for r in run.records)


def spec_of(run: RunLog) -> TopologySpec:
    """The run's topology as a spec (its header stores the spec as data)."""
    return validate(TopologySpec, run.header.topology, source=f"{run.path}: header")


def single_model(run: RunLog) -> str | None:
    """The model of a one-call topology (one proposer, no aggregator), else None."""
    spec = spec_of(run)
    if len(spec.layers) != 1 or len(spec.layers[0].proposers) != 1 or spec.aggregator is not None:
        return None
    return str(spec.layers[0].proposers[0].args.get("model", run.header.label))


def models_of(run: RunLog) -> list[str]:
    """Every model the run's topology calls, proposers first."""
    spec = spec_of(run)
    agents = [a for layer in spec.layers for a in layer.proposers] + ([spec.aggregator] if spec.aggregator else [])
    return list(dict.fromkeys(str(a.args["model"]) for a in agents if a.args.get("model")))


def clean(value: float) -> float | str:
    """A float for a CSV cell: NaN written empty."""
    return "" if isinstance(value, float) and math.isnan(value) else round(value, 6)


def figure(width: float = 6.4, height: float = 4.2, cols: int = 1, rows: int = 1) -> tuple[Figure, Any]:
    """A Figure object with rows x cols axes, flat when more than one (never pyplot: no global
    backend or state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols)
    return fig, axes.ravel() if rows * cols > 1 else axes
