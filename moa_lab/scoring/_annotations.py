"""AlpacaEval files as typed records: one system's annotations (the judge's verdicts), the
leaderboard's fitted GLM weights, and the leaderboard itself (formats of ``../shared/data/alpaca_eval``)."""

from __future__ import annotations

import csv
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

from moa_lab.scoring._glm import GlmWeights


@dataclass(frozen=True)
class Verdicts:
    """One system's AlpacaEval annotations against one reference, in file order.

    ``system`` is the file's name without ``.json``/``.json.gz`` (the leaderboard's results folder
    name; ``generator_2`` is not always that name). ``preferences`` are in [1, 2] (None: no verdict);
    lengths are characters of the system's (``output_2``) and the reference's (``output_1``) answers.
    """

    system: str
    instructions: tuple[str, ...]
    preferences: tuple[float | None, ...]
    model_lengths: tuple[int, ...]
    reference_lengths: tuple[int, ...]
    reference: str


@dataclass(frozen=True)
class LeaderboardEntry:
    """One leaderboard row: ``name`` as displayed, LC and raw win rates in percent."""

    name: str
    length_controlled_win_rate: float
    win_rate: float


def system_name(path: Path) -> str:
    """The system an annotation file is named after (``alpaca-7b.json.gz`` -> ``alpaca-7b``)."""
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_verdicts(path: str | Path) -> Verdicts:
    """Read an AlpacaEval annotation file (a JSON list, optionally gzipped)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        rows = json.load(fh)
    if not rows:
        raise ValueError(f"{path}: no annotations")
    prefs = tuple(None if r.get("preference") is None else float(r["preference"]) for r in rows)
    return Verdicts(
        system=system_name(path),
        instructions=tuple(str(r["instruction"]) for r in rows),
        preferences=prefs,
        model_lengths=tuple(len(r["output_2"] or "") for r in rows),
        reference_lengths=tuple(len(r["output_1"] or "") for r in rows),
        reference=str(rows[0].get("generator_1", "")),
    )


def read_glm_weights(path: str | Path) -> dict[str, GlmWeights]:
    """The leaderboard's fitted ``length_controlled_v1`` weights, by system (alpaca-eval's CSV layout)."""
    out: dict[str, GlmWeights] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out[row[""]] = GlmWeights(
                model=float(row["not_gamed_baseline.astype(float)"]),
                length=float(row["np.tanh(std_delta_len)"]),
                difficulty=float(row["instruction_difficulty"]),
            )
    return out


_RESULTS = re.compile(r"results/([^/]+)/model_outputs")


def read_leaderboard(path: str | Path) -> dict[str, LeaderboardEntry]:
    """The AlpacaEval 2.0 leaderboard CSV, keyed by system (the results folder in its ``samples`` link)."""
    out: dict[str, LeaderboardEntry] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            match = _RESULTS.search(row.get("samples") or "")
            if match:
                out[match.group(1)] = LeaderboardEntry(
                    row["name"], float(row["length_controlled_winrate"]), float(row["win_rate"])
                )
    return out
