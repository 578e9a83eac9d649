"""Raw and length-controlled win rates of AlpacaEval annotation files, next to the leaderboard's.

The length-controlled (LC) win rate of each system is fitted from its own annotations with
:func:`moa_lab.scoring._glm.length_controlled_fit`, using instruction difficulties estimated from the
*other* systems of a pool (annotations plus the leaderboard's weights; the system itself is always
left out, so neither its leaderboard row nor its own weights enter its LC). It is an approximation of
the leaderboard's ``length_controlled_v1`` value (see :mod:`moa_lab.scoring._glm` for what differs);
``Standing.method`` says so wherever a value is shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moa_lab.scoring._annotations import (
    LeaderboardEntry,
    Verdicts,
    read_glm_weights,
    read_leaderboard,
    read_verdicts,
    system_name,
)
from moa_lab.scoring._difficulty import Alignment, InstructionDifficulty, estimate_difficulty
from moa_lab.scoring._glm import GlmWeights, length_controlled_fit
from moa_lab.scoring._winrate import standard_error, win_rate

#: How every LC value of this module is labelled: it is not alpaca-eval's own computation.
APPROXIMATE = "approximate length_controlled_v1 (offline: estimated difficulties, synthesised gamed baselines)"
WEIGHTS_FILE = "glm_weights_length_controlled_v1.csv"
LEADERBOARD_FILE = "leaderboard_alpaca_eval_2.csv"

_VARIANT = re.compile(r"^(?P<base>.+)_(?P<kind>concise|verbose)$")


@dataclass(frozen=True)
class Standing:
    """One system's win rates in percent: ``lc_win_rate`` (approximate, see ``method``), raw
    ``win_rate`` and its ``standard_error``; the leaderboard's LC and raw values when it lists the
    system; ``difficulty_from`` the number of other systems the difficulties came from (0: none)."""

    system: str
    lc_win_rate: float
    win_rate: float
    standard_error: float
    n: int
    leaderboard_lc: float | None
    leaderboard_win_rate: float | None
    difficulty_from: int
    method: str = APPROXIMATE

    @property
    def lc_diff(self) -> float | None:
        """Ours minus the leaderboard's LC, in points (None when the leaderboard lacks the system)."""
        return None if self.leaderboard_lc is None else self.lc_win_rate - self.leaderboard_lc


def variant_base(system: str) -> str | None:
    """The base system of a length-gamed variant (``alpaca-7b_concise`` -> ``alpaca-7b``), else None."""
    match = _VARIANT.match(system)
    return match.group("base") if match else None


def beside_annotations(files: Sequence[Path], name: str) -> Path | None:
    """``name`` in the parent of the annotation files' folder, if there (the shared data layout)."""
    for folder in {f.resolve().parent.parent for f in files}:
        if (folder / name).is_file():
            return folder / name
    return None


def standings(
    files: Sequence[str | Path],
    *,
    pool: Sequence[str | Path] | None = None,
    weights: str | Path | None = None,
    leaderboard: str | Path | None = None,
    align: Alignment = "position",
) -> list[Standing]:
    """Win rates of each annotation file in ``files`` (see the module docstring).

    ``pool`` are the annotation files to estimate difficulties from (default: every ``*.json.gz``
    and ``*.json`` beside the first file); only those with a row in ``weights`` count. ``weights``
    and ``leaderboard`` default to ``glm_weights_length_controlled_v1.csv`` and
    ``leaderboard_alpaca_eval_2.csv`` in the annotations folder's parent (the shared data layout).
    Without weights the LC is fitted with no difficulty term (further from the leaderboard).
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("no annotation files given")
    weights_path = Path(weights) if weights else beside_annotations(paths, WEIGHTS_FILE)
    board_path = Path(leaderboard) if leaderboard else beside_annotations(paths, LEADERBOARD_FILE)
    known: dict[str, GlmWeights] = read_glm_weights(weights_path) if weights_path else {}
    board: dict[str, LeaderboardEntry] = read_leaderboard(board_path) if board_path else {}

    scored = {system_name(p): read_verdicts(p) for p in paths}
    pool_paths = [Path(p) for p in pool] if pool is not None else _pool_beside(paths[0])
    pool_verdicts = dict(scored)
    for p in pool_paths:
        name = system_name(p)
        if name in known and name not in pool_verdicts:
            pool_verdicts[name] = read_verdicts(p)
    usable = [(v, known[name]) for name, v in pool_verdicts.items() if name in known]

    shared: InstructionDifficulty | None = None
    out = []
    for name, verdicts in scored.items():
        others = [(v, w) for v, w in usable if v.system != name]
        if name in known:
            difficulty = estimate_difficulty(others, align=align) if others else None
        else:
            if shared is None and usable:
                shared = estimate_difficulty(usable, align=align)
            difficulty = shared
        out.append(_standing(verdicts, difficulty, board.get(name), align))
    return out


def _pool_beside(path: Path) -> list[Path]:
    folder = path.resolve().parent
    return sorted(p for p in folder.iterdir() if p.name.endswith((".json.gz", ".json")))


def _standing(
    verdicts: Verdicts, difficulty: InstructionDifficulty | None, entry: LeaderboardEntry | None, align: Alignment
) -> Standing:
    d = None if difficulty is None else difficulty.for_verdicts(verdicts, align)
    fit = length_controlled_fit(
        verdicts.preferences, verdicts.model_lengths, verdicts.reference_lengths, instruction_difficulty=d
    )
    return Standing(
        system=verdicts.system,
        lc_win_rate=fit.win_rate,
        win_rate=win_rate(verdicts.preferences),
        standard_error=standard_error(verdicts.preferences),
        n=len(verdicts.preferences),
        leaderboard_lc=None if entry is None else entry.length_controlled_win_rate,
        leaderboard_win_rate=None if entry is None else entry.win_rate,
        difficulty_from=0 if difficulty is None else len(difficulty.systems),
    )
