"""The subset rule: from per-proposer predictions of success and $, the proposers one query calls."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moa_lab.core import ConfigError
from moa_lab.selection._kernels import latent_vote_quality, log_volume, nearest, synthesize_quality
from moa_lab.selection._vote import vote_static


@dataclass(frozen=True)
class VoteModel:
    """How a vote's quality is predicted from its members' success probabilities: the weight `mix` of
    "wrong answers differ" and, optionally, latent difficulty classes (see `latent_vote_quality`)."""

    mix: float = 0.5
    class_weight: np.ndarray | None = None
    class_shift: np.ndarray | None = None

    def quality(self, probs: np.ndarray, valid: np.ndarray, members: np.ndarray) -> np.ndarray:
        """P(the vote is right) for each row of member success probabilities."""
        return latent_vote_quality(probs, valid, members, self.mix, self.class_weight, self.class_shift)


@dataclass(frozen=True)
class SynthesisModel:
    """How a synthesized answer's quality is predicted: the best member plus rewarded diversity."""

    diversity: np.ndarray
    weight: float = 0.1

    def quality(self, probs: np.ndarray, valid: np.ndarray, members: np.ndarray) -> np.ndarray:
        """Predicted quality of the final answer for each row of member success probabilities."""
        return synthesize_quality(probs, valid, members, self.diversity, self.weight)


@dataclass(frozen=True)
class SingleModel:
    """One proposer's answer is the answer: its quality is that proposer's predicted quality."""

    def quality(self, probs: np.ndarray, valid: np.ndarray, members: np.ndarray) -> np.ndarray:
        """The best member's predicted quality (a `single` router's subsets have one member)."""
        return np.where(valid, probs, -np.inf).max(axis=1)


@dataclass
class Library:
    """Subsets measured on the training queries: each one's vote outcome per training query, judged
    for a new query by its `k` nearest training queries, shrunk by `shrink` toward its overall rate."""

    memory: np.ndarray
    members: np.ndarray
    outcome: np.ndarray
    overall: np.ndarray
    answers: np.ndarray
    success: np.ndarray
    k: int
    shrink: float
    _greedy_overall: dict[tuple[int, ...], float] = field(default_factory=dict, init=False, repr=False)

    def choose(self, x: np.ndarray, greedy: list[int], usd: np.ndarray, *, lam: float, k: int | None,
               max_usd: float | None, bonus: np.ndarray | None = None) -> list[int]:
        """The library subset or `greedy`, whichever the query's neighbours rate best net of lam × $
        (plus `bonus`, one per library subset and one for `greedy`, when given)."""
        index, w = nearest(self.memory @ x, self.k)
        alpha = self.shrink
        local = (w @ self.outcome[index] + alpha * self.overall) / (w.sum() + alpha)
        overall = self._greedy_overall.get(tuple(greedy))
        if overall is None:  # the greedy subset's accuracy on every training query, once per subset
            overall = float(vote_static(self.answers, self.success, greedy).mean())
            self._greedy_overall[tuple(greedy)] = overall
        mine = (w @ vote_static(self.answers[index], self.success[index], greedy) + alpha * overall) / (w.sum() + alpha)
        valid = self.members >= 0
        spend = np.append(np.where(valid, usd[np.where(valid, self.members, 0)], 0.0).sum(axis=1), usd[greedy].sum())
        sizes = np.append(valid.sum(axis=1), len(greedy))
        utility = np.append(local, mine) - lam * spend
        if bonus is not None:
            utility = utility + bonus
        allowed = np.ones(len(utility), bool)
        if k is not None:
            allowed &= sizes <= k
        if max_usd is not None:
            allowed &= spend <= max_usd
        allowed[-1] = True  # the greedy subset already respects both limits
        best = int(np.argmax(np.where(allowed, utility, -np.inf)))
        return greedy if best == len(self.members) else [int(j) for j in self.members[best] if j >= 0]


@dataclass
class SubsetRule:
    """The subset maximising predicted final quality − lam × predicted $ (+ diversity × the
    members' log-volume), within a size and $ limit.

    The per-proposer predictions build one candidate greedily. With a `library` (vote routers), each
    measured subset's vote is also judged by how it did on the query's nearest training queries,
    which sees what independent estimates cannot: whose errors coincide, and how the vote really
    breaks ties. With a `similarity` of the proposers' errors (`answer_similarity` of the training
    rows' wrong answers), a `diversity` weight adds the log det of the members' similarity, 0 for
    members that never err alike and more negative the more alike they err: quality points traded
    for disagreement among the chosen."""

    model: VoteModel | SynthesisModel | SingleModel
    library: Library | None = None
    similarity: np.ndarray | None = None
    _library_volume: np.ndarray | None = field(default=None, init=False, repr=False)

    def check_diversity(self, diversity: float) -> None:
        """A negative weight, or a weight for a rule without error similarity, is a ConfigError."""
        if diversity < 0:
            raise ConfigError(f"diversity must be at least 0 (0 = off), not {diversity}")
        if diversity and self.similarity is None:
            raise ConfigError("this router has no error similarity (trained before the diversity knob): retrain it to use diversity")

    def choose(self, p: np.ndarray, usd: np.ndarray, *, lam: float, k: int | None = None,
               max_usd: float | None = None, x: np.ndarray | None = None, diversity: float = 0.0) -> list[int]:
        """Indices of the chosen proposers, most likely to succeed first. `p` and `usd` are one
        query's predictions per proposer; `x` its embedding (the library needs it)."""
        self.check_diversity(diversity)
        greedy = self.greedy(p, usd, lam=lam, k=k, max_usd=max_usd, diversity=diversity)
        if x is None or self.library is None:
            return greedy
        bonus = None
        if diversity and self.similarity is not None:
            if self._library_volume is None:
                self._library_volume = log_volume(self.similarity, self.library.members)
            bonus = diversity * np.append(self._library_volume, log_volume(self.similarity, np.array([greedy])))
        return self.library.choose(x, greedy, usd, lam=lam, k=k, max_usd=max_usd, bonus=bonus)

    def greedy(self, p: np.ndarray, usd: np.ndarray, *, lam: float, k: int | None, max_usd: float | None,
               diversity: float = 0.0) -> list[int]:
        """Grow the subset one or two proposers at a time while the predicted utility rises."""
        k = len(p) if k is None else max(1, min(k, len(p)))
        chosen: list[int] = []
        best = -np.inf
        while len(chosen) < k:
            sets = _extensions(chosen, len(p), k - len(chosen))
            if not sets:
                break
            width = max(len(s) for s in sets)
            members = np.array([s + [-1] * (width - len(s)) for s in sets])
            valid = members >= 0
            probs = np.where(valid, p[members], 0.0)
            spend = np.where(valid, usd[members], 0.0).sum(axis=1)
            utility = self.model.quality(probs, valid, members) - lam * spend
            if diversity and self.similarity is not None:
                utility = utility + diversity * log_volume(self.similarity, members)
            if max_usd is not None:
                utility = np.where(spend <= max_usd, utility, -np.inf)
            i = int(np.argmax(utility))
            if utility[i] <= best and chosen:
                break
            if not np.isfinite(utility[i]):
                break
            best, chosen = float(utility[i]), sets[i]
        if not chosen:  # nothing fits the $ limit: the cheapest proposer alone
            chosen = [int(np.argmin(usd))]
        return sorted(chosen, key=lambda m: -p[m])


def _extensions(chosen: list[int], m: int, room: int) -> list[list[int]]:
    """`chosen` plus one proposer, or plus two (a vote can gain only from adding two at once)."""
    rest = [i for i in range(m) if i not in chosen]
    sets = [chosen + [i] for i in rest]
    if room >= 2:
        sets += [chosen + [i, j] for a, i in enumerate(rest) for j in rest[a + 1:]]
    return sets
